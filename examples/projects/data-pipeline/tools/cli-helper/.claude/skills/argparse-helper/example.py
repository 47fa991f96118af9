"""The parser of cli-helper: one subcommand per task."""

import argparse


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with its subcommands."""
    parser = argparse.ArgumentParser(prog="cli-helper")
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="load a CSV file into staging")
    load.add_argument("path", help="the CSV file")
    load.add_argument("--dry-run", action="store_true", help="parse only, write nothing")
    return parser

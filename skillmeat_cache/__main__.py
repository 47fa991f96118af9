"""``python -m skillmeat_cache``: the command line."""

from .cli import main

main(prog_name="skillmeat-cache")

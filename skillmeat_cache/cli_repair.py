"""The command line's ``check`` and ``repair`` output, and its heal of a damaged default
cache: run a command, and when it meets
SQLITE_CORRUPT / SQLITE_NOTADB on the default cache file, move the file aside, rebuild
the cache (:func:`.repair.heal`), say so in one line on stderr and run the command once
more.

Detection is by the driver's error code (``map_db_error`` gives DatabaseCorruptError),
wherever the command meets the damage: opening the file (a page 1 that is not SQLite's
header), reading its revision in ``migration.prepare``, or any later statement (a damaged
page in the middle of a table is only seen by the statement that reads it). So it lives
at the command's boundary, not in the engine or the unit of work: whatever the command
had done is rolled back, the heal happens once, and the second run's errors are reported
as they are (it never loops). A file named explicitly (``--db``, a URL,
SKILLMEAT_CACHE_URL) is never moved: its error names ``skillmeat-cache repair``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .cli_params import echo_json
from .db_errors import map_db_error, sqlite_error_name
from .errors import DatabaseCorruptError
from .locations import is_default_database

__all__ = ["check_command", "may_heal", "repair_command", "run_healing"]


def may_heal(url: str, exc: BaseException) -> bool:
    """Whether ``exc`` says the database is damaged and ``url`` is the default cache."""
    return isinstance(map_db_error(exc), DatabaseCorruptError) and is_default_database(url)


def run_healing(state: Any, fn: Callable[..., None], kwargs: dict[str, Any]) -> None:
    """Run ``fn(state, **kwargs)``; heal once and run it again when it meets a damaged
    default cache. ``state`` is the CLI's: ``db`` (None unless named by --db or
    SKILLMEAT_CACHE_URL), ``url``, ``synchronous``, ``close()``.
    """
    try:
        fn(state, **kwargs)
        return
    except Exception as exc:
        if state.db is not None or not may_heal(state.url, exc):  # named: never moved, even the default path
            raise
        cause = sqlite_error_name(exc) or "damaged"
    state.close()  # our own connections to the damaged file go first
    from .repair import heal

    report = heal(state.url, synchronous=(state.synchronous or "normal").upper())
    if report is not None:  # None: healthy by now (another process healed it first)
        click.echo(f"warning: {report.heal_message(cause)}", err=True)
    fn(state, **kwargs)


def check_command(url: str, thorough: bool, as_json: bool) -> bool:
    """``check``: print the report as JSON, or one line per problem on stdout (notes on
    stderr; ``ok: ...`` when clean); whether it is clean.
    """
    from .integrity import check_database

    report = check_database(url, thorough=thorough)
    if as_json:
        echo_json(report.to_dict())
        return report.clean
    for problem in report.problems:
        click.echo(str(problem))
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    if report.clean:
        ran = [name for name, outcome in report.checks.items() if outcome == "ok"]
        click.echo(f"ok: {report.database}: no problems ({', '.join(ran)})")
    return report.clean


def repair_command(url: str, synchronous: str, as_json: bool) -> None:
    """``repair``: rebuild, then print the one-line summary or the JSON report."""
    from .repair import repair

    report = repair(url, synchronous=synchronous)
    if report is None:  # only a heal answers None
        return
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(f"repaired {report.database}: {report.summary()}")

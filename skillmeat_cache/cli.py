"""The ``skillmeat-cache`` command line (also ``python -m skillmeat_cache``).

Errors of ours print one ``error: ...`` line on stderr and exit 1 (``--debug`` shows
the traceback); usage errors keep click's exit code 2.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from .cli_params import DURATION, PATH, TEXT, echo_json
from .cli_repair import check_command, repair_command, run_healing
from .db_errors import map_db_error
from .engine import ENVIRONMENTS, parse_url, redact_url, resolve_database_url
from .errors import CacheError
from .values import ARTIFACT_TYPES, PROJECT_STATUSES

if TYPE_CHECKING:
    from .container import Container

__all__ = ["main"]


SYNCHRONOUS_CHOICES = ("normal", "full")


@dataclass
class _State:
    """The global options, and the container built from them on first use."""

    db: str | None
    env: str | None
    debug: bool
    synchronous: str | None = None
    _url: str | None = field(default=None, init=False)
    _container: Container | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        """The database URL the options and environment name."""
        if self._url is None:
            url = resolve_database_url(self.env, self.db)
            try:
                parse_url(url)
            except CacheError as exc:
                raise CacheError(f"--db: {exc}") from None
            self._url = url
        return self._url

    def container(self, *, auto_migrate: bool = True) -> Container:
        """The composition root for this command; a SQLite cache is migrated on first use
        unless ``auto_migrate`` is off (``migrate`` and ``downgrade`` choose the revision).
        """
        if self._container is None:
            from .container import Container

            container = Container()
            container.config.from_dict(
                {
                    "database_url": self.url,
                    "synchronous": (self.synchronous or "normal").upper(),
                    "auto_migrate": auto_migrate,
                }
            )
            self._container = container
        return self._container

    def close(self) -> None:
        """Dispose of the engine, if one was built."""
        if self._container is not None:
            self._container.shutdown_resources()
            self._container = None


@contextmanager
def _errors(state: _State) -> Iterator[None]:
    """Turn our errors (and driver errors) into one line on stderr and exit code 1."""
    try:
        yield
    except (click.exceptions.Exit, click.ClickException, click.Abort):
        raise
    except Exception as exc:
        mapped = map_db_error(exc)
        if state.debug or not isinstance(mapped, CacheError):
            raise
        message = str(mapped).splitlines()[0] if str(mapped) else type(mapped).__name__
        click.echo(f"error: {message}", err=True)
        sys.exit(1)


def _command(fn: Callable[..., None] | None = None, *, heal: bool = True) -> Any:
    """Run a command body inside the error handler with the shared state; the engine is
    disposed of when it ends. With ``heal`` (all but check, repair, downgrade) a damaged
    default cache is healed once and the command run again (cli_repair.py).
    """
    if fn is None:
        return lambda f: _command(f, heal=heal)
    body = fn

    @click.pass_obj
    def wrapper(state: _State, /, **kwargs: Any) -> None:
        with _errors(state):
            try:
                run_healing(state, body, kwargs) if heal else body(state, **kwargs)
            finally:
                state.close()

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _non_empty_db(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``--db ''`` names no database: a usage error (an empty SKILLMEAT_CACHE_URL is unset)."""
    if value is not None and not value.strip():
        raise click.BadParameter("must not be empty: give a database URL or a path")
    return value


@click.group()
@click.version_option(package_name="skillmeat-cache", message="skillmeat-cache %(version)s")
@click.option(
    "--db",
    envvar="SKILLMEAT_CACHE_URL",
    metavar="URL_OR_PATH",
    type=PATH,
    callback=_non_empty_db,
    help="Database URL, or a path meaning a SQLite file. [env: SKILLMEAT_CACHE_URL]",
)
@click.option(
    "--env",
    envvar="SKILLMEAT_CACHE_ENV",
    type=click.Choice(ENVIRONMENTS),
    help="production (~/.skillmeat/cache/cache.db, the default), dev or test. [env: SKILLMEAT_CACHE_ENV]",
)
@click.option(
    "--synchronous",
    envvar="SKILLMEAT_CACHE_SYNCHRONOUS",
    type=click.Choice(SYNCHRONOUS_CHOICES, case_sensitive=False),
    help="SQLite durability: normal (the default; survives a crash of the program) or full "
    "(commits also survive power loss; slower). See docs/durability.md. [env: SKILLMEAT_CACHE_SYNCHRONOUS]",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def main(ctx: click.Context, db: str | None, env: str | None, synchronous: str | None, debug: bool) -> None:
    """Persistent cache of SkillMeat projects and artifacts."""
    ctx.obj = _State(db=db, env=env, debug=debug, synchronous=synchronous.lower() if synchronous else None)


@main.command()
@click.option("--to", "revision", default="head", show_default=True, type=TEXT, help="Target revision.")
@_command
def migrate(state: _State, revision: str) -> None:
    """Create or upgrade the cache schema."""
    from .migration import alembic_errors, migrate_engine, refuse_unknown_revision, revision_of

    engine = state.container(auto_migrate=False).engine()
    refuse_unknown_revision(engine)
    with alembic_errors():
        migrate_engine(engine, revision)
    click.echo(f"{redact_url(state.url)} is at revision {revision_of(engine)}")


@main.command()
@click.argument("revision", type=TEXT)
@_command(heal=False)
def downgrade(state: _State, revision: str) -> None:
    """Downgrade the cache schema to REVISION (``base`` removes every table)."""
    from .migration import alembic_errors, downgrade_engine, refuse_unknown_revision

    engine = state.container(auto_migrate=False).engine()
    refuse_unknown_revision(engine)
    with alembic_errors():
        downgrade_engine(engine, revision)
    click.echo(f"{redact_url(state.url)} downgraded to {revision}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_command
def status(state: _State, as_json: bool) -> None:
    """Show where the cache is, its schema revision, row counts and size."""
    info = {**state.container().reader().status(), "database": redact_url(state.url)}
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"database: {info['database']}")
    click.echo(f"revision: {info['revision'] or 'none'} (head {info['head']})")
    if info["size_bytes"] is not None:
        click.echo(f"size:     {info['size_bytes']:,} bytes")
    for name, n in info["counts"].items():
        click.echo(f"{name + ':':<19}{n:,}")


def _plural(n: int, noun: str, plural: str | None = None) -> str:
    """``1 project``, ``2 projects``, ``0 warnings``; ``plural`` for an irregular noun
    (``_plural(n, "entry", "entries")``).
    """
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def _table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped output: do not fold paths at 80 columns
    console.print(table)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], None] | None]:
    """A spinner on stderr naming the project being read (None when not ``enabled``)."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("scanning", total=None)
        count = 0

        def progress(path: str) -> None:
            nonlocal count
            count += 1
            bar.update(task, description=f"{_plural(count, 'project')}  {path}")

        yield progress


@main.command()
@click.argument("roots", nargs=-1, required=True, metavar="ROOT...", type=PATH)
@click.option("--max-depth", default=5, show_default=True, type=click.IntRange(min=0), help="Levels below each root.")
@click.option("--full", is_flag=True, help="Re-read every project, even unchanged ones.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Projects read at once (default: the machine's cores).")
@_command
def scan(state: _State, roots: tuple[str, ...], max_depth: int, full: bool, as_json: bool, jobs: int | None) -> None:
    """Scan ROOT folders for SkillMeat projects and update the cache."""
    from .services import scan as run_scan

    uow_factory = state.container().unit_of_work
    with _progress(not as_json and sys.stderr.isatty()) as progress:
        s = run_scan(uow_factory, roots, max_depth=max_depth, full=full, progress=progress, remember=True, jobs=jobs)
    if as_json:
        echo_json(s.to_dict())
        return
    click.echo(
        f"projects: {s.projects_seen} seen, {s.projects_unchanged} unchanged, {s.projects_added} added, "
        f"{s.projects_updated} updated, {s.projects_stale} marked stale, {_plural(s.projects_error, 'error')}"
    )
    click.echo(f"artifacts: {s.artifacts_added} added, {s.artifacts_updated} updated, {s.artifacts_removed} removed")
    for warning in s.warnings:  # on stderr, as a scan's progress is: stdout keeps the summary
        click.echo(f"warning: {warning.path}: {warning.message}", err=True)
    click.echo(f"{_plural(len(s.warnings), 'warning')}, {s.seconds:.2f} s")


@main.command()
@click.option(
    "--older-than",
    "older_than",
    type=DURATION,
    metavar="DURATION",
    help="Not fetched within DURATION (30m, 6h, 7d), or never.",
)
@click.option("--status", type=click.Choice(PROJECT_STATUSES), help="Only projects of this status.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_command
def projects(state: _State, older_than: timedelta | None, status: str | None, as_json: bool) -> None:
    """List cached projects with their artifact and outdated counts."""
    summaries = state.container().reader().project_summaries(status=status, older_than=older_than)
    if as_json:
        echo_json(summaries)
        return
    rows = [
        [
            s["name"],
            s["path"],
            s["status"],
            s["artifact_count"],
            s["outdated_count"],
            s["last_fetched"][:16].replace("T", " ") + " UTC" if s["last_fetched"] else "never",
        ]
        for s in summaries
    ]
    _table(_plural(len(rows), "project"), ["name", "path", "status", "artifacts", "outdated", "last fetched"], rows)


@main.command()
@click.option("--project", "project_ref", metavar="ID_OR_PATH", type=TEXT, help="Only this project.")
@click.option("--type", "type_", type=click.Choice(ARTIFACT_TYPES), help="Only this type.")
@click.option("--outdated", is_flag=True, help="Only artifacts with a newer upstream version.")
@click.option("--tag", type=TEXT, help="Only artifacts with exactly this tag.")
@click.option("--search", "text", type=TEXT, help="Name or description contains TEXT (any case).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_command
def artifacts(
    state: _State,
    project_ref: str | None,
    type_: str | None,
    outdated: bool,
    tag: str | None,
    text: str | None,
    as_json: bool,
) -> None:
    """List cached artifacts."""
    found = state.container().reader().artifacts(project=project_ref, type=type_, outdated=outdated, tag=tag, text=text)
    if as_json:
        echo_json([{k: v for k, v in a.items() if k != "project_path"} for a in found])
        return
    rows = [[cell(a) for _, cell in _ARTIFACT_COLUMNS] for a in found]
    _table(_plural(len(rows), "artifact"), [header for header, _ in _ARTIFACT_COLUMNS], rows)


DESCRIPTION_WIDTH = 60


def _short(text: str | None, width: int = DESCRIPTION_WIDTH) -> str:
    """The first line of ``text``, cut at a word boundary to ``width`` characters with an ellipsis."""
    line = " ".join((text or "").strip().split("\n", 1)[0].split())
    if len(line) <= width:
        return line
    cut = line[: width - 1]
    if " " in cut[width // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:.-") + "…"


# The ``artifacts`` table: (header, cell from one listed artifact). Adding a column is one line here.
_ARTIFACT_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("type", lambda a: a["type"]),
    ("name", lambda a: a["name"]),
    ("path", lambda a: a["path"]),
    ("description", lambda a: _short(a["description"])),
    ("tags", lambda a: ", ".join(a["tags"])),
    ("deployed", lambda a: a["deployed_version"]),
    ("upstream", lambda a: a["upstream_version"]),
    ("outdated", lambda a: "yes" if a["is_outdated"] else ""),
    ("modified", lambda a: "yes" if a["local_modified"] else ""),
    ("project", lambda a: a["project_path"]),
]


@main.group()
def marketplace() -> None:
    """Marketplace entries: import, list, purge."""


@marketplace.command("import")
@click.argument("file", type=PATH)
@_command
def marketplace_import(state: _State, file: str) -> None:
    """Import marketplace entries from a JSON FILE."""
    from .services import import_marketplace

    result = import_marketplace(state.container().unit_of_work, file)
    click.echo(f"imported {_plural(result.changed, 'marketplace entry', 'marketplace entries')} from {file}")
    if result.skipped_plugins:
        click.echo(
            f"skipped {_plural(len(result.skipped_plugins), 'plugin')} whose artifacts the file does not list "
            f"and whose folder is not beside it: {', '.join(result.skipped_plugins)}",
            err=True,
        )


@marketplace.command("list")
@click.option("--type", "type_", type=click.Choice(ARTIFACT_TYPES), help="Only this type.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_command
def marketplace_list(state: _State, type_: str | None, as_json: bool) -> None:
    """List marketplace entries."""
    from .services import list_marketplace

    entries = list_marketplace(state.container().unit_of_work, type_)
    if as_json:
        echo_json([e.to_dict() for e in entries])
        return
    rows = [[e.type, e.name, e.version, e.source or e.url, e.id] for e in entries]
    _table(
        _plural(len(rows), "marketplace entry", "marketplace entries"),
        ["type", "name", "version", "source", "id"],
        rows,
    )


@marketplace.command("purge")
@click.option(
    "--older-than", "older_than", required=True, type=DURATION, metavar="DURATION", help="Cached longer ago than this."
)
@_command
def marketplace_purge(state: _State, older_than: timedelta) -> None:
    """Delete marketplace entries cached longer ago than DURATION."""
    from .services import purge_marketplace

    count = purge_marketplace(state.container().unit_of_work, older_than)
    click.echo(f"purged {_plural(count, 'marketplace entry', 'marketplace entries')}")


@main.command("check-updates")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_command
def check_updates(state: _State, as_json: bool) -> None:
    """Refresh upstream versions from the marketplace, then list outdated artifacts."""
    from .services import check_updates as run_check

    found = run_check(state.container().unit_of_work)
    if as_json:
        ambiguous = [{**m.artifact.to_dict(), "candidate_sources": m.sources} for m in found.ambiguous]
        echo_json({"outdated": [a.to_dict() for a in found.outdated], "ambiguous": ambiguous})
        return
    paths = found.project_paths
    rows = [[a.type, a.name, a.deployed_version, a.upstream_version, paths.get(a.project_id)] for a in found.outdated]
    _table(_plural(len(rows), "outdated artifact"), ["type", "name", "deployed", "upstream", "project"], rows)
    if found.ambiguous:
        rows = [
            [
                m.artifact.type,
                m.artifact.name,
                ", ".join(s or "(none)" for s in m.sources),
                paths.get(m.artifact.project_id),
            ]
            for m in found.ambiguous
        ]
        title = f"{_plural(len(rows), 'artifact')} matched by name to entries of different sources (not compared)"
        _table(title, ["type", "name", "candidate sources", "project"], rows)


@main.command()
@click.argument("project", type=TEXT)
@_command
def forget(state: _State, project: str) -> None:
    """Remove PROJECT (id or path) and its artifacts from the cache."""
    from .services import forget_project

    gone = forget_project(state.container().unit_of_work, project)
    click.echo(f"forgot {gone.path}")


@main.command()
@click.option("--thorough", is_flag=True, help="PRAGMA integrity_check (reads every page and index; slower).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_command(heal=False)
def check(state: _State, thorough: bool, as_json: bool) -> None:
    """Check integrity, foreign keys, revision, rules, tags and search index (exit 1: problems)."""
    if not check_command(state.url, thorough, as_json):
        raise click.exceptions.Exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_command(heal=False)
def repair(state: _State, as_json: bool) -> None:
    """Rebuild a SQLite cache: keep what can be read, rescan the remembered roots."""
    repair_command(state.url, (state.synchronous or "normal").upper(), as_json)


@main.command()
@click.argument("roots", nargs=-1, metavar="[ROOT]...", type=PATH)
@click.option("--host", default="127.0.0.1", show_default=True, type=TEXT, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--ttl", default="6h", show_default=True, type=DURATION, help="Re-read projects older than this.")
@click.option("--token", envvar="SKILLMEAT_CACHE_TOKEN", type=TEXT, help="Bearer token every request must carry.")
@click.option("--cors-origin", "origins", multiple=True, type=TEXT, help="Allow this browser origin (repeatable).")
@click.option("--no-watch", is_flag=True, help="Do not watch the roots for changes.")
@click.option("--poll", is_flag=True, help="Watch by polling instead of the kernel's events.")
@_command
def serve(state: _State, roots: tuple[str, ...], host: str, port: int, ttl: timedelta, token: str | None,
          origins: tuple[str, ...], no_watch: bool, poll: bool) -> None:
    """Serve the cache over HTTP (API, events, web page) and keep it fresh: ROOTs and the
    roots of earlier scans are watched and re-read when older than --ttl.
    """
    from .api.live import Settings
    from .api.serve import run

    settings = Settings(roots=list(roots), ttl=ttl, watch=not no_watch, force_polling=poll, token=token,
                        cors_origins=list(origins), heal=state.db is None)
    run(state.container(), settings, host, port, announce=lambda line: click.echo(line, err=True))


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))

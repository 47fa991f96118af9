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
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from .engine import ENVIRONMENTS, READ_ONLY_OPTION, create_engine_for_url, parse_url, redact_url, resolve_database_url
from .errors import CacheError, SchemaVersionError, ValidationError, map_db_error
from .revision import HEAD_REVISION, KNOWN_REVISIONS, check_schema, read_revision

__all__ = ["main"]


SYNCHRONOUS_CHOICES = ("normal", "full")


def _checked(name: str, value: str | None, *, path: bool = False) -> str | None:
    """Refuse an argument holding a NUL byte (no real command line can carry one) and,
    unless it is a path, one that is not valid UTF-8 text (undecodable bytes arrive as
    unpaired surrogates). A path with undecodable bytes is a real file name: the scanner
    reports it.
    """
    if value is None:
        return None
    if "\x00" in value:
        raise ValidationError(name, "contains a NUL byte")
    if not path:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(name, "is not valid UTF-8 text") from None
    return value


class _OneLineError(click.ClickException):
    """An error of ours met while click parses the arguments: the same one line on
    stderr and exit code 1 as :func:`_errors` gives (click's usage errors exit 2).
    """

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _Duration(click.ParamType):
    """A duration like ``30m`` or ``7d`` (see :func:`.durations.parse_duration`), as a timedelta."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        from .durations import parse_duration

        try:
            return parse_duration(value)
        except CacheError as exc:
            raise _OneLineError(str(exc)) from exc


DURATION = _Duration()


def _parse_url(url: str) -> Any:
    """The parsed URL; a CacheError that never repeats the URL (it may hold a password)."""
    try:
        return parse_url(url)
    except CacheError as exc:
        raise CacheError(f"--db: {exc}") from None


@dataclass
class _State:
    db: str | None
    env: str | None
    debug: bool
    synchronous: str | None = None
    _url: str | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        if self._url is None:
            _checked("--db", self.db, path=True)
            url = resolve_database_url(self.env, self.db)
            _parse_url(url)
            self._url = url
        return self._url

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.url).get_backend_name() == "sqlite"

    def engine(self, **kwargs: Any) -> Engine:
        url = self.url
        own = url in (resolve_database_url("production"), resolve_database_url("dev"))
        kwargs.setdefault("synchronous", (self.synchronous or "normal").upper())
        return create_engine_for_url(url, create_parents=own, **kwargs)


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


def _command(fn: Callable[..., None]) -> Callable[..., None]:
    """Run a command body inside the error handler with the shared state."""

    @click.pass_obj
    def wrapper(state: _State, /, **kwargs: Any) -> None:
        with _errors(state):
            fn(state, **kwargs)

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


def ensure_ready(state: _State, engine: Engine) -> None:
    """Migrate a SQLite cache on first use; refuse a PostgreSQL one that is not at head."""
    with engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as conn:
        current = read_revision(conn)
    if current == HEAD_REVISION:
        return
    if state.is_sqlite and (current is None or current in KNOWN_REVISIONS):
        from .migration import migrate_engine

        migrate_engine(engine)
        return
    with engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as conn:
        check_schema(conn)


def _refuse_unknown_revision(engine: Engine) -> None:
    """SchemaVersionError when the database is at a revision this code does not know
    (written by a newer version): Alembic could neither upgrade nor downgrade it.
    """
    with engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as conn:
        current = read_revision(conn)
        if current is not None and current not in KNOWN_REVISIONS:
            check_schema(conn)


@contextmanager
def _alembic_errors() -> Iterator[None]:
    """Alembic's refusals (an unknown target revision...) as one line of ours."""
    from alembic.util.exc import CommandError

    try:
        yield
    except CommandError as exc:
        raise SchemaVersionError(f"migration refused: {str(exc).splitlines()[0] if str(exc) else exc}") from exc


@main.command()
@click.option("--to", "revision", default="head", show_default=True, help="Target revision.")
@_command
def migrate(state: _State, revision: str) -> None:
    """Create or upgrade the cache schema."""
    from .migration import migrate_engine

    engine = state.engine()
    try:
        _refuse_unknown_revision(engine)
        with _alembic_errors():
            migrate_engine(engine, revision)
        with engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as conn:
            click.echo(f"{redact_url(state.url)} is at revision {read_revision(conn)}")
    finally:
        engine.dispose()


@main.command()
@click.argument("revision")
@_command
def downgrade(state: _State, revision: str) -> None:
    """Downgrade the cache schema to REVISION (``base`` removes every table)."""
    from .migration import downgrade as run_downgrade

    engine = state.engine()
    try:
        _refuse_unknown_revision(engine)
    finally:
        engine.dispose()
    with _alembic_errors():
        run_downgrade(state.url, revision)
    click.echo(f"{redact_url(state.url)} downgraded to {revision}")


_COUNTED = ("projects", "artifacts", "artifact_metadata", "marketplace", "cache_metadata")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_command
def status(state: _State, as_json: bool) -> None:
    """Show where the cache is, its schema revision, row counts and size."""
    engine = state.engine()
    try:
        if state.is_sqlite:
            ensure_ready(state, engine)
        with engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as conn:
            current = read_revision(conn)
            if current != HEAD_REVISION:
                check_schema(conn)  # one error line, before anything is printed
            counts = {name: conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one() for name in _COUNTED}
        size = None
        if state.is_sqlite and engine.url.database:
            path = Path(engine.url.database)
            size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    finally:
        engine.dispose()
    info = {
        "database": redact_url(state.url),
        "revision": current,
        "head": HEAD_REVISION,
        "counts": counts,
        "size_bytes": size,
    }
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"database: {info['database']}")
    click.echo(f"revision: {current or 'none'} (head {HEAD_REVISION})")
    if size is not None:
        click.echo(f"size:     {size:,} bytes")
    for name, n in counts.items():
        click.echo(f"{name + ':':<19}{n:,}")


@contextmanager
def _read_connection(state: _State) -> Iterator[Connection]:
    """A read-only connection (one transaction) on the chosen database, made ready as
    :func:`_cache` makes it, for the read models in :mod:`.views`.
    """
    engine = state.engine()
    try:
        ensure_ready(state, engine)
        with engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as conn, conn.begin():
            yield conn
    finally:
        engine.dispose()


@contextmanager
def _cache(state: _State) -> Iterator[Callable[..., Any]]:
    """A unit-of-work factory on the chosen database (a SQLite file is migrated on first
    use); the engine is disposed when the block ends.
    """
    from sqlalchemy.orm import sessionmaker

    from .uow import UnitOfWork

    engine = state.engine()
    try:
        ensure_ready(state, engine)
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        yield lambda read_only=False: UnitOfWork(factory, read_only=read_only)
    finally:
        engine.dispose()


def _plural(n: int, noun: str, plural: str | None = None) -> str:
    """``1 project``, ``2 projects``, ``0 warnings``; ``plural`` for an irregular noun
    (``_plural(n, "entry", "entries")``).
    """
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False))


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


@main.command()
# Plain text, not click.Path: click would stat it first and fail on a NUL byte with a traceback.
@click.argument("roots", nargs=-1, required=True, metavar="ROOT...")
@click.option("--max-depth", default=5, show_default=True, type=click.IntRange(min=0), help="Levels below each root.")
@click.option("--full", is_flag=True, help="Re-read every project, even unchanged ones.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_command
def scan(state: _State, roots: tuple[str, ...], max_depth: int, full: bool, as_json: bool) -> None:
    """Scan ROOT folders for SkillMeat projects and update the cache."""
    from .services import scan as run_scan

    for root in roots:
        _checked("ROOT", root, path=True)
    with _cache(state) as uow:
        if not as_json and sys.stderr.isatty():
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            with Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
            ) as bar:
                task = bar.add_task("scanning", total=None)
                count = 0

                def progress(path: str) -> None:
                    nonlocal count
                    count += 1
                    bar.update(task, description=f"{_plural(count, 'project')}  {path}")

                summary = run_scan(uow, roots, max_depth=max_depth, full=full, progress=progress)
        else:
            summary = run_scan(uow, roots, max_depth=max_depth, full=full)
    if as_json:
        _echo_json(summary.to_dict())
        return
    s = summary
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
@click.option("--status", type=click.Choice(["active", "stale", "error"]), help="Only projects of this status.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_command
def projects(state: _State, older_than: timedelta | None, status: str | None, as_json: bool) -> None:
    """List cached projects with their artifact and outdated counts."""
    from .views import project_summaries

    with _read_connection(state) as conn:
        summaries = project_summaries(conn, status=status, older_than=older_than)
    if as_json:
        _echo_json(summaries)
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
@click.option("--project", "project_ref", metavar="ID_OR_PATH", help="Only this project.")
@click.option(
    "--type", "type_", type=click.Choice(["skill", "agent", "command", "mcp", "hook"]), help="Only this type."
)
@click.option("--outdated", is_flag=True, help="Only artifacts with a newer upstream version.")
@click.option("--tag", help="Only artifacts with exactly this tag.")
@click.option("--search", "text", help="Name or description contains TEXT (any case).")
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
    from .services import find_project

    _checked("--project", project_ref)
    _checked("--tag", tag)
    _checked("--search", text)
    with _cache(state) as uow, uow(read_only=True) as u:
        project_id = find_project(u, project_ref).id if project_ref else None
        found = u.artifacts.search(text or "", project_id=project_id, type=type_)
        if outdated:
            found = [a for a in found if a.is_outdated]
        if tag is not None:
            tagged = {a.id for a in u.metadata.artifacts_with_tag(tag)}
            found = [a for a in found if a.id in tagged]
        paths = {p.id: p.path for p in u.projects.list()}
        # By project path, then type, then name (code point order, as the repositories sort).
        found.sort(key=lambda a: (paths.get(a.project_id, a.project_id), a.type, a.name, a.path))
        metadata = u.metadata.get_many(a.id for a in found)
    if as_json:
        _echo_json([_artifact_json(a, metadata.get(a.id)) for a in found])
        return
    rows = [[cell(a, metadata.get(a.id), paths) for _, cell in _ARTIFACT_COLUMNS] for a in found]
    _table(_plural(len(rows), "artifact"), [header for header, _ in _ARTIFACT_COLUMNS], rows)


DESCRIPTION_WIDTH = 60


def _artifact_json(artifact: Any, meta: Any) -> dict[str, Any]:
    """An artifact's ``to_dict()`` with its description and tags."""
    return {
        **artifact.to_dict(),
        "description": meta.description if meta else None,
        "tags": list(meta.tags or []) if meta else [],
    }


def _short(text: str | None, width: int = DESCRIPTION_WIDTH) -> str:
    """The first line of ``text``, cut at a word boundary to ``width`` characters with an ellipsis."""
    line = " ".join((text or "").strip().split("\n", 1)[0].split())
    if len(line) <= width:
        return line
    cut = line[: width - 1]
    if " " in cut[width // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:.-") + "…"


# The ``artifacts`` table: (header, cell from the artifact, its metadata or None, and the
# project paths by id). Adding a column is one line here.
_ARTIFACT_COLUMNS: list[tuple[str, Callable[[Any, Any, dict[str, str]], Any]]] = [
    ("type", lambda a, m, paths: a.type),
    ("name", lambda a, m, paths: a.name),
    ("path", lambda a, m, paths: a.path),
    ("description", lambda a, m, paths: _short(m.description if m else None)),
    ("tags", lambda a, m, paths: ", ".join(m.tags or ()) if m else ""),
    ("deployed", lambda a, m, paths: a.deployed_version),
    ("upstream", lambda a, m, paths: a.upstream_version),
    ("outdated", lambda a, m, paths: "yes" if a.is_outdated else ""),
    ("modified", lambda a, m, paths: "yes" if a.local_modified else ""),
    ("project", lambda a, m, paths: paths.get(a.project_id, a.project_id)),
]


@main.group()
def marketplace() -> None:
    """Marketplace entries: import, list, purge."""


@marketplace.command("import")
@click.argument("file")
@_command
def marketplace_import(state: _State, file: str) -> None:
    """Import marketplace entries from a JSON FILE."""
    from .services import import_marketplace

    _checked("FILE", file, path=True)
    with _cache(state) as uow:
        result = import_marketplace(uow, file)
    click.echo(f"imported {_plural(result.changed, 'marketplace entry', 'marketplace entries')} from {file}")
    if result.skipped_plugins:
        click.echo(
            f"skipped {_plural(len(result.skipped_plugins), 'plugin')} whose artifacts the file does not list "
            f"and whose folder is not beside it: {', '.join(result.skipped_plugins)}",
            err=True,
        )


@marketplace.command("list")
@click.option(
    "--type", "type_", type=click.Choice(["skill", "agent", "command", "mcp", "hook"]), help="Only this type."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_command
def marketplace_list(state: _State, type_: str | None, as_json: bool) -> None:
    """List marketplace entries."""
    with _cache(state) as uow, uow(read_only=True) as u:
        entries = u.marketplace.list(type=type_)
    if as_json:
        _echo_json([e.to_dict() for e in entries])
        return
    rows = [[e.type, e.name, e.version, e.source or e.url, e.id] for e in entries]
    _table(f"{len(rows)} marketplace entries", ["type", "name", "version", "source", "id"], rows)


@marketplace.command("purge")
@click.option("--older-than", "older_than", required=True, metavar="DURATION", help="Cached longer ago than this.")
@_command
def marketplace_purge(state: _State, older_than: str) -> None:
    """Delete marketplace entries cached longer ago than DURATION."""
    from .durations import parse_duration

    age = parse_duration(older_than)
    with _cache(state) as uow, uow() as u:
        count = u.marketplace.purge_older_than(age)
    click.echo(f"purged {count} marketplace entries")


@main.command("check-updates")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_command
def check_updates(state: _State, as_json: bool) -> None:
    """Refresh upstream versions from the marketplace, then list outdated artifacts."""
    from .services import check_updates as run_check

    with _cache(state) as uow:
        found = run_check(uow)
        paths = {}
        if not as_json:
            with uow(read_only=True) as u:
                paths = {p.id: p.path for p in u.projects.list()}
    if as_json:
        ambiguous = [{**m.artifact.to_dict(), "candidate_sources": m.sources} for m in found.ambiguous]
        _echo_json({"outdated": [a.to_dict() for a in found.outdated], "ambiguous": ambiguous})
        return
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
@click.argument("project")
@_command
def forget(state: _State, project: str) -> None:
    """Remove PROJECT (id or path) and its artifacts from the cache."""
    from .services import forget_project

    _checked("PROJECT", project)
    with _cache(state) as uow:
        gone = forget_project(uow, project)
    click.echo(f"forgot {gone.path}")


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))

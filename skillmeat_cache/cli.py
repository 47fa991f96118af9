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
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from .engine import ENVIRONMENTS, READ_ONLY_OPTION, create_engine_for_url, redact_url, resolve_database_url
from .errors import CacheError, SchemaVersionError, map_db_error
from .models import Artifact, ArtifactMetadata, CacheMetadata, MarketplaceEntry, Project
from .revision import HEAD_REVISION, KNOWN_REVISIONS, check_schema, read_revision

__all__ = ["main"]


@dataclass
class _State:
    db: str | None
    env: str | None
    debug: bool
    _url: str | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = resolve_database_url(self.env, self.db)
        return self._url

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.url).get_backend_name() == "sqlite"

    def engine(self, **kwargs: Any) -> Engine:
        url = self.url
        own = url in (resolve_database_url("production"), resolve_database_url("dev"))
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


@click.group()
@click.option(
    "--db",
    envvar="SKILLMEAT_CACHE_URL",
    metavar="URL_OR_PATH",
    help="Database URL, or a path meaning a SQLite file. [env: SKILLMEAT_CACHE_URL]",
)
@click.option(
    "--env",
    envvar="SKILLMEAT_CACHE_ENV",
    type=click.Choice(ENVIRONMENTS),
    help="production (~/.skillmeat/cache/cache.db, the default), dev or test. [env: SKILLMEAT_CACHE_ENV]",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def main(ctx: click.Context, db: str | None, env: str | None, debug: bool) -> None:
    """Persistent cache of SkillMeat projects and artifacts."""
    ctx.obj = _State(db=db, env=env, debug=debug)


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


@main.command()
@click.option("--to", "revision", default="head", show_default=True, help="Target revision.")
@_command
def migrate(state: _State, revision: str) -> None:
    """Create or upgrade the cache schema."""
    from .migration import migrate_engine

    engine = state.engine()
    try:
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

    run_downgrade(state.url, revision)
    click.echo(f"{redact_url(state.url)} downgraded to {revision}")


_COUNTED = {
    "projects": Project,
    "artifacts": Artifact,
    "artifact_metadata": ArtifactMetadata,
    "marketplace": MarketplaceEntry,
    "cache_metadata": CacheMetadata,
}


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
            counts = {}
            if current == HEAD_REVISION:
                for name, model in _COUNTED.items():
                    counts[name] = conn.execute(select(func.count()).select_from(model)).scalar_one()
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
    if current != HEAD_REVISION:
        raise SchemaVersionError(f"database is at revision {current or 'none'}; run `skillmeat-cache migrate`")


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))

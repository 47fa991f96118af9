"""Building engines: an engine for a URL with our connection set-up (see
:mod:`.connections`), for the database the options and environment name (see
:mod:`.locations`, whose names this module offers too).

Nothing here runs at import time; the composition root (:mod:`.container`) calls these.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from .connections import (
    install_postgresql_events,
    install_sqlite_events,
    install_statement_hook,
    prepare_sqlite_file,
    query_value,
    sets_pg_option,
    sqlite_url_file,
)
from .errors import CacheError
from .locations import (
    ENV_VAR_ENV,
    ENV_VAR_URL,
    ENVIRONMENTS,
    MEMORY_URL,
    SYNCHRONOUS_MODES,
    default_database_path,
    is_default_database,
    is_memory_url,
    parse_url,
    redact_url,
    resolve_database_url,
    to_url,
)
from .read_only import READ_ONLY_OPTION, reads_in_autocommit

__all__ = [
    "ENVIRONMENTS",
    "ENV_VAR_ENV",
    "ENV_VAR_URL",
    "MEMORY_URL",
    "READ_ONLY_OPTION",
    "SYNCHRONOUS_MODES",
    "build_engine",
    "create_engine_for_url",
    "create_read_engine",
    "default_database_path",
    "install_statement_hook",
    "is_default_database",
    "is_memory_url",
    "parse_url",
    "redact_url",
    "resolve_database_url",
    "to_url",
]


# How each PostgreSQL engine of create_engine_for_url was asked for: its read engine's recipe.
_made_with: weakref.WeakKeyDictionary[Engine, tuple[str, dict[str, Any]]] = weakref.WeakKeyDictionary()


def create_engine_for_url(
    url: str,
    *,
    busy_timeout: float = 10.0,
    synchronous: str = "NORMAL",
    create_parents: bool | None = None,
    for_reads: bool = False,
    **kwargs: Any,
) -> Engine:
    """An engine for ``url`` with our connection set-up.

    SQLite: WAL, ``synchronous`` (NORMAL by default; FULL survives power loss),
    ``foreign_keys=ON``, ``temp_store=MEMORY``, ``busy_timeout`` seconds, and transactions
    that start with ``BEGIN IMMEDIATE`` (deferred ``BEGIN`` for read-only units of work).
    An in-memory URL gets one shared connection. A SQLite URI (``file:/path?uri=true``) is
    opened by SQLite, read as SQLite reads it (:func:`.connections.sqlite_url_file`): when
    its mode lets SQLite create the file, the engine first creates it (0600, and a missing
    folder 0700 only with ``create_parents``, which defaults to "is this the default
    cache", :func:`is_default_database`) as for a plain path; a read-only URI (``mode=ro``,
    ``immutable=1``) opens the file as it is, without the switch to WAL.
    PostgreSQL: psycopg 3, a liveness check when the pool hands out a connection (see
    :func:`install_liveness_check`; ``pool_pre_ping`` given explicitly replaces it), and
    libpq ``options`` merged from the URL's query and ``connect_args``, plus sessions in UTC
    and ``lock_timeout`` = ``busy_timeout`` and ``jit`` off, where those options set no
    ``timezone`` / ``lock_timeout`` / ``jit`` of their own. ``for_reads`` (PostgreSQL, with
    ``isolation_level="AUTOCOMMIT"``): an engine for read-only units of work alone, whose
    sessions still default to read-only (see :func:`create_read_engine`).
    """
    parsed = parse_url(to_url(url))
    backend = parsed.get_backend_name()
    if create_parents is None:
        create_parents = is_default_database(to_url(url))
    if backend == "sqlite":
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS_MODES:
            raise CacheError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}")
        memory = is_memory_url(parsed)
        read_only = False
        path: Path | None = None
        connect_args: dict[str, Any] = {"timeout": busy_timeout}
        if memory:
            connect_args["check_same_thread"] = False
            kwargs.setdefault("poolclass", StaticPool)
        else:
            if query_value(parsed, "uri").lower() in ("true", "1") and not (parsed.database or "").startswith("file:"):
                raise CacheError("a SQLite URL with uri=true needs a database like file:/path/cache.db")
            # mode=ro, immutable=1: SQLite never writes the file (no switch to WAL).
            path, writable, creates = sqlite_url_file(parsed)
            read_only = not writable
            # Only where SQLite would create the file: we create it first, privately.
            if creates and path is not None:
                prepare_sqlite_file(path, create_parents=create_parents)
        kwargs.setdefault("connect_args", {}).update(connect_args)
        engine = create_engine(parsed, **kwargs)
        install_sqlite_events(
            engine, busy_timeout=busy_timeout, synchronous=synchronous, memory=memory, read_only=read_only, path=path
        )
        return engine
    if backend == "postgresql":
        recipe = (url, {"busy_timeout": busy_timeout, **kwargs})
        connect_args = kwargs["connect_args"] = dict(kwargs.get("connect_args") or {})
        options = _postgresql_options(parsed, connect_args.get("options") or "", busy_timeout)
        parsed = parsed.difference_update_query(["options"])
        connect_args["options"] = options
        engine = create_engine(parsed, **kwargs)
        install_postgresql_events(engine, options, kwargs, read_engine=for_reads)
        _made_with[engine] = recipe
        return engine
    raise CacheError(f"unsupported database {redact_url(parsed)}: use SQLite or PostgreSQL")


def create_read_engine(engine: Engine) -> Engine:
    """The engine for read-only units of work beside ``engine``.

    On PostgreSQL, where those units run in autocommit (:func:`.read_only.reads_in_autocommit`),
    a second engine of the same URL and options whose pool holds connections in autocommit
    with read-only sessions: a unit of work then takes a connection as it is, instead of
    switching it to autocommit and back on every checkout. Otherwise (SQLite, a PostgreSQL
    engine at a stricter level, or one not built here) ``engine`` itself. The second engine
    is disposed of with ``engine`` (and may be disposed of alone).
    """
    recipe = _made_with.get(engine)
    if recipe is None or not reads_in_autocommit(engine):
        return engine
    url, kwargs = recipe
    read_engine = create_engine_for_url(url, **{**kwargs, "isolation_level": "AUTOCOMMIT", "for_reads": True})
    pid = os.getpid()
    reads = weakref.ref(read_engine)

    def _disposed(_engine: Engine) -> None:
        current = reads()
        if current is not None:
            # dispose(close=False) is for a forked child, whose connections are the parent's.
            current.dispose(close=os.getpid() == pid)

    event.listen(engine, "engine_disposed", _disposed)
    return read_engine


def _postgresql_options(url: URL, given_options: str, busy_timeout: float) -> str:
    """One libpq options string: the URL's, then the caller's connect_args (the later -c
    wins), then ours where neither sets the parameter.
    """
    # Sessions in UTC: timestamptz values then arrive as UTC datetimes, which the
    # models hand out as they are instead of converting each one (stored values are
    # instants either way; nothing here depends on the session time zone).
    url_options = url.query.get("options", ())
    given = [url_options] if isinstance(url_options, str) else list(url_options)
    given.append(given_options)
    options = " ".join(part.strip() for part in given if part and part.strip())
    if not sets_pg_option(options, "timezone"):
        options = f"{options} -c timezone=UTC".strip()
    if not sets_pg_option(options, "lock_timeout"):
        # The busy timeout: a statement waiting longer for a lock fails with 55P03
        # (DatabaseBusyError) instead of waiting forever (the server's default; 0 = off).
        options = f"{options} -c lock_timeout={max(1, int(busy_timeout * 1000))}"
    if not sets_pg_option(options, "jit"):
        # Our statements are short; JIT compiling one costs ~100 ms (measured: the
        # 1,000-project summary went 13 -> 160 ms when stale statistics made its plan
        # look expensive, as after a first scan before autovacuum's ANALYZE).
        options = f"{options} -c jit=off"
    return options


def build_engine(
    env: str | None = None,
    database_url: str | None = None,
    *,
    busy_timeout: float | None = None,
    synchronous: str | None = None,
) -> Engine:
    """Resolve the database (see :func:`resolve_database_url`) and build its engine.

    The default ``~/.skillmeat/cache`` folder is created (mode 0700) when missing. The
    engine is not migrated here: :func:`skillmeat_cache.migration.prepare` does that (the
    container calls it when it starts the engine).
    """
    return create_engine_for_url(
        resolve_database_url(env, database_url),
        busy_timeout=10.0 if busy_timeout is None else float(busy_timeout),
        synchronous=synchronous or "NORMAL",
    )

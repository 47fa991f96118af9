"""How every connection is set up: SQLite's pragmas, WAL and the refusal of foreign
files, transactions begun by us (``BEGIN IMMEDIATE`` for writers, ``PRAGMA query_only``
for read-only units: see read_only.py), and PostgreSQL's liveness check and read-only
sessions.
"""

from __future__ import annotations

import os
import random
import re
import select
import sqlite3
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlparse

from sqlalchemy import Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from .errors import ConcurrentUseError, DatabaseError, ForeignDatabaseError
from .locations import ENV_VAR_URL, is_default_database, to_url
from .read_only import READ_ONLY_OPTION, install_postgresql_read_only, install_refusal, set_query_only
from .revision import KNOWN_REVISIONS

__all__ = [
    "PING_AFTER_IDLE_SECONDS",
    "SqliteTarget",
    "install_postgresql_events",
    "install_sqlite_events",
    "install_statement_hook",
    "prepare_sqlite_file",
    "query_value",
    "sets_pg_option",
    "sqlite_uri_path",
    "sqlite_url_file",
]

# Pool record info key: the transaction that sent BEGIN on the shared in-memory connection.
_BEGUN_BY = "skillmeat_begun_by"


def prepare_sqlite_file(path: Path, *, create_parents: bool) -> None:
    """Create the database folder (0700) and file (0600) before SQLite does, so that
    SQLite's umask-based defaults never expose the cache to other users.
    """
    parent = path.parent
    if not parent.exists():
        if not create_parents:
            raise DatabaseError(f"cannot open database {path}: folder {parent} does not exist")
        try:
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            # The default folder under HOME (a read-only or odd HOME): name it and the way out.
            raise DatabaseError(
                f"cannot create the cache folder {parent}: {exc.strerror}; "
                f"choose a database file with --db PATH or {ENV_VAR_URL}"
            ) from None
    elif not parent.is_dir():
        raise DatabaseError(f"cannot open database {path}: {parent} is not a folder")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        if path.is_dir():
            raise DatabaseError(f"cannot open database {path}: it is a folder") from None
        return
    except OSError as exc:
        raise DatabaseError(f"cannot create database {path}: {exc.strerror}") from None
    os.close(fd)


def sqlite_uri_path(database: str) -> Path | None:
    """The file a SQLite ``file:`` URI names (``file:/abs``, ``file:///abs``, ``file:rel``);
    None for an in-memory or temporary database, or a host SQLite will refuse.
    """
    parts = urlparse(database)
    if parts.netloc not in ("", "localhost"):
        return None
    path = unquote(parts.path)
    if path in ("", ":memory:"):
        return None
    return Path(path)


class SqliteTarget(NamedTuple):
    """What a SQLite URL names: the file (absolute; None in memory), whether SQLite may
    write it, and whether it creates the file when it is missing.
    """

    path: Path | None
    writable: bool
    creates: bool


def _sqlite_boolean(value: str) -> bool:
    """A URI parameter as SQLite reads a boolean: digits by their value (the low byte),
    ``yes``/``true``/``on`` (any case) true, anything else false.
    """
    digits = re.match(r"[0-9]+", value)
    if digits:
        return int(digits[0]) & 0xFF != 0
    return value.lower() in ("yes", "true", "on")


def sqlite_url_file(url: URL) -> SqliteTarget:
    """The file a SQLite URL names, as SQLite reads the URL. A ``uri=true`` URL: ``mode``
    ``ro`` (or any mode but ``rw``/``rwc``, which SQLite refuses) and a true ``immutable``
    (``1``, ``yes``...; ``immutable=0`` is not) are read-only; ``mode=memory``, a ``file:``
    URI without a path or with a host SQLite refuses name no file; SQLite creates a
    missing file only for mode ``rwc`` (the default). A plain path is written and
    created. One reading for the engine and the commands that open the file themselves
    (``check``, ``repair``).
    """
    if url.database in (None, "", ":memory:"):
        return SqliteTarget(None, True, False)
    if query_value(url, "uri").lower() not in ("true", "1"):
        return SqliteTarget(Path(url.database).absolute(), True, True)
    mode = query_value(url, "mode")  # SQLite matches the mode exactly: RO is refused, not read-only
    path = None if mode == "memory" else sqlite_uri_path(url.database)
    writable = mode in ("", "rw", "rwc", "memory") and not _sqlite_boolean(query_value(url, "immutable"))
    return SqliteTarget(None if path is None else path.absolute(), writable, mode in ("", "rwc"))


def _set_wal(cursor: Any, busy_timeout: float) -> None:
    """Switch the file to WAL, retrying while another connection does the same.

    On a new file the switch needs an exclusive lock, and SQLite answers a second
    connection switching at that moment with SQLITE_BUSY at once, without its busy
    handler; processes opening a new cache together hit that. Once the file is in WAL
    the statement takes no lock, so the loop ends on the first try.
    """
    _retry_busy(lambda: cursor.execute("PRAGMA journal_mode = WAL"), busy_timeout)


def _retry_busy(step: Callable[[], Any], busy_timeout: float) -> None:
    """Run ``step``, again while SQLite answers SQLITE_BUSY / SQLITE_LOCKED, for at least
    a second (see :func:`_set_wal`).
    """
    deadline = time.monotonic() + max(busy_timeout, 1.0)
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in (5, 6) or time.monotonic() > deadline:
                raise
        time.sleep(random.uniform(0.005, 0.03))


# Tables every revision of ours holds, and tables that make a file SkillMeat's own cache,
# which lives at our default path (~/.skillmeat/cache/cache.db).
_CORE_TABLES = frozenset({"projects", "artifacts", "artifact_metadata", "marketplace", "cache_metadata"})
_SKILLMEAT_TABLES = frozenset({"collections", "collection_artifacts", "marketplace_sources"})


def _refuse_foreign(cursor: Any, path: Path | None) -> None:
    """ForeignDatabaseError when the file already holds tables that are not a
    skillmeat-cache database. Only reads (the schema and ``alembic_version``): it runs
    before the connection changes anything, the switch to WAL included.

    Ours: no table yet; an ``alembic_version`` at a revision we know; or all our core
    tables, whatever the revision (newer code: refused later with a clear
    SchemaVersionError; a lost ``alembic_version``: found by the schema checks). Anything
    else is foreign, and SkillMeat's own cache when it has SkillMeat's tables or a
    revision we do not know.
    """
    rows = cursor.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!'"
    ).fetchall()
    tables = {name for (name,) in rows}
    if not tables - {"alembic_version"}:
        return
    revision = None
    if "alembic_version" in tables:
        found = cursor.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = found[0] if found else None
    skillmeat = bool(tables & _SKILLMEAT_TABLES)
    if not skillmeat:
        if revision in KNOWN_REVISIONS:
            return
        if tables >= _CORE_TABLES:  # ours: from newer code, or damaged (left to the schema checks)
            return
        skillmeat = revision is not None  # SkillMeat's cache is Alembic-managed too
    where = str(path) if path is not None else "the database file"
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    default = path is not None and is_default_database(to_url(path))
    if skillmeat:
        what = "is SkillMeat's own cache" if default else "looks like SkillMeat's own cache"
        what += f" (tables {shown}; Alembic revision {revision or 'none'})"
    else:
        what = f"holds another program's tables ({shown})"
    raise ForeignDatabaseError(
        f"{where} {what}, not a skillmeat-cache database; left untouched: "
        f"choose another file with --db PATH or {ENV_VAR_URL}"
    )


def install_sqlite_events(
    engine: Engine,
    *,
    busy_timeout: float,
    synchronous: str,
    memory: bool,
    read_only: bool = False,
    path: Path | None = None,
) -> None:
    """Set up every new SQLite connection of ``engine`` (pragmas, WAL, the foreign-file
    check) and begin its transactions ourselves (``_begin`` below).
    """
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver (its legacy mode emits no BEGIN).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if not memory:  # before anything that writes: a foreign file is never changed
                # A new file another process is switching to WAL is locked for a moment.
                _retry_busy(lambda: _refuse_foreign(cursor, path), busy_timeout)
            cursor.execute("PRAGMA foreign_keys = ON")
            if not memory and not read_only:  # a mode=ro connection cannot switch the file to WAL
                _set_wal(cursor, busy_timeout)
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
            cursor.execute("PRAGMA temp_store = MEMORY")
        finally:
            cursor.close()

    def _begin(cursor: Any, context: Any) -> None:
        transaction = context.root_connection.get_transaction() if context is not None else None
        if transaction is None:  # not in a SQLAlchemy transaction (AUTOCOMMIT): nothing to begin
            if context is not None and not cursor.connection.in_transaction:
                info = context.root_connection.connection.info
                set_query_only(cursor.connection, info, bool(context.execution_options.get(READ_ONLY_OPTION)))
            return
        dbapi_connection = cursor.connection
        if dbapi_connection.in_transaction:
            if memory:
                owner = context.root_connection.connection.info.get(_BEGUN_BY)
                if owner is None or owner() is not transaction:
                    raise ConcurrentUseError(
                        "the in-memory test database has one connection and it is in use by another unit of work; "
                        "run units of work on it one after another"
                    )
            return
        # Straight to the driver, just before the transaction's first statement (so a
        # writer holds the write lock before it reads anything). Errors (SQLITE_BUSY after
        # busy_timeout) come out as the statement's own, wrapped by SQLAlchemy. A read-only
        # unit's transaction has query_only on: SQLite refuses its writes (read_only.py).
        read_only_unit = bool(context.execution_options.get(READ_ONLY_OPTION))
        info = context.root_connection.connection.info
        set_query_only(dbapi_connection, info, read_only_unit)
        dbapi_connection.execute("BEGIN" if read_only_unit else "BEGIN IMMEDIATE")
        if memory:
            info[_BEGUN_BY] = weakref.ref(transaction)

    # Dialect-level hooks, not the engine's ``begin`` event: any engine-level listener
    # makes SQLAlchemy join event dispatchers for every connection and statement, which
    # cost a unit of work more than the BEGIN itself (docs/performance.md).
    install_statement_hook(engine, _begin)
    install_refusal(engine)


def install_statement_hook(engine: Engine, hook: Callable[[Any, Any], None]) -> None:
    """Call ``hook(cursor, context)`` before every statement the engine's dialect sends
    (``execute``, ``executemany``, no-parameter ``execute``). ``context`` is SQLAlchemy's
    execution context (it may be None for a statement sent outside one).
    """

    def _execute(cursor: Any, _statement: str, _parameters: Any, context: Any = None) -> None:
        hook(cursor, context)

    def _execute_no_params(cursor: Any, _statement: str, context: Any = None) -> None:
        hook(cursor, context)

    event.listen(engine, "do_execute", _execute)
    event.listen(engine, "do_executemany", _execute)
    event.listen(engine, "do_execute_no_params", _execute_no_params)


# A pooled PostgreSQL connection idle longer than this is pinged (one round trip) before
# use; a busier one is only checked locally (see install_liveness_check).
PING_AFTER_IDLE_SECONDS = 30.0


def install_liveness_check(engine: Engine) -> None:
    """Replace SQLAlchemy's ``pool_pre_ping`` (a round trip before every unit of work)
    with a check that costs a round trip only after a long idle spell.

    A server that restarts or terminates a backend sends an error and closes the socket,
    so a pooled connection whose socket is readable while idle is dead: that check is a
    local ``poll()``. A connection idle for ``PING_AFTER_IDLE_SECONDS`` (a firewall may
    have dropped it without a word) is pinged as ``pool_pre_ping`` would. Either way a
    dead connection raises DisconnectionError, on which the pool discards it and checks
    out another: the unit of work never sees it.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["skillmeat_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        info = record.info
        idle_since = info.get("skillmeat_idle_since")
        if idle_since is None:  # a new connection
            return
        try:
            # poll(), unlike select(), takes descriptors above 1023. One poller per
            # connection, kept while its descriptor is (a new DBAPI connection clears info).
            fileno = dbapi_connection.fileno()
            poller = info.get("skillmeat_poller")
            if poller is None or poller[0] != fileno:
                poller = info["skillmeat_poller"] = (fileno, select.poll())
                poller[1].register(fileno, select.POLLIN)
            readable = poller[1].poll(0)
        except Exception:  # closed (psycopg: OperationalError), or a driver without fileno()
            raise sa_exc.DisconnectionError("connection closed while idle in the pool") from None
        if readable:
            raise sa_exc.DisconnectionError("the server closed the connection while it was idle in the pool")
        if time.monotonic() - idle_since > PING_AFTER_IDLE_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except Exception as exc:
                raise sa_exc.DisconnectionError("connection did not answer a ping after idling") from exc


def install_postgresql_events(
    engine: Engine, options: str, kwargs: dict[str, Any], *, read_engine: bool = False
) -> None:
    """The liveness check (unless the caller asked for ``pool_pre_ping``), and sessions
    that default to read-only transactions while our writers begin READ WRITE (see
    read_only.py), unless the options set that default or the engine runs in autocommit
    (``read_engine``: an autocommit engine for read-only units of work, read-only sessions).
    """
    if "pool_pre_ping" not in kwargs:
        install_liveness_check(engine)
    own_default = not sets_pg_option(options, "default_transaction_read_only")
    install_postgresql_read_only(
        engine, own_default and kwargs.get("isolation_level") != "AUTOCOMMIT", read_engine=own_default and read_engine
    )


def query_value(url: URL, name: str) -> str:
    """The last value of a query parameter, or ``""``."""
    value = url.query.get(name, "")
    return value if isinstance(value, str) else (value[-1] if value else "")


def sets_pg_option(options: str, name: str) -> bool:
    """True when a libpq ``options`` string sets the server parameter ``name``
    (``-c name=v``, ``-cname=v`` or ``--name=v``; ``-`` and ``_`` alike in the name).
    """
    pattern = r"(?:^|\s)(?:-c\s*|--)" + re.escape(name).replace("_", "[_-]") + r"\s*="
    return re.search(pattern, options, re.IGNORECASE) is not None

"""Building engines: where the database lives and how every connection is set up.

Nothing here runs at import time; the composition root (``containers.py``) or the CLI
calls these functions.
"""

from __future__ import annotations

import os
import random
import re
import select
import sqlite3
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from .errors import CacheError, ConcurrentUseError, DatabaseError, ForeignDatabaseError
from .read_only import READ_ONLY_OPTION, install_postgresql_read_only, install_refusal, set_query_only
from .revision import KNOWN_REVISIONS

__all__ = [
    "ENVIRONMENTS",
    "READ_ONLY_OPTION",
    "SYNCHRONOUS_MODES",
    "build_engine",
    "create_engine_for_url",
    "default_database_path",
    "is_default_database",
    "parse_url",
    "redact_url",
    "resolve_database_url",
    "to_url",
]

ENVIRONMENTS = ("production", "dev", "test")
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
MEMORY_URL = "sqlite://"
ENV_VAR_ENV = "SKILLMEAT_CACHE_ENV"
ENV_VAR_URL = "SKILLMEAT_CACHE_URL"

# Pool record info key: the transaction that sent BEGIN on the shared in-memory connection.
_BEGUN_BY = "skillmeat_begun_by"


_DEFAULT_FILES = {"production": "cache.db", "dev": "dev.db"}


def default_database_path(env: str) -> Path:
    """The SQLite file of an environment: ``~/.skillmeat/cache/{cache,dev}.db``.

    The one place that decides where the default cache lives (see also
    :func:`is_default_database`).
    """
    if env not in _DEFAULT_FILES:
        raise CacheError(f"environment {env!r} has no database file (choose one of {', '.join(ENVIRONMENTS)})")
    home = os.environ.get("HOME")
    # HOME="" would put the cache at /.skillmeat, a relative one in whatever folder we run in.
    if home is not None and not os.path.isabs(home):
        raise CacheError(
            f"HOME is not an absolute folder ({home!r}), so the default cache has no place; "
            f"choose a database file with --db PATH or {ENV_VAR_URL}"
        )
    return Path(os.path.expanduser("~")) / ".skillmeat" / "cache" / _DEFAULT_FILES[env]


def is_default_database(url: str | URL) -> bool:
    """True when ``url`` is one of the default cache files (``production`` or ``dev``):
    the only databases whose folder we create (0700) when it is missing.
    """
    text = to_url(url if isinstance(url, str) else url.render_as_string(hide_password=False))
    if not text.startswith("sqlite"):
        return False
    try:
        return any(text == to_url(default_database_path(env)) for env in _DEFAULT_FILES)
    except CacheError:  # no usable HOME: nothing is the default
        return False


def to_url(url_or_path: str | os.PathLike[str]) -> str:
    """A database URL from a URL or a bare filesystem path (a bare path means SQLite)."""
    text = os.fspath(url_or_path)
    if "://" in text:
        if text.startswith("postgresql://") or text.startswith("postgres://"):
            # psycopg 3 is the driver we declare; SQLAlchemy's default would be psycopg2.
            text = "postgresql+psycopg://" + text.split("://", 1)[1]
        return text
    return "sqlite:///" + str(Path(text).expanduser().absolute())


def resolve_database_url(
    env: str | None = None,
    database_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Pick the database URL.

    Explicit arguments win: ``database_url`` over ``env``. Only when neither is given do
    the environment variables ``SKILLMEAT_CACHE_URL`` then ``SKILLMEAT_CACHE_ENV`` fill
    in, so that a test that sets ``env="test"`` never touches a real cache. The default
    is ``production``. ``env="test"`` means a private in-memory SQLite database.
    """
    environ = os.environ if environ is None else environ
    if not database_url and not env:
        database_url = environ.get(ENV_VAR_URL) or None
        env = environ.get(ENV_VAR_ENV) or None
    if database_url:
        return to_url(database_url)
    env = env or "production"
    if env not in ENVIRONMENTS:
        raise CacheError(f"unknown environment {env!r}: choose one of {', '.join(ENVIRONMENTS)}")
    if env == "test":
        return MEMORY_URL
    return to_url(default_database_path(env))


def parse_url(url: str) -> URL:
    """The parsed database URL; a CacheError that never repeats the URL (it may hold a
    password), also for an unescaped ``@`` that would put part of the password in the
    host name.
    """
    try:
        parsed = make_url(url)
    except (ValueError, sa_exc.ArgumentError):
        raise CacheError(
            "not a valid database URL (not shown: it may hold a password); "
            "expected a path or e.g. postgresql://user:password@host:5432/dbname"
        ) from None
    if parsed.host and "@" in parsed.host:
        raise CacheError(
            "the database URL holds more than one '@' (not shown: it may hold a password); "
            "write an '@' inside the user name or password as %40"
        )
    return parsed


def redact_url(url: str | URL) -> str:
    """The URL as text with any password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: say nothing of it that could hold a secret
        return "<unparseable database URL>"


def is_memory_url(url: URL) -> bool:
    """True for an in-memory SQLite URL."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _prepare_sqlite_file(path: Path, *, create_parents: bool) -> None:
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


def _sqlite_uri_path(database: str) -> Path | None:
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


def _install_sqlite_events(
    engine: Engine,
    *,
    busy_timeout: float,
    synchronous: str,
    memory: bool,
    read_only: bool = False,
    path: Path | None = None,
) -> None:
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
# use; a busier one is only checked locally (see _install_liveness_check).
PING_AFTER_IDLE_SECONDS = 30.0


def _install_liveness_check(engine: Engine) -> None:
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
        idle_since = record.info.get("skillmeat_idle_since")
        if idle_since is None:  # a new connection
            return
        try:
            # poll(), unlike select(), takes descriptors above 1023.
            poller = select.poll()
            poller.register(dbapi_connection.fileno(), select.POLLIN)
            readable = poller.poll(0)
        except Exception:  # closed (psycopg: OperationalError), or a driver without fileno()
            raise sa_exc.DisconnectionError("connection closed while idle in the pool") from None
        if readable:
            raise sa_exc.DisconnectionError("the server closed the connection while it was idle in the pool")
        if time.monotonic() - idle_since > PING_AFTER_IDLE_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except Exception as exc:
                raise sa_exc.DisconnectionError("connection did not answer a ping after idling") from exc


def _install_postgresql_events(engine: Engine, options: str, kwargs: dict[str, Any]) -> None:
    """The liveness check (unless the caller asked for ``pool_pre_ping``), and sessions
    that default to read-only transactions while our writers begin READ WRITE (see
    read_only.py), unless the options set that default or the engine runs in autocommit.
    """
    if "pool_pre_ping" not in kwargs:
        _install_liveness_check(engine)
    own_default = not _sets_pg_option(options, "default_transaction_read_only")
    install_postgresql_read_only(engine, own_default and kwargs.get("isolation_level") != "AUTOCOMMIT")


def _query_value(url: URL, name: str) -> str:
    """The last value of a query parameter, or ``""``."""
    value = url.query.get(name, "")
    return value if isinstance(value, str) else (value[-1] if value else "")


def _sets_pg_option(options: str, name: str) -> bool:
    """True when a libpq ``options`` string sets the server parameter ``name``
    (``-c name=v``, ``-cname=v`` or ``--name=v``; ``-`` and ``_`` alike in the name).
    """
    pattern = r"(?:^|\s)(?:-c\s*|--)" + re.escape(name).replace("_", "[_-]") + r"\s*="
    return re.search(pattern, options, re.IGNORECASE) is not None


def create_engine_for_url(
    url: str,
    *,
    busy_timeout: float = 10.0,
    synchronous: str = "NORMAL",
    create_parents: bool | None = None,
    **kwargs: Any,
) -> Engine:
    """An engine for ``url`` with our connection set-up.

    SQLite: WAL, ``synchronous`` (NORMAL by default; FULL survives power loss),
    ``foreign_keys=ON``, ``temp_store=MEMORY``, ``busy_timeout`` seconds, and transactions
    that start with ``BEGIN IMMEDIATE`` (deferred ``BEGIN`` for read-only units of work).
    An in-memory URL gets one shared connection. A SQLite URI (``file:/path?uri=true``) is
    opened by SQLite; when its mode lets SQLite create the file, the engine first creates it
    (0600, and a missing folder 0700 only with ``create_parents``, which defaults to "is
    this the default cache", :func:`is_default_database`) as for a plain path; a
    ``mode=ro`` URI opens the file as it is, without the switch to WAL.
    PostgreSQL: psycopg 3, a liveness check when the pool hands out a connection (see
    :func:`_install_liveness_check`; ``pool_pre_ping`` given explicitly replaces it), and
    libpq ``options`` merged from the URL's query and ``connect_args``, plus sessions in UTC
    and ``lock_timeout`` = ``busy_timeout`` where those options set no ``timezone`` /
    ``lock_timeout`` of their own.
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
        elif _query_value(parsed, "uri").lower() in ("true", "1"):
            if not (parsed.database or "").startswith("file:"):
                raise CacheError("a SQLite URL with uri=true needs a database like file:/path/cache.db")
            mode = _query_value(parsed, "mode").lower()
            # immutable=1: SQLite reads the file as it is and never writes it (no WAL switch).
            read_only = mode == "ro" or _query_value(parsed, "immutable").lower() in ("1", "true")
            path = _sqlite_uri_path(parsed.database or "")
            path = path.absolute() if path is not None else None
            # Only a mode that lets SQLite create the file: we create it first, privately.
            if mode in ("", "rwc") and path is not None:
                _prepare_sqlite_file(path, create_parents=create_parents)
        else:
            path = Path(parsed.database or "").absolute()
            _prepare_sqlite_file(path, create_parents=create_parents)
        kwargs.setdefault("connect_args", {}).update(connect_args)
        engine = create_engine(parsed, **kwargs)
        _install_sqlite_events(
            engine, busy_timeout=busy_timeout, synchronous=synchronous, memory=memory, read_only=read_only, path=path
        )
        return engine
    if backend == "postgresql":
        # Sessions in UTC: timestamptz values then arrive as UTC datetimes, which the
        # models hand out as they are instead of converting each one (stored values are
        # instants either way; nothing here depends on the session time zone).
        # One options string: the URL's, then the caller's connect_args (the later -c wins),
        # then ours where neither sets the parameter.
        connect_args = kwargs["connect_args"] = dict(kwargs.get("connect_args") or {})
        url_options = parsed.query.get("options", ())
        given = [url_options] if isinstance(url_options, str) else list(url_options)
        given.append(connect_args.get("options") or "")
        options = " ".join(part.strip() for part in given if part and part.strip())
        parsed = parsed.difference_update_query(["options"])
        if not _sets_pg_option(options, "timezone"):
            options = f"{options} -c timezone=UTC".strip()
        if not _sets_pg_option(options, "lock_timeout"):
            # The busy timeout: a statement waiting longer for a lock fails with 55P03
            # (DatabaseBusyError) instead of waiting forever (the server's default; 0 = off).
            options = f"{options} -c lock_timeout={max(1, int(busy_timeout * 1000))}"
        connect_args["options"] = options
        engine = create_engine(parsed, **kwargs)
        _install_postgresql_events(engine, options, kwargs)
        return engine
    raise CacheError(f"unsupported database {redact_url(parsed)}: use SQLite or PostgreSQL")


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

"""Running the Alembic migrations, from code and from the ``alembic`` command.

Alembic is imported inside the functions that need it, so that the read path never
loads it. Every run holds the database's write lock (SQLite ``BEGIN IMMEDIATE``, a
PostgreSQL advisory lock) before it reads the current revision: processes that start a
migration at the same moment queue up, and the late ones find the database at head.
On PostgreSQL a migration waits for its locks as long as it takes (``lock_timeout = 0``
for its transaction, whatever the engine's ``busy_timeout``): behind another process's
migration, and with its DDL behind units of work that hold the tables. On SQLite the
wait for the write lock is bounded by ``busy_timeout``.
On SQLite, migrations run with foreign keys off (a batch table copy would otherwise
cascade-delete child rows) and end with ``PRAGMA foreign_key_check``.
Every run on a SQLite file that has a schema first copies the file beside itself
(``cache.db.pre-<revision>``) and puts the copy back if the run fails
(:mod:`.migration_copies`; not the ``alembic`` command's runs).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.pool import NullPool

from .db_errors import map_db_error
from .engine import READ_ONLY_OPTION, create_engine_for_url, is_memory_url, to_url
from .errors import DatabaseError, SchemaVersionError
from .migration_copies import CopyNeedsLock, copy_before_migration, migration_lock, restore_after_failure, sqlite_file
from .revision import HEAD_REVISION, KNOWN_REVISIONS, check_schema, read_revision

__all__ = [
    "HEAD_REVISION",
    "alembic_config",
    "alembic_errors",
    "current_revision",
    "downgrade",
    "downgrade_engine",
    "include_name",
    "migrate",
    "migrate_engine",
    "migration_transaction",
    "migrations_path",
    "prepare",
    "refuse_unknown_revision",
    "revision_of",
]

# What revision 0007 builds beside artifact_search on one engine only, which the models
# cannot declare: SQLite's FTS5 table (and its shadow tables), PostgreSQL's trigram index.
_ENGINE_SPECIFIC = ("artifact_search_fts", "idx_artifact_search_trgm")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's ``include_name`` hook for comparing the models with a database: the
    search index's engine-specific parts are left out (see revision 0007).
    """
    return not (name or "").startswith(_ENGINE_SPECIFIC)


# Arbitrary constant: the key of the PostgreSQL advisory lock migrations take.
_PG_LOCK_KEY = 0x5C111EA7


def migrations_path() -> Path:
    """The folder holding env.py and versions/ (shipped as ``skillmeat_cache.migrations``)."""
    module = importlib.import_module("skillmeat_cache.migrations")
    return Path(next(iter(module.__path__)))


def alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic ``Config`` without an ini file, pointing at our scripts."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def migration_transaction(connection: Connection) -> Iterator[Connection]:
    """One transaction, holding the write lock, for a migration run on ``connection``.

    On PostgreSQL the transaction sets ``lock_timeout = 0``: it waits as long as it takes
    for the advisory lock and for the locks its DDL needs.
    """
    sqlite = connection.dialect.name == "sqlite"
    if connection.in_transaction():
        connection.commit()
    raw = connection.connection.dbapi_connection if sqlite else None
    if raw is not None:
        # A no-op inside a transaction, so it goes straight to the driver before BEGIN.
        raw.execute("PRAGMA foreign_keys = OFF")
    try:
        with connection.begin():
            if not sqlite:
                # No lock_timeout for this transaction: queue behind another migration, and
                # let DDL wait for readers, however long (the session's is busy_timeout).
                connection.exec_driver_sql("SET LOCAL lock_timeout = 0")
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            yield connection
            if sqlite:
                problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise DatabaseError(f"migration left {len(problems)} rows with broken foreign keys")
    finally:
        if raw is not None:
            raw.execute("PRAGMA foreign_keys = ON")


def _run(connection: Connection, direction: str, revision: str, *, copy: bool = True) -> None:
    config = alembic_config(connection)
    database = sqlite_file(connection) if copy else None
    try:
        _run_once(connection, config, direction, revision, database, locked=False)
    except CopyNeedsLock:
        assert database is not None
        with migration_lock(database):
            _run_once(connection, config, direction, revision, database, locked=True)


def _run_once(
    connection: Connection, config: Any, direction: str, revision: str, database: Path | None, *, locked: bool
) -> None:
    """One migration run; on a SQLite file with a schema, with a copy taken first and put
    back if the run fails (see :mod:`.migration_copies`).
    """
    from alembic import command

    copy = None
    try:
        with migration_transaction(connection):
            if database is not None:
                copy = copy_before_migration(connection, config, database, direction, revision, locked=locked)
            if direction == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
    except BaseException as exc:
        mapped = map_db_error(exc)
        if copy is not None:
            reason = str(mapped).splitlines()[0] if str(mapped) else type(mapped).__name__
            restore_after_failure(copy, connection, exc, reason)
        if mapped is exc:
            raise
        raise mapped from exc


def _engine_for(url: str) -> Engine:
    return create_engine_for_url(to_url(url), poolclass=NullPool)


def revision_of(engine: Engine) -> str | None:
    """The revision the database behind ``engine`` is at; None when it has no schema."""
    with engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as connection:
        return read_revision(connection)


def prepare(engine: Engine, *, auto_migrate: bool = False) -> None:
    """Make ``engine``'s database ready for units of work, as the container does when it
    starts an engine.

    The in-memory test database is always migrated (nothing else could). With
    ``auto_migrate``, a SQLite database with no schema or at an older revision is
    migrated to head, and any other database not at head raises ``SchemaVersionError``
    (a PostgreSQL cache is shared: it is migrated only by ``skillmeat-cache migrate``).
    Without it nothing is read here: the first unit of work checks the revision.
    """
    if is_memory_url(engine.url):
        migrate_engine(engine)
        return
    if not auto_migrate:
        return
    current = revision_of(engine)
    if current == HEAD_REVISION:
        return
    if engine.dialect.name == "sqlite" and (current is None or current in KNOWN_REVISIONS):
        migrate_engine(engine)
        return
    with engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as connection:
        check_schema(connection)


def refuse_unknown_revision(engine: Engine) -> None:
    """SchemaVersionError when the database is at a revision this code does not know
    (written by a newer version): Alembic could neither upgrade nor downgrade it.
    """
    current = revision_of(engine)
    if current is not None and current not in KNOWN_REVISIONS:
        with engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as connection:
            check_schema(connection)


@contextmanager
def alembic_errors() -> Iterator[None]:
    """Alembic's refusals (an unknown target revision...) as one line of ours."""
    from alembic.util.exc import CommandError

    try:
        yield
    except CommandError as exc:
        raise SchemaVersionError(f"migration refused: {str(exc).splitlines()[0] if str(exc) else exc}") from exc


def migrate_engine(engine: Engine, revision: str = "head", *, copy: bool = True) -> None:
    """Upgrade the database behind ``engine`` to ``revision``. ``copy=False``: no copy
    of a SQLite file first (``repair`` migrates a file it is building, its old one kept).
    """
    with engine.connect() as connection:
        _run(connection, "upgrade", revision, copy=copy)


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` (a URL or a SQLite file path) to ``revision``.

    Safe to call from several processes at once.
    """
    engine = _engine_for(url)
    try:
        migrate_engine(engine, revision)
    finally:
        engine.dispose()


def downgrade_engine(engine: Engine, revision: str) -> None:
    """Downgrade the database behind ``engine`` to ``revision`` (``base`` drops every table)."""
    with engine.connect() as connection:
        _run(connection, "downgrade", revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``base`` drops every table)."""
    engine = _engine_for(url)
    try:
        downgrade_engine(engine, revision)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at; None when it has no schema."""
    engine = _engine_for(url)
    try:
        with engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as connection:
            return read_revision(connection)
    finally:
        engine.dispose()

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
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.pool import NullPool

from .engine import READ_ONLY_OPTION, create_engine_for_url, default_database_path, to_url
from .errors import DatabaseError, map_db_error
from .revision import HEAD_REVISION, read_revision

__all__ = [
    "HEAD_REVISION",
    "alembic_config",
    "current_revision",
    "downgrade",
    "migrate",
    "migrate_engine",
    "migration_transaction",
    "migrations_path",
]

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


def _run(connection: Connection, direction: str, revision: str) -> None:
    from alembic import command

    config = alembic_config(connection)
    try:
        with migration_transaction(connection):
            if direction == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
    except Exception as exc:
        mapped = map_db_error(exc)
        if mapped is exc:
            raise
        raise mapped from exc


def _engine_for(url: str) -> Engine:
    url = to_url(url)
    own_folder = url in (to_url(default_database_path("production")), to_url(default_database_path("dev")))
    return create_engine_for_url(url, poolclass=NullPool, create_parents=own_folder)


def migrate_engine(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``."""
    with engine.connect() as connection:
        _run(connection, "upgrade", revision)


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` (a URL or a SQLite file path) to ``revision``.

    Safe to call from several processes at once.
    """
    engine = _engine_for(url)
    try:
        migrate_engine(engine, revision)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``base`` drops every table)."""
    engine = _engine_for(url)
    try:
        with engine.connect() as connection:
            _run(connection, "downgrade", revision)
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

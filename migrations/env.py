"""Alembic environment for skillmeat-cache.

Called two ways: by ``skillmeat_cache.migrate`` with a live connection in
``config.attributes["connection"]`` (already inside the locked migration transaction),
or by the ``alembic`` command, where the database is ``-x url=...``, else
``sqlalchemy.url`` from the ini, else SKILLMEAT_CACHE_URL / SKILLMEAT_CACHE_ENV as the
container resolves them.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.pool import NullPool

from skillmeat_cache.engine import create_engine_for_url, resolve_database_url, to_url
from skillmeat_cache.migration import include_name, migration_transaction
from skillmeat_cache.models import Base

config = context.config
target_metadata = Base.metadata
if config.config_file_name and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        transactional_ddl=True,
        compare_type=True,
        include_name=include_name,
    )


def _url() -> str:
    # to_url: a bare path means SQLite, postgresql:// means psycopg 3, online and offline alike.
    return to_url(
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or resolve_database_url()
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a live connection, holding the write lock."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine_for_url(_url(), poolclass=NullPool, create_parents=True)
    try:
        with engine.connect() as connection, migration_transaction(connection):
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

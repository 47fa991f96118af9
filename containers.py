"""The composition root: the only module that imports dependency-injector.

    container = Container()
    container.config.from_dict({"env": "dev"})          # or database_url=...
    with container.unit_of_work() as uow:
        ...

Config keys: ``env`` (production | dev | test), ``database_url`` (wins over env),
``busy_timeout`` (seconds, default 10), ``synchronous`` (NORMAL | FULL, default NORMAL).
When the config sets neither ``env`` nor ``database_url``, the environment variables
SKILLMEAT_CACHE_URL and SKILLMEAT_CACHE_ENV fill them; explicit config always wins, so a
test that sets ``env="test"`` never touches a real cache.

``env="test"`` without a URL is a private in-memory SQLite database, migrated by the
container when it builds the engine. It has one connection: its units of work must run
one after another (overlapping use raises ConcurrentUseError).
"""

from __future__ import annotations

from collections.abc import Iterator

from dependency_injector import containers, providers
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from skillmeat_cache.engine import build_engine
from skillmeat_cache.uow import UnitOfWork

__all__ = ["Container"]


def _engine_resource(
    env: str | None, database_url: str | None, busy_timeout: float | None, synchronous: str | None
) -> Iterator[Engine]:
    engine = build_engine(env, database_url, busy_timeout=busy_timeout, synchronous=synchronous)
    try:
        yield engine
    finally:
        engine.dispose()


class Container(containers.DeclarativeContainer):
    """Wires the engine, the session factory and units of work for dev, test and production."""

    config = providers.Configuration()

    engine = providers.Resource(
        _engine_resource,
        env=config.env,
        database_url=config.database_url,
        busy_timeout=config.busy_timeout,
        synchronous=config.synchronous,
    )
    session_factory = providers.Singleton(sessionmaker, bind=engine, expire_on_commit=False)
    unit_of_work = providers.Factory(UnitOfWork, session_factory=session_factory)
    read_only_unit_of_work = providers.Factory(UnitOfWork, session_factory=session_factory, read_only=True)

"""The composition root: the only module of the package that imports dependency-injector.

    container = Container()
    container.config.from_dict({"env": "dev", "auto_migrate": True})
    with container.unit_of_work() as uow:                  # writes
        ...
    with container.unit_of_work(read_only=True) as uow:   # reads
        ...
    container.reader().project_summaries()                 # read models, no entities
    container.shutdown_resources()                         # disposes of the engines

Config keys:

- ``env`` (production | dev | test) and ``database_url`` (wins over ``env``). When the
  config sets neither, the environment variables SKILLMEAT_CACHE_URL and
  SKILLMEAT_CACHE_ENV fill them; explicit config always wins, so a test that sets
  ``env="test"`` never touches a real cache.
- ``busy_timeout`` (seconds, default 10) and ``synchronous`` (NORMAL | FULL, default
  NORMAL): see :func:`skillmeat_cache.engine.create_engine_for_url`.
- ``auto_migrate`` (default false): when the engine starts, bring a SQLite database to
  the code's schema revision (create it, or upgrade it from an older revision). A
  PostgreSQL database is never migrated behind its users' backs: it is checked, and a
  unit of work on one that is not at head raises ``SchemaVersionError``. The CLI and the
  server set it; service code decides for itself.

``env="test"`` without a URL is a private in-memory SQLite database, always migrated.
It has one connection: its units of work must run one after another (overlapping use
raises ConcurrentUseError).

Nothing is built at import time, and the ORM, the repositories and Alembic are imported
only when a provider that needs them is first called, so a command that only reads a
view (``skillmeat-cache projects``) never loads them.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

# dependency-injector's wiring imports FastAPI and Starlette when they are installed, for
# `wire()`'s `Depends` markers; we never wire, and the imports cost every CLI command
# ~130 ms (S3 in docs/performance.md). Its providers import pydantic (11 ms) only to read
# its version when pydantic-settings is missing, which `from_pydantic` needs on pydantic 2
# anyway. Hidden while it loads, unless already imported; imported normally afterwards
# (the server's own import of FastAPI and pydantic is unaffected).


class _Hidden:
    """A meta path finder that refuses some names: the compiled providers module imports
    through sys.modules, where a None entry would be taken for the module itself.
    """

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name in self.names:
            raise ModuleNotFoundError(f"{name} is hidden while dependency-injector loads", name=name)


_OPTIONAL = ("fastapi.params", "starlette.requests")
_hidden = [name for name in _OPTIONAL if name not in sys.modules]
sys.modules.update(dict.fromkeys(_hidden, None))
_finder = _Hidden(set() if "pydantic" in sys.modules or importlib.util.find_spec("pydantic_settings") else {"pydantic"})
sys.meta_path.insert(0, _finder)
try:
    from dependency_injector import containers, providers
finally:
    sys.meta_path.remove(_finder)
    for _name in _hidden:
        if sys.modules.get(_name, 0) is None:
            del sys.modules[_name]
from sqlalchemy import Engine  # noqa: E402

from .engine import build_engine, create_read_engine  # noqa: E402

if TYPE_CHECKING:
    from .uow import UnitOfWork
    from .views import Reader

__all__ = ["Container"]


def _engine_resource(
    env: str | None,
    database_url: str | None,
    busy_timeout: float | None,
    synchronous: str | None,
    auto_migrate: bool | None,
) -> Iterator[Engine]:
    engine = build_engine(env, database_url, busy_timeout=busy_timeout, synchronous=synchronous)
    try:
        from .migration import prepare

        prepare(engine, auto_migrate=bool(auto_migrate))
        yield engine
    finally:
        engine.dispose()


def _read_engine_resource(engine: Engine) -> Iterator[Engine]:
    read_engine = create_read_engine(engine)
    try:
        yield read_engine
    finally:
        if read_engine is not engine:
            read_engine.dispose()


def _session_factory(engine: Engine) -> Callable[[], Any]:
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(bind=engine, expire_on_commit=False)


def _unit_of_work(
    session_factory: Callable[[], Any], read_session_factory: Callable[[], Any], read_only: bool = False
) -> UnitOfWork:
    uow_class = _uow_class()
    if read_only:
        return uow_class(read_session_factory(), read_only=True)
    return uow_class(session_factory, read_only=False)


@functools.cache
def _uow_class() -> type[UnitOfWork]:
    # Imported on first use (the ORM is not loaded by commands that only read views),
    # once: an import statement costs ~1.5 µs per unit of work even when loaded.
    from .uow import UnitOfWork

    return UnitOfWork


def _reader(engine: Engine) -> Reader:
    from .views import Reader

    return Reader(engine)


class Container(containers.DeclarativeContainer):
    """Wires the engine, the session factory, units of work and read models for dev,
    test and production. A unit of work is a new instance per call (a ``Factory``);
    ``unit_of_work(read_only=True)`` gives a read-only one, on ``read_engine`` (on
    PostgreSQL a second pool whose connections stay in autocommit; otherwise ``engine``).
    """

    config = providers.Configuration()

    engine = providers.Resource(
        _engine_resource,
        env=config.env,
        database_url=config.database_url,
        busy_timeout=config.busy_timeout,
        synchronous=config.synchronous,
        auto_migrate=config.auto_migrate,
    )
    # Read-only units of work on PostgreSQL: a second pool, in autocommit (see
    # engine.create_read_engine); elsewhere the same engine.
    read_engine = providers.Resource(_read_engine_resource, engine)
    session_factory = providers.Singleton(_session_factory, engine)
    read_session_factory = providers.Singleton(_session_factory, read_engine)
    unit_of_work = providers.Factory(
        _unit_of_work, session_factory=session_factory, read_session_factory=read_session_factory.provider
    )
    reader = providers.Factory(_reader, engine)

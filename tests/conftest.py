"""Shared fixtures: real databases (a SQLite file under tmp_path, a throwaway PostgreSQL
database), migrated by our own migrations."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from dependency_injector import providers
from sqlalchemy import Engine, text

from benchmarks.postgres import throwaway_postgres_database
from skillmeat_cache import UnitOfWork, migrate
from skillmeat_cache.cli import main
from skillmeat_cache.container import Container
from skillmeat_cache.engine import create_engine_for_url
from skillmeat_cache.errors import DatabaseUnavailableError

PG_ADMIN_URL = os.environ.get("SKILLMEAT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TABLES = ("artifact_tags", "artifact_metadata", "artifacts", "projects", "marketplace", "cache_metadata")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
    pytest.skip(f"PostgreSQL not reachable: {reason}")


@contextmanager
def throwaway_pg_database(prefix: str, options: str = "") -> Iterator[str]:
    """Create an empty PostgreSQL database (``options``: extra CREATE DATABASE clauses),
    yield its URL, drop it afterwards. Skips without a reachable server, fails under CI=true."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(throwaway_postgres_database(PG_ADMIN_URL, prefix, options))
        except DatabaseUnavailableError as exc:
            _pg_unavailable(str(exc))
        yield url


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this run, migrated to head; dropped at the end."""
    with throwaway_pg_database("skillmeat_test") as url:
        migrate(url)
        yield url


@pytest.fixture(scope="session")
def collated_pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database whose collation is not byte order (ICU ``en-US``:
    ``"a" < "B"``, ``lower("É") = "é"``), where the server offers ICU; else its default."""
    icu = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
    try:
        with throwaway_pg_database("skillmeat_icu", icu) as url:
            migrate(url)
            yield url
            return
    except Exception as exc:  # a server without ICU (or older than 15)
        if "icu" not in str(exc).lower() and "locale" not in str(exc).lower():
            raise
    with throwaway_pg_database("skillmeat_icu") as url:
        migrate(url)
        yield url


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """An empty PostgreSQL database of this test's own (no schema); dropped afterwards."""
    with throwaway_pg_database("skillmeat_fresh") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; tests copy it."""
    path = tmp_path_factory.mktemp("template") / "cache.db"
    migrate(str(path))
    return path


def _sqlite_url(template: Path, tmp_path: Path) -> str:
    path = tmp_path / "cache.db"
    shutil.copyfile(template, path)
    return "sqlite:///" + str(path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        yield _sqlite_url(sqlite_template, tmp_path)
        return
    url = request.getfixturevalue("pg_server_url")
    engine = create_engine_for_url(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty SQLite file."""
    return _sqlite_url(sqlite_template, tmp_path)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the migrated database, with a short busy timeout."""
    eng = create_engine_for_url(db_url, busy_timeout=2)
    yield eng
    eng.dispose()


def container_on(engine: Engine) -> Container:
    """A container whose engine provider is overridden by ``engine`` (the dependency-injector
    way to point every unit of work at a test database); the caller disposes of the engine.
    """
    container = Container()
    container.engine.override(providers.Object(engine))
    return container


def units_of_work(engine: Engine) -> Callable[..., UnitOfWork]:
    """The container's unit-of-work factory on ``engine``: ``factory(read_only=True)``."""
    return container_on(engine).unit_of_work


def factory_for(url: str, **engine_kwargs: Any) -> tuple[Engine, Callable[..., UnitOfWork]]:
    """An engine on ``url`` (busy timeout 2 s unless given) and units of work on it; the
    caller disposes of the engine."""
    engine_kwargs.setdefault("busy_timeout", 2)
    engine = create_engine_for_url(url, **engine_kwargs)
    return engine, units_of_work(engine)


def write_file(path: Path, content: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to ``path``, creating its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def refuse_scandir(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    """Make the scanner's ``os.scandir`` refuse these folders as an unreadable folder would
    (permission bits do not stop root, so tests simulate the refusal here)."""
    refused = {str(path.resolve()) for path in paths}
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if os.fspath(path) in refused:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


def named_keys(keys: dict[tuple[str, str, str], str]) -> dict[tuple[str, str], str]:
    """``keys_for_project``'s ``{(type, path, name): id}`` as ``{(type, name): id}`` for
    tests whose artifacts each have a distinct (type, name)."""
    named = {(type_, name): id_ for (type_, _path, name), id_ in keys.items()}
    assert len(named) == len(keys), keys
    return named


def succeeded(result: Result) -> Result:
    """A CLI result that exited 0 without an exception."""
    assert result.exit_code == 0 and result.exception is None, (result.output, result.exception)
    return result


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Runs the CLI with a private HOME and none of our environment variables set."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("SKILLMEAT_CACHE_URL", "SKILLMEAT_CACHE_ENV", "SKILLMEAT_CACHE_SYNCHRONOUS"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args))


@pytest.fixture
def uow_factory(engine: Engine) -> Callable[..., UnitOfWork]:
    """Makes units of work on ``engine``."""
    return units_of_work(engine)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "fake"])
def any_uow(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Callable[..., Any]]:
    """Unit-of-work factories on each real backend and on the fake: contract tests."""
    if request.param == "fake":
        from skillmeat_cache.testing import FakeStore

        store = FakeStore()
        yield lambda read_only=False: store.unit_of_work(read_only=read_only)
        return
    url = _sqlite_url(sqlite_template, tmp_path) if request.param == "sqlite" else request.getfixturevalue("db_url_pg")
    eng, factory = factory_for(url)
    yield factory
    eng.dispose()


@pytest.fixture
def db_url_pg(pg_server_url: str) -> str:
    """The PostgreSQL test database, emptied."""
    engine = create_engine_for_url(pg_server_url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    engine.dispose()
    return pg_server_url

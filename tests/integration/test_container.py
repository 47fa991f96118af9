"""The composition root: configuration, engines per environment, and overrides."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading

import pytest
from dependency_injector import providers
from sqlalchemy import Engine

from containers import Container
from skillmeat_cache import (
    CacheError,
    ConcurrentUseError,
    Project,
    SchemaVersionError,
    migrate,
)
from skillmeat_cache.engine import create_engine_for_url, resolve_database_url


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SKILLMEAT_CACHE_URL", raising=False)
    monkeypatch.delenv("SKILLMEAT_CACHE_ENV", raising=False)
    return tmp_path / "home"


@pytest.fixture
def container():
    c = Container()
    c.config.from_dict({"env": "test"})
    yield c
    c.shutdown_resources()


@pytest.mark.parametrize(
    ("env", "url", "environ", "expected"),
    [
        (None, None, {}, "sqlite:///{home}/.skillmeat/cache/cache.db"),
        ("dev", None, {}, "sqlite:///{home}/.skillmeat/cache/dev.db"),
        ("test", None, {}, "sqlite://"),
        ("dev", "/data/x.db", {}, "sqlite:////data/x.db"),
        (None, None, {"SKILLMEAT_CACHE_URL": "/env/x.db"}, "sqlite:////env/x.db"),
        (None, None, {"SKILLMEAT_CACHE_ENV": "dev"}, "sqlite:///{home}/.skillmeat/cache/dev.db"),
        ("test", None, {"SKILLMEAT_CACHE_URL": "/env/x.db"}, "sqlite://"),  # explicit config wins
        (None, "postgresql://u:pw@h/db", {}, "postgresql+psycopg://u:pw@h/db"),
    ],
)
def test_database_url_resolution(home, env, url, environ, expected):
    assert resolve_database_url(env, url, environ) == expected.format(home=home)


def test_unknown_environment_is_refused(home):
    with pytest.raises(CacheError, match="staging"):
        resolve_database_url("staging")


def test_test_env_is_an_in_memory_database_migrated_and_shared_by_units_of_work(container):
    uow_a, uow_b = container.unit_of_work(), container.unit_of_work()
    assert uow_a is not uow_b  # a Factory, never a shared instance
    with uow_a:
        uow_a.projects.add(Project(name="p", path="/work/p"))
    with uow_b:
        assert uow_b.projects.count() == 1
    with container.unit_of_work(read_only=True) as uow:
        assert uow.read_only and uow.projects.count() == 1


def test_overlapping_units_of_work_on_the_test_database_raise_our_error(container):
    with container.unit_of_work() as outer:
        outer.projects.count()
        with pytest.raises(ConcurrentUseError), container.unit_of_work() as inner:
            inner.projects.count()
        assert outer.projects.count() == 0


def test_overlap_from_another_thread_also_raises_our_error(container):
    errors = []
    with container.unit_of_work() as outer:
        outer.projects.count()

        def other():
            try:
                with container.unit_of_work() as inner:
                    inner.projects.count()
            except Exception as exc:
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and isinstance(errors[0], ConcurrentUseError)


@pytest.mark.parametrize(("env", "filename"), [("dev", "dev.db"), ("production", "cache.db")])
def test_file_environments_live_under_home_with_private_permissions(home, env, filename):
    c = Container()
    c.config.from_dict({"env": env})
    engine = c.engine()
    try:
        path = home / ".skillmeat" / "cache" / filename
        assert engine.url.database == str(path)
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with pytest.raises(SchemaVersionError, match="migrate"), c.unit_of_work() as uow:
            uow.projects.count()
        migrate(str(path))
        with c.unit_of_work() as uow:
            uow.projects.add(Project(name="p", path="/work/p"))
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
    finally:
        c.shutdown_resources()


def test_settings_reach_every_connection(home, tmp_path):
    c = Container()
    c.config.from_dict({"database_url": str(tmp_path / "s.db"), "busy_timeout": 2.5, "synchronous": "full"})
    try:
        with c.engine().connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2500
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY
    finally:
        c.shutdown_resources()


def test_environment_variable_fills_an_empty_config(home, tmp_path, monkeypatch):
    path = tmp_path / "from-env.db"
    monkeypatch.setenv("SKILLMEAT_CACHE_URL", str(path))
    c = Container()
    try:
        assert c.engine().url.database == str(path)
    finally:
        c.shutdown_resources()


@pytest.fixture
def overridden(container, tmp_path, sqlite_url):
    """The dependency-injector way: override providers for a test, reset after."""
    engine = create_engine_for_url(sqlite_url)
    with container.engine.override(providers.Object(engine)):
        yield container, engine
    engine.dispose()


def test_engine_override_sends_units_of_work_to_the_overriding_engine(overridden):
    container, engine = overridden
    with container.unit_of_work() as uow:
        uow.projects.add(Project(name="p", path="/work/p"))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT name FROM projects").scalars().all() == ["p"]


def test_unit_of_work_override_with_a_mock(container, mocker):
    fake = mocker.MagicMock(name="uow")
    fake.__enter__.return_value = fake
    with container.unit_of_work.override(providers.Object(fake)), container.unit_of_work() as uow:
        uow.projects.add("x")
    fake.projects.add.assert_called_once_with("x")
    fake.__exit__.assert_called_once()
    assert container.unit_of_work() is not fake  # override reset


def test_engine_is_built_lazily_once_and_disposed_on_shutdown(home, mocker):
    from skillmeat_cache import container as containers

    built = []
    real = containers.build_engine

    def spy(*args, **kwargs):
        engine = real(*args, **kwargs)
        built.append(engine)
        return engine

    mocker.patch.object(containers, "build_engine", side_effect=spy)
    c = Container()
    c.config.from_dict({"env": "test"})
    assert built == []
    c.unit_of_work()
    c.unit_of_work()
    assert len(built) == 1 and isinstance(built[0], Engine)
    dispose = mocker.spy(built[0], "dispose")
    c.shutdown_resources()
    dispose.assert_called_once()


def test_importing_builds_nothing_and_loads_no_alembic(tmp_path):
    code = (
        "import sys, containers, skillmeat_cache\n"
        "assert 'alembic' not in sys.modules, 'alembic imported'\n"
        "import os\n"
        "assert not os.path.exists(os.path.expanduser('~/.skillmeat')), 'cache folder created'\n"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_auto_migrate_brings_a_sqlite_file_to_head_and_the_reader_answers(home, tmp_path):
    path = tmp_path / "auto.db"
    c = Container()
    c.config.from_dict({"database_url": str(path), "auto_migrate": True})
    try:
        with c.unit_of_work() as uow:
            uow.projects.add(Project(name="p", path="/work/p"))
        with c.unit_of_work(read_only=True) as uow:
            assert [p.name for p in uow.projects.list()] == ["p"]
        assert [s["name"] for s in c.reader().project_summaries()] == ["p"]
        assert c.unit_of_work() is not c.unit_of_work()  # a Factory: never a shared instance
    finally:
        c.shutdown_resources()


def test_auto_migrate_upgrades_an_older_sqlite_revision(home, tmp_path):
    path = tmp_path / "old.db"
    migrate(str(path), "0003")
    c = Container()
    c.config.from_dict({"database_url": str(path), "auto_migrate": True})
    try:
        assert c.reader().status()["revision"] == c.reader().status()["head"]
    finally:
        c.shutdown_resources()


def test_without_auto_migrate_a_new_file_is_left_alone(home, tmp_path):
    path = tmp_path / "manual.db"
    c = Container()
    c.config.from_dict({"database_url": str(path)})
    try:
        with pytest.raises(SchemaVersionError, match="migrate"), c.unit_of_work() as uow:
            uow.projects.count()
        with pytest.raises(SchemaVersionError, match="migrate"):
            c.reader().status()
    finally:
        c.shutdown_resources()


@pytest.mark.postgres
def test_auto_migrate_never_migrates_postgresql(fresh_pg_url):
    from skillmeat_cache.migration import current_revision

    c = Container()
    c.config.from_dict({"database_url": fresh_pg_url, "auto_migrate": True})
    try:
        with pytest.raises(SchemaVersionError, match="skillmeat-cache migrate"):
            c.engine()
        assert current_revision(fresh_pg_url) is None
    finally:
        c.shutdown_resources()


def test_one_function_decides_the_default_cache(home, tmp_path, monkeypatch):
    from skillmeat_cache.engine import default_database_path, is_default_database

    assert is_default_database(resolve_database_url("production"))
    assert is_default_database(resolve_database_url("dev"))
    assert is_default_database(str(home / ".skillmeat" / "cache" / "cache.db"))
    assert not is_default_database(str(tmp_path / "cache.db"))
    assert not is_default_database("postgresql://u@h/db")
    monkeypatch.setenv("HOME", "relative/home")
    with pytest.raises(CacheError, match="HOME is not an absolute folder"):
        default_database_path("production")
    assert not is_default_database(str(tmp_path / "cache.db"))


def test_an_empty_home_is_refused_by_the_cli_without_creating_anything(run, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", "")
    monkeypatch.chdir(tmp_path)
    result = run("status")
    assert result.exit_code == 1
    assert result.output.startswith("error: HOME is not an absolute folder")
    assert list(tmp_path.iterdir()) == []

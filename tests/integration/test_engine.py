"""Engine and migration set-up: PostgreSQL lock timeouts and options, the pool's liveness
check, SQLite URI URLs."""

from __future__ import annotations

import os
import resource
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import container_on, units_of_work
from sqlalchemy import Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from skillmeat_cache import Project, UnitOfWork, migrate
from skillmeat_cache.connections import sqlite_url_file
from skillmeat_cache.engine import create_engine_for_url
from skillmeat_cache.errors import DatabaseReadOnlyError
from skillmeat_cache.migration import _PG_LOCK_KEY, HEAD_REVISION, current_revision, migrate_engine


def _psycopg_connect(url: str) -> Any:
    import psycopg

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(plain, autocommit=True)


def _count_connects(engine: Engine) -> list[int]:
    """The socket descriptor of every PostgreSQL connection the engine makes, in order."""
    made: list[int] = []
    event.listen(engine, "connect", lambda dbapi_connection, _record: made.append(dbapi_connection.fileno()))
    return made


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_migration_waits_for_another_migration_longer_than_the_lock_timeout(fresh_pg_url):
    """A migration queued behind another process's migration waits as long as it takes,
    whatever the engine's busy_timeout (= the session's lock_timeout), then finds head."""
    engine = create_engine_for_url(fresh_pg_url, busy_timeout=0.5)
    holder = _psycopg_connect(fresh_pg_url)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate_engine(engine)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    try:
        holder.execute("SELECT pg_advisory_lock(%s)", (_PG_LOCK_KEY,))
        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(1.5)
        assert worker.is_alive() and not errors, errors
    finally:
        holder.execute("SELECT pg_advisory_unlock_all()")
        holder.close()
    worker.join(30)
    engine.dispose()
    assert not worker.is_alive()
    assert not errors, errors
    assert current_revision(fresh_pg_url) == HEAD_REVISION


@pytest.mark.postgres
def test_options_in_a_postgres_url_are_kept_and_merged(pg_server_url):
    """``options`` in the URL's query reach the server; ours are added only where missing."""
    options = quote("-c search_path=foo -c lock_timeout=5000")
    engine = create_engine_for_url(f"{pg_server_url}?options={options}", busy_timeout=1)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW search_path").scalar() == "foo"
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "5s"
            assert conn.exec_driver_sql("SHOW timezone").scalar() == "UTC"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_options_from_url_and_connect_args_are_merged(pg_server_url):
    engine = create_engine_for_url(
        f"{pg_server_url}?options={quote('-c search_path=foo')}",
        busy_timeout=2,
        connect_args={"options": "-c application_name=merged"},
    )
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW search_path").scalar() == "foo"
            assert conn.exec_driver_sql("SHOW application_name").scalar() == "merged"
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "2s"
            assert conn.exec_driver_sql("SHOW timezone").scalar() == "UTC"
            assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_jit_stays_as_the_url_sets_it(pg_server_url):
    engine = create_engine_for_url(f"{pg_server_url}?options={quote('-c jit=on')}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW jit").scalar() == "on"
    finally:
        engine.dispose()


@pytest.fixture
def many_open_files() -> Iterator[None]:
    """Descriptors 0 - 1024 all taken, so the next socket's number is above select()'s limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip(f"cannot open more than {hard} files")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    fds: list[int] = []
    try:
        while not fds or fds[-1] < 1024:
            fds.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in fds:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.postgres
@pytest.mark.parametrize("read_only", [False, True])
def test_liveness_check_keeps_connections_whose_descriptor_is_above_1024(db_url_pg, many_open_files, read_only):
    engine = create_engine_for_url(db_url_pg, busy_timeout=2)
    bind, uow = _units_on(engine, read_only)
    made = _count_connects(bind)
    try:
        for _ in range(3):
            with uow() as u:
                assert u.projects.count() == 0
        assert made[0] >= 1024
        assert len(made) == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("read_only", [False, True])
def test_a_pooled_connection_closed_behind_the_pools_back_is_replaced(db_url_pg, read_only):
    engine = create_engine_for_url(db_url_pg, busy_timeout=2)
    bind, uow = _units_on(engine, read_only)
    made = _count_connects(bind)
    try:
        with units_of_work(engine)() as u:
            u.projects.add(Project(name="p", path="/p"))
        with uow() as u:
            assert u.projects.count() == 1
        raw = bind.raw_connection()
        driver_connection = raw.driver_connection
        raw.close()  # back in the pool, alive
        driver_connection.close()
        with uow() as u:
            assert u.projects.count() == 1
        assert len(made) == 2
    finally:
        engine.dispose()


def _units_on(engine: Engine, read_only: bool) -> tuple[Engine, Callable[[], UnitOfWork]]:
    """Units of work of one kind on ``engine`` through the container, and the engine they
    take connections from (read-only ones: the read engine's pool)."""
    container = container_on(engine)
    bind = container.read_engine() if read_only else engine
    assert (bind is engine) is not read_only
    return bind, lambda: container.unit_of_work(read_only=read_only)



# --------------------------------------------------------------------------- SQLite URIs


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("form", ["file:{}", "file://{}"])
def test_a_sqlite_uri_creates_a_private_file_in_a_private_folder(tmp_path, form):
    """Without ``mode=ro`` SQLite would create the file with umask permissions; the engine
    creates it (0600) and, when asked to create missing folders, its folder (0700) first."""
    old = os.umask(0o022)
    try:
        db = tmp_path / "new-folder" / "cache.db"
        engine = create_engine_for_url(f"sqlite:///{form.format(db)}?uri=true", create_parents=True)
        migrate_engine(engine)
        engine.dispose()
        assert _mode(db) == 0o600
        assert _mode(db.parent) == 0o700
        assert current_revision(str(db)) == HEAD_REVISION

        chosen = tmp_path / "chosen"
        chosen.mkdir()
        engine = create_engine_for_url(f"sqlite:///file:{chosen / 'cache.db'}?uri=true&cache=private")
        migrate_engine(engine)
        engine.dispose()
        assert _mode(chosen / "cache.db") == 0o600
        assert _mode(chosen) == 0o755  # a folder the user chose is left as it is
    finally:
        os.umask(old)


def test_a_sqlite_uri_to_a_missing_folder_is_refused_as_for_a_plain_path(tmp_path):
    from skillmeat_cache.errors import DatabaseError

    db = tmp_path / "missing" / "cache.db"
    with pytest.raises(DatabaseError, match="does not exist"):
        create_engine_for_url(f"sqlite:///file:{db}?uri=true")
    assert not db.parent.exists()


def test_a_read_only_uri_opens_a_file_in_rollback_journal_mode(tmp_path):
    path = tmp_path / "cache.db"
    migrate(str(path))
    engine = create_engine_for_url(str(path))
    with units_of_work(engine)() as u:
        u.projects.add(Project(name="p", path="/p"))
    engine.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    conn.close()

    engine = create_engine_for_url(f"sqlite:///file:{path}?mode=ro&uri=true", busy_timeout=2)
    uow = units_of_work(engine)
    try:
        for _ in range(2):
            with uow(read_only=True) as u:
                assert u.projects.count() == 1
        with pytest.raises(DatabaseReadOnlyError), uow() as u:
            u.projects.add(Project(name="n", path="/n"))
    finally:
        engine.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert conn.execute("SELECT count(*) FROM projects").fetchone() == (1,)
    conn.close()


def _rollback_journal_cache(path: Path) -> None:
    """A migrated cache with one project, in rollback-journal mode (a WAL switch shows)."""
    migrate(str(path))
    engine = create_engine_for_url(str(path))
    with units_of_work(engine)() as u:
        u.projects.add(Project(name="p", path="/p"))
    engine.dispose()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    conn.close()


@pytest.mark.parametrize(
    ("query", "writable"),
    [
        (None, True),  # a plain path
        ("mode=rwc", True),
        ("mode=rw", True),
        ("immutable=0", True),  # SQLite's false: written as any file
        ("immutable=no", True),
        ("immutable=256", True),  # SQLite keeps the low byte: 0
        ("mode=ro", False),
        ("immutable=1", False),
        ("immutable=yes", False),
        ("immutable=2", False),
        ("mode=rwc&immutable=1", False),
    ],
)
def test_a_sqlite_url_is_read_only_exactly_where_sqlite_says_so(tmp_path, query, writable):
    path = tmp_path / "cache.db"
    _rollback_journal_cache(path)
    url = str(path) if query is None else f"sqlite:///file:{path}?uri=true&{query}"
    # What SQLite itself does with the URI: the engine must agree.
    if query is not None:
        direct = sqlite3.connect(f"file:{path}?{query}", uri=True)
        try:
            direct.execute("CREATE TABLE probe (x)")
            direct.execute("DROP TABLE probe")
            sqlite_writes = True
        except sqlite3.OperationalError as exc:
            assert exc.sqlite_errorname == "SQLITE_READONLY"
            sqlite_writes = False
        finally:
            direct.close()
        assert sqlite_writes is writable
    # check and repair read the URL through the same function as the engine.
    target = sqlite_url_file(make_url(url if query else f"sqlite:///{url}"))
    assert target == (path, writable, query is None or "mode=r" not in query or "mode=rwc" in query)

    engine = create_engine_for_url(url, busy_timeout=2)
    uow = units_of_work(engine)
    try:
        with uow(read_only=True) as u:
            assert u.projects.count() == 1
        if writable:
            with uow() as u:
                u.projects.add(Project(name="n", path="/n"))
        else:
            with pytest.raises(DatabaseReadOnlyError), uow() as u:
                u.projects.add(Project(name="n", path="/n"))
    finally:
        engine.dispose()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        # A writable URL switches the file to WAL; a read-only one leaves it as it is.
        assert conn.execute("PRAGMA journal_mode").fetchone() == (("wal",) if writable else ("delete",))
        assert conn.execute("SELECT count(*) FROM projects").fetchone() == ((2,) if writable else (1,))
    finally:
        conn.close()


@pytest.mark.parametrize(("query", "created"), [(None, True), ("mode=rwc", True), ("mode=ro", False),
                                                ("mode=rw", False)])
def test_a_missing_sqlite_file_is_created_privately_where_sqlite_would_create_it(tmp_path, query, created):
    path = tmp_path / "new.db"
    url = str(path) if query is None else f"sqlite:///file:{path}?uri=true&{query}"
    old = os.umask(0o022)
    try:
        engine = create_engine_for_url(url)
    finally:
        os.umask(old)
    try:
        if created:
            assert _mode(path) == 0o600
            migrate_engine(engine)
            assert current_revision(str(path)) == HEAD_REVISION
        else:
            assert not path.exists()
            with pytest.raises(sa_exc.OperationalError):
                engine.connect()
            assert not path.exists(), "SQLite opens, never creates, a file for mode=ro / mode=rw"
    finally:
        engine.dispose()


def test_an_in_memory_sqlite_uri_names_no_file(tmp_path):
    for url in (f"sqlite:///file:{tmp_path / 'x.db'}?uri=true&mode=memory", "sqlite://", "sqlite:///:memory:"):
        assert sqlite_url_file(make_url(url)).path is None
    engine = create_engine_for_url(f"sqlite:///file:{tmp_path / 'x.db'}?uri=true&mode=memory", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()
    assert list(tmp_path.iterdir()) == []

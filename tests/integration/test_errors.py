"""Error mapping on real databases: duplicates, foreign keys, busy, and the retry helper."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from skillmeat_cache import (
    Artifact,
    CacheError,
    ConstraintViolationError,
    DatabaseBusyError,
    DatabaseError,
    DatabaseReadOnlyError,
    DatabaseUnavailableError,
    DuplicateError,
    ForeignKeyViolationError,
    Project,
    UnitOfWork,
    run_with_retry,
)
from skillmeat_cache.db_errors import describe_error, map_db_error
from skillmeat_cache.engine import create_engine_for_url


def test_duplicate_project_path_names_table_and_chains_the_driver_error(uow_factory, engine):
    with uow_factory() as uow:
        uow.projects.add(Project(name="a", path="/work/a"))
    with pytest.raises(DuplicateError) as info, uow_factory() as uow:
        uow.projects.add(Project(name="b", path="/work/a"))
    err = info.value
    assert err.table == "projects"
    assert isinstance(err.__cause__, sa_exc.IntegrityError)
    if engine.dialect.name == "postgresql":
        assert err.constraint == "uq_projects_path"
    else:
        assert err.constraint == "projects.path"
    assert isinstance(err, ConstraintViolationError) and isinstance(err, CacheError)


def test_duplicate_primary_key_is_a_duplicate(uow_factory):
    with uow_factory() as uow:
        uow.projects.add(Project(id="same", name="a", path="/work/a"))
    with pytest.raises(DuplicateError), uow_factory() as uow:
        uow.projects.add(Project(id="same", name="b", path="/work/b"))


def test_foreign_key_violation(uow_factory, engine):
    with pytest.raises(ForeignKeyViolationError) as info, uow_factory() as uow:
        uow.artifacts.add(Artifact(project_id="ghost", name="x", type="skill"))
    if engine.dialect.name == "postgresql":
        assert info.value.constraint == "fk_artifacts_project_id_projects"
        assert info.value.table == "artifacts"


def test_check_constraint_in_the_database_backs_up_model_validation(uow_factory):
    """A write that bypasses the model (raw SQL) still meets the named CHECK."""
    with uow_factory() as uow:
        p = uow.projects.add(Project(name="a", path="/work/a"))
    with pytest.raises(ConstraintViolationError) as info, uow_factory() as uow:
        uow.session.execute(text("UPDATE projects SET status = 'gone' WHERE id = :id"), {"id": p.id})
        uow.commit()
    assert not isinstance(info.value, (DuplicateError, ForeignKeyViolationError))
    assert "ck_projects_status" in str(info.value)


_HOLD_LOCK = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("ROLLBACK")
    """
)


def _hold_write_lock(path: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, path, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_busy_database_raises_database_busy_error_after_the_timeout(sqlite_url):
    engine = create_engine_for_url(sqlite_url, busy_timeout=0.3)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    holder = _hold_write_lock(sqlite_url.removeprefix("sqlite:///"), 5)
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseBusyError) as info, UnitOfWork(factory) as uow:
            uow.projects.add(Project(name="a", path="/work/a"))
        elapsed = time.monotonic() - started
        assert info.value.retryable is True
        assert isinstance(info.value.__cause__, sa_exc.OperationalError)
        assert info.value.__cause__.orig.sqlite_errorcode & 0xFF == 5
        assert 0.25 < elapsed < 4  # waited for the busy timeout, not for the holder
    finally:
        holder.kill()
        holder.wait()
        engine.dispose()


def test_retry_helper_reruns_the_whole_unit_of_work_until_the_lock_is_released(sqlite_url):
    engine = create_engine_for_url(sqlite_url, busy_timeout=0.1)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    holder = _hold_write_lock(sqlite_url.removeprefix("sqlite:///"), 0.8)
    calls = []

    def work(uow):
        calls.append(1)
        return uow.projects.add(Project(name="a", path="/work/a")).id

    try:
        project_id = run_with_retry(lambda: UnitOfWork(factory), work, attempts=20, initial_wait=0.05, max_wait=0.2)
    finally:
        holder.wait()
    assert len(calls) >= 2  # the first attempt met the lock
    with UnitOfWork(factory) as uow:
        assert [p.id for p in uow.projects.list()] == [project_id]
    engine.dispose()


def test_retry_helper_gives_up_with_the_busy_error_and_does_not_retry_other_errors(sqlite_url):
    engine = create_engine_for_url(sqlite_url, busy_timeout=0.05)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    holder = _hold_write_lock(sqlite_url.removeprefix("sqlite:///"), 5)
    try:
        with pytest.raises(DatabaseBusyError):
            run_with_retry(lambda: UnitOfWork(factory), lambda uow: uow.projects.count(), attempts=3, max_wait=0.05)
    finally:
        holder.kill()
        holder.wait()
    calls = []

    def failing(uow):
        calls.append(1)
        raise DuplicateError("not retryable")

    with pytest.raises(DuplicateError):
        run_with_retry(lambda: UnitOfWork(factory), failing, attempts=5)
    assert calls == [1]
    engine.dispose()


@pytest.mark.postgres
def test_postgres_lock_timeout_is_a_busy_error(pg_server_url):
    url = pg_server_url
    engine = create_engine_for_url(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with UnitOfWork(factory) as uow:
        uow.session.execute(text("TRUNCATE projects CASCADE"))
        p = uow.projects.add(Project(name="locked", path="/work/locked"))
    holder = engine.connect()
    holder.execute(text("SELECT 1 FROM projects WHERE id = :id FOR UPDATE"), {"id": p.id})
    try:
        with pytest.raises(DatabaseBusyError) as info, UnitOfWork(factory) as uow:
            uow.session.execute(text("SET LOCAL lock_timeout = '200ms'"))
            uow.projects.get(p.id).name = "renamed"
        assert info.value.__cause__.orig.sqlstate == "55P03"
    finally:
        holder.rollback()
        holder.close()
    with UnitOfWork(factory) as uow:
        assert uow.projects.get(p.id).name == "locked"
        uow.session.execute(text("TRUNCATE projects CASCADE"))
    engine.dispose()


@pytest.mark.postgres
def test_postgres_busy_timeout_is_the_lock_timeout(pg_server_url):
    """Without it a PostgreSQL lock wait never ends (the server's default lock_timeout is 0);
    the wait itself: tests/integration/test_reliability.py::
    test_postgres_lock_conflicts_are_busy_errors_and_retry_succeeds.
    """
    engines = [
        create_engine_for_url(pg_server_url),
        create_engine_for_url(pg_server_url, busy_timeout=2.5),
        create_engine_for_url(pg_server_url, busy_timeout=0),  # 0 would switch the timeout off
        create_engine_for_url(pg_server_url, connect_args={"options": "-c lock_timeout=0"}),
    ]
    try:
        seen = []
        for engine in engines:
            with engine.connect() as conn:
                seen.append(
                    (conn.exec_driver_sql("SHOW lock_timeout").scalar(), conn.exec_driver_sql("SHOW timezone").scalar())
                )
    finally:
        for engine in engines:
            engine.dispose()
    assert seen == [("10s", "UTC"), ("2500ms", "UTC"), ("1ms", "UTC"), ("0", "UTC")]


def _driver_error(message: str, **codes: object) -> sa_exc.DatabaseError:
    class Orig(Exception):
        pass

    orig = Orig(message)
    for name, value in codes.items():
        setattr(orig, name, value)
    return sa_exc.DatabaseError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    ("message", "codes", "expected"),
    [
        # The message says one thing, the code another: the code wins.
        ("UNIQUE constraint failed: projects.path", {"sqlite_errorcode": 5}, DatabaseBusyError),
        ("database is locked", {"sqlite_errorcode": 2067}, DuplicateError),
        ("database is locked", {"sqlstate": "23505"}, DuplicateError),
        ("duplicate key value", {"sqlstate": "40P01"}, DatabaseBusyError),
        # An extended code without its own line maps by its primary code...
        ("attempt to write a readonly database", {"sqlite_errorcode": 264}, DatabaseReadOnlyError),
        # ...and a SQLSTATE without its own line by its class.
        ("check", {"sqlstate": "23514"}, ConstraintViolationError),
        ("no route", {"sqlstate": "08001"}, DatabaseUnavailableError),
        ("syntax", {"sqlstate": "42601"}, DatabaseError),
        ("I/O", {"sqlite_errorcode": 10}, DatabaseError),
    ],
)
def test_errors_are_told_by_code_never_by_message(message, codes, expected):
    mapped = map_db_error(_driver_error(message, **codes))
    assert type(mapped) is expected


def test_sqlite_constraint_errors_name_table_and_columns_from_the_message():
    mapped = map_db_error(
        _driver_error("UNIQUE constraint failed: artifacts.project_id, artifacts.name", sqlite_errorcode=2067)
    )
    assert isinstance(mapped, DuplicateError)
    assert (mapped.table, mapped.constraint) == ("artifacts", "artifacts.project_id, artifacts.name")
    assert str(mapped) == "duplicate on table artifacts (artifacts.project_id, artifacts.name)"
    check = map_db_error(_driver_error("CHECK constraint failed: status", sqlite_errorcode=275))
    assert type(check) is ConstraintViolationError and check.constraint == "status"
    assert str(check) == "constraint violation: CHECK constraint failed: status"


# --------------------------------------------------------------------------- describe_error


def _raised(run) -> BaseException:
    try:
        run()
    except BaseException as exc:  # the real error, as the callers meet it
        return exc
    raise AssertionError("it should have failed")


def test_describe_error_names_a_sqlite_error_by_its_sqlite_name(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database" * 512)

    def read_raw():
        conn = sqlite3.connect(bad)
        try:
            conn.execute("SELECT * FROM sqlite_master").fetchall()
        finally:
            conn.close()

    raw = _raised(read_raw)
    assert describe_error(raw) == "SQLITE_NOTADB: file is not a database"
    engine = create_engine_for_url(str(bad))
    try:
        wrapped = _raised(lambda: engine.connect())
    finally:
        engine.dispose()
    assert isinstance(wrapped, sa_exc.DBAPIError) and "\n" in str(wrapped)
    assert describe_error(wrapped) == "SQLITE_NOTADB: file is not a database", "the driver's name and message"


@pytest.mark.postgres
def test_describe_error_names_a_postgres_error_by_its_sqlstate(pg_server_url):
    engine = create_engine_for_url(pg_server_url)
    try:
        with engine.connect() as conn:
            wrapped = _raised(lambda: conn.execute(text("SELECT * FROM no_such_table")))
    finally:
        engine.dispose()
    assert describe_error(wrapped) == '42P01: relation "no_such_table" does not exist'
    assert describe_error(wrapped.orig) == describe_error(wrapped)


@pytest.mark.parametrize(
    ("error", "described"),
    [
        (DatabaseBusyError("database is busy (SQLITE_BUSY)"), "DatabaseBusyError: database is busy (SQLITE_BUSY)"),
        (ValueError("the first line\nthe second"), "ValueError: the first line"),
        (ValueError("ends in a colon:"), "ValueError: ends in a colon:"),
        (RuntimeError(), "RuntimeError"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
    ],
)
def test_describe_error_without_a_database_code_names_the_type(error, described):
    assert describe_error(error) == described

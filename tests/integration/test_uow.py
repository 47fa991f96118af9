"""The unit of work: the contract (``any_uow``: SQLite, PostgreSQL and the fake) and the
SQLAlchemy UnitOfWork against real databases."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from conftest import factory_for
from sqlalchemy import event
from sqlalchemy.orm import sessionmaker

from skillmeat_cache import (
    Artifact,
    DuplicateError,
    Project,
    ReadOnlyError,
    UnitOfWork,
    UnitOfWorkActiveError,
)
from skillmeat_cache.engine import create_engine_for_url


def _add_project(uow, name="p"):
    return uow.projects.add(Project(name=name, path=f"/work/{name}"))


def test_clean_exit_commits(any_uow):
    with any_uow() as uow:
        p = _add_project(uow)
    with any_uow() as uow:
        assert uow.projects.get(p.id) is not None


def test_exception_rolls_back_and_propagates(any_uow):
    class Boom(Exception):
        pass

    with pytest.raises(Boom), any_uow() as uow:
        _add_project(uow)
        raise Boom
    with any_uow() as uow:
        assert uow.projects.count() == 0


def test_rollback_discards_and_commit_inside_the_block_keeps(any_uow):
    with any_uow() as uow:
        kept = _add_project(uow, "kept").id
        uow.commit()
        renamed = uow.projects.get(kept)
        renamed.name = "changed"
        _add_project(uow, "discarded")
        uow.rollback()
        assert renamed.name == "kept"  # expired and reloaded by the rollback
        later = _add_project(uow, "later").id
    with any_uow() as uow:
        assert {p.id for p in uow.projects.list()} == {kept, later}


def test_commit_inside_block_survives_a_later_error(any_uow):
    with pytest.raises(DuplicateError), any_uow() as uow:
        first = _add_project(uow, "first")
        uow.commit()
        _add_project(uow, "first")  # same path
    with any_uow() as uow:
        assert [p.id for p in uow.projects.list()] == [first.id]


def test_failed_repository_call_keeps_the_unit_of_work_usable(any_uow):
    with any_uow() as uow:
        first = _add_project(uow, "a")
        with pytest.raises(DuplicateError) as info:
            _add_project(uow, "a")
        assert info.value.table == "projects"
        second = _add_project(uow, "b")
    with any_uow() as uow:
        assert {p.id for p in uow.projects.list()} == {first.id, second.id}


def test_entering_an_active_unit_of_work_raises_and_reuse_after_exit_works(any_uow):
    uow = any_uow()
    with uow:
        with pytest.raises(UnitOfWorkActiveError), uow:
            pass
        assert uow.active
        _add_project(uow, "one")
    assert not uow.active
    with uow:
        _add_project(uow, "two")
    with uow:
        assert uow.projects.count() == 2


def test_session_is_closed_on_exit_even_after_an_error(uow_factory):
    uow = uow_factory()
    closed = []
    with uow:
        event.listen(uow.session, "after_transaction_end", lambda s, t: closed.append(t.parent is None))
    assert closed and closed[-1] is True
    with pytest.raises(UnitOfWorkActiveError):
        uow.session  # noqa: B018 - not active any more
    with pytest.raises(ZeroDivisionError), uow:
        session = uow.session
        1 / 0  # noqa: B018
    assert not session.in_transaction()
    assert not hasattr(uow, "projects")


def test_entities_stay_readable_after_the_block(any_uow):
    with any_uow() as uow:
        p = _add_project(uow, "readable")
    assert p.to_dict()["name"] == "readable"


def test_read_only_unit_of_work_refuses_writes(any_uow):
    with any_uow() as uow:
        p = _add_project(uow)
    with any_uow(read_only=True) as uow:
        assert uow.projects.get(p.id).name == "p"
        with pytest.raises(ReadOnlyError):
            uow.artifacts.upsert_many([{"project_id": p.id, "type": "skill", "name": "x"}])
        with pytest.raises(ReadOnlyError):
            uow.metadata.set_value("k", "v")
    with pytest.raises(ReadOnlyError), any_uow(read_only=True) as uow:
        uow.projects.get(p.id).name = "renamed"
    with any_uow() as uow:
        assert uow.projects.get(p.id).name == "p"
        assert uow.artifacts.count() == 0


def test_updated_at_moves_on_orm_updates_only_when_something_changes(any_uow):
    with any_uow() as uow:
        p = _add_project(uow)
        created = p.updated_at
    time.sleep(0.01)
    with any_uow() as uow:
        uow.projects.get(p.id).name = "p"  # same value: no UPDATE
    with any_uow() as uow:
        assert uow.projects.get(p.id).updated_at == created
        uow.projects.get(p.id).status = "stale"
    with any_uow() as uow:
        assert uow.projects.get(p.id).updated_at > created


@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Kolkata"])
def test_timestamps_round_trip_as_aware_utc_whatever_the_time_zones(uow_factory, engine, monkeypatch, tz):
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    if engine.dialect.name == "postgresql":
        event.listen(engine, "connect", lambda conn, rec: conn.execute(f"SET TIME ZONE '{tz}'"))
        engine.dispose()
    moment = datetime(2026, 6, 1, 23, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-7)))
    try:
        with uow_factory() as uow:
            p = uow.projects.add(Project(name="tz", path="/work/tz", last_fetched=moment))
        with uow_factory() as uow:
            got = uow.projects.get(p.id)
            for value in (got.last_fetched, got.created_at, got.updated_at):
                assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
            assert got.last_fetched == moment
            assert got.last_fetched.hour == 6  # 23:30 at -07:00 is 06:30 UTC
            fresh = uow.projects.stale(timedelta(hours=1), now=moment + timedelta(minutes=30))
            assert fresh == []
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_naive_datetime_is_refused_before_it_reaches_the_database(any_uow):
    from skillmeat_cache import ValidationError

    with any_uow() as uow:
        p = _add_project(uow)
        with pytest.raises(ValidationError, match="last_fetched"):
            uow.projects.get(p.id).last_fetched = datetime(2026, 1, 1)
        assert uow.projects.get(p.id).last_fetched is None
        uow.projects.get(p.id).last_fetched = datetime(2026, 1, 1, tzinfo=UTC)


def _other_connection(url: str, timeout: float = 0.2) -> sqlite3.Connection:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=timeout, isolation_level=None)
    return conn


def test_a_unit_of_work_opening_with_a_savepoint_keeps_it_inside_its_transaction(sqlite_url):
    """BEGIN IMMEDIATE goes to the driver just before a transaction's first statement,
    whatever it is: here the SAVEPOINT of a repository write. Without it SQLite would run
    the SAVEPOINT as a transaction of its own, whose RELEASE commits: the rollback below
    would then undo nothing."""
    engine = create_engine_for_url(sqlite_url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    other = _other_connection(sqlite_url)
    try:
        with UnitOfWork(factory) as uow:
            uow.metadata.set_value("k", "v")
            with pytest.raises(sqlite3.OperationalError) as info:
                other.execute("BEGIN IMMEDIATE")
            assert info.value.sqlite_errorcode == sqlite3.SQLITE_BUSY
            uow.rollback()
            assert uow.metadata.get_value("k") is None
        with UnitOfWork(factory, read_only=True) as uow:
            assert uow.metadata.get_value("k") is None
    finally:
        other.close()
        engine.dispose()


def test_writing_unit_of_work_takes_the_write_lock_up_front_on_sqlite(sqlite_url):
    """BEGIN IMMEDIATE: while a writing UoW has only read, another writer already waits."""
    engine = create_engine_for_url(sqlite_url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    other = _other_connection(sqlite_url)
    try:
        with UnitOfWork(factory) as uow:
            uow.projects.count()
            with pytest.raises(sqlite3.OperationalError) as info:
                other.execute("BEGIN IMMEDIATE")
            assert info.value.sqlite_errorcode == sqlite3.SQLITE_BUSY
        with UnitOfWork(factory, read_only=True) as uow:
            uow.projects.count()
            other.execute("BEGIN IMMEDIATE")  # a deferred reader leaves the write lock free
            other.execute("ROLLBACK")
    finally:
        other.close()
        engine.dispose()


def test_readers_never_see_uncommitted_work(any_uow):
    with any_uow() as writer:
        _add_project(writer, "pending")
        with any_uow(read_only=True) as reader:
            assert reader.projects.count() == 0
    with any_uow(read_only=True) as reader:
        assert reader.projects.count() == 1


def test_artifact_added_through_uow_in_service_style(any_uow):
    """The card's usage: `with uow: uow.artifacts.add(...)`."""
    with any_uow() as uow:
        p = _add_project(uow)
        uow.artifacts.add(Artifact(project_id=p.id, name="pdf-tools", type="skill", deployed_version="1.0"))
    with any_uow() as uow:
        assert uow.artifacts.get_by_key(p.id, "skill", "pdf-tools").deployed_version == "1.0"


def _in_transaction(uow) -> bool:
    dbapi = uow.session.connection().connection.dbapi_connection
    if hasattr(dbapi, "in_transaction"):  # sqlite3
        return dbapi.in_transaction
    from psycopg.pq import TransactionStatus

    return dbapi.info.transaction_status != TransactionStatus.IDLE


def test_read_only_unit_of_work_on_postgres_runs_without_a_transaction(uow_factory, engine):
    """PostgreSQL: a read-only unit of work saves BEGIN and ROLLBACK (autocommit); SQLite
    keeps one read transaction (one snapshot) for all its reads. The pooled connection
    goes back to transactions for the next writing unit of work."""
    with uow_factory() as uow:
        _add_project(uow, "a")
    with uow_factory(read_only=True) as uow:
        assert [p.name for p in uow.projects.list()] == ["a"]
        assert _in_transaction(uow) is (engine.dialect.name == "sqlite")
        with pytest.raises(ReadOnlyError):
            _add_project(uow, "refused")
    with pytest.raises(RuntimeError), uow_factory() as uow:  # same pooled connection
        _add_project(uow, "rolled-back")
        uow.session.flush()
        assert _in_transaction(uow)
        raise RuntimeError("boom")
    with uow_factory(read_only=True) as uow:
        assert [p.name for p in uow.projects.list()] == ["a"]


def test_failed_commit_rolls_back_to_the_last_commit_and_the_unit_of_work_goes_on(any_uow):
    """A commit whose flush fails (here a changed path that is taken) raises our error and
    leaves the unit of work at its last commit, usable, on every backend and the fake."""
    uow = any_uow()
    with uow:
        uow.projects.add(Project(name="a", path="/a"))
        uow.projects.add(Project(name="b", path="/b"))
        uow.commit()
        uow.projects.add(Project(name="c", path="/c"))  # not committed: lost with the failed commit
        uow.projects.get_by_path("/a").path = "/b"
        with pytest.raises(DuplicateError):
            uow.commit()
        assert [p.path for p in uow.projects.list()] == ["/a", "/b"]
        uow.projects.add(Project(name="d", path="/d"))
    with any_uow(read_only=True) as uow:
        assert [p.path for p in uow.projects.list()] == ["/a", "/b", "/d"]


def test_read_only_unit_refuses_statement_writes_that_bypass_the_session(uow_factory):
    """Every write a read-only unit sends is refused by the database itself (SQLite
    ``PRAGMA query_only``, PostgreSQL a read-only session default in autocommit) and comes
    out as ReadOnlyError at the call: INSERT/UPDATE/DELETE constructs through the session
    (ORM statements), on the unit's connection or through bulk mappings, and SQL text
    through ``session.execute(text(...))`` or ``exec_driver_sql``, DDL included. Nothing
    changes (on PostgreSQL the unit runs in autocommit, where a write would commit at
    once); the unit goes on reading; a writing unit on the same pooled connection writes."""
    from sqlalchemy import delete, insert, text, update

    now = datetime(2026, 1, 1, tzinfo=UTC)
    row = {"id": "p1", "name": "p", "path": "/p", "status": "active", "created_at": now, "updated_at": now}
    table = Project.__table__
    with uow_factory() as uow:
        uow.session.connection().execute(insert(table).values(**row))  # a writing unit may
    attempts = [
        lambda uow: uow.session.connection().execute(insert(table).values(**{**row, "id": "p2", "path": "/p2"})),
        lambda uow: uow.session.connection().execute(update(table).values(name="renamed")),
        lambda uow: uow.session.execute(update(Project).values(name="renamed")),
        lambda uow: uow.session.execute(delete(Project).where(Project.id == "p1")),
        lambda uow: uow.session.execute(insert(Project), [{**row, "id": "p4", "path": "/p4"}]),
        lambda uow: uow.session.execute(text("UPDATE projects SET name = 'renamed'")),
        lambda uow: uow.session.execute(text("DELETE FROM projects")),
        lambda uow: uow.session.connection().exec_driver_sql("UPDATE projects SET name = 'renamed'"),
        lambda uow: uow.session.connection().exec_driver_sql("DELETE FROM projects"),
        lambda uow: uow.session.connection().exec_driver_sql("CREATE TABLE intruder (x INTEGER)"),
    ]
    for attempt in attempts:
        with uow_factory(read_only=True) as uow:
            with pytest.raises(ReadOnlyError):
                attempt(uow)
            assert [(p.id, p.name) for p in uow.projects.list()] == [("p1", "p")]
    with pytest.raises(ReadOnlyError), uow_factory(read_only=True) as uow:
        uow.session.execute(text("UPDATE projects SET name = 'renamed'"))  # raised out of the block too
    with pytest.raises(ReadOnlyError), uow_factory(read_only=True) as uow:
        uow.session.bulk_insert_mappings(Project, [{**row, "id": "p3", "path": "/p3"}])  # a flush
    with uow_factory(read_only=True) as uow:
        # Its own commit or rollback hands the connection back: the next one is read-only too.
        uow.rollback()
        with pytest.raises(ReadOnlyError):
            uow.session.connection().exec_driver_sql("DELETE FROM projects")
        uow.commit()
        with pytest.raises(ReadOnlyError):
            uow.session.execute(text("DELETE FROM projects"))
    with uow_factory() as uow:  # the same pooled connection writes again
        uow.session.execute(text("UPDATE projects SET name = 'writable'"))
    with uow_factory(read_only=True) as uow:
        assert [(p.id, p.name) for p in uow.projects.list()] == [("p1", "writable")]
        assert "intruder" not in uow.session.connection().dialect.get_table_names(uow.session.connection())


def test_read_only_unit_and_read_only_database_are_different_errors(db_url):
    """ReadOnlyError: our read-only unit refused a write. DatabaseReadOnlyError: the
    database itself is read-only (a mode=ro SQLite file; on PostgreSQL a read-only
    transaction the unit did not ask for, as on a standby). Both by the driver's code."""
    from sqlalchemy import text

    from skillmeat_cache.errors import DatabaseReadOnlyError

    engine, uows = factory_for(db_url)
    with uows() as uow:
        _add_project(uow, "a")
    engine.dispose()
    if db_url.startswith("sqlite"):
        path = db_url.removeprefix("sqlite:///")
        engine, uows = factory_for(f"sqlite:///file:{path}?mode=ro&uri=true")
        server_read_only = []
    else:
        engine, uows = factory_for(db_url)
        server_read_only = [text("SET TRANSACTION READ ONLY")]
    try:
        with uows(read_only=True) as uow, pytest.raises(ReadOnlyError):
            uow.session.execute(text("DELETE FROM projects"))
        with pytest.raises(DatabaseReadOnlyError), uows() as uow:
            for statement in server_read_only:
                uow.session.execute(statement)
            uow.session.execute(text("DELETE FROM projects"))
        with uows(read_only=True) as uow:
            assert uow.projects.count() == 1
    finally:
        engine.dispose()


def test_read_only_unit_keeps_its_transaction_at_a_stricter_isolation_level(db_url):
    """Autocommit for read-only units only at READ COMMITTED: at REPEATABLE READ their
    reads share one snapshot, so they keep the transaction."""
    from sqlalchemy import text

    engine, uows = factory_for(db_url, isolation_level="SERIALIZABLE")
    with uows(read_only=True) as uow:
        uow.projects.count()
        assert _in_transaction(uow)
        with pytest.raises(ReadOnlyError):  # a READ ONLY transaction on PostgreSQL
            uow.session.execute(text("DELETE FROM projects"))
    with uows() as uow:  # and the next one on the pooled connection is READ WRITE again
        _add_project(uow, "after")
    with uows(read_only=True) as uow:
        assert [p.name for p in uow.projects.list()] == ["after"]
    engine.dispose()


@pytest.mark.parametrize(
    ("code", "refusal"),
    [
        (("sqlite", 8), True),  # SQLITE_READONLY: what PRAGMA query_only (and a mode=ro file) raises
        (("sqlite", 1032), False),  # SQLITE_READONLY_DBMOVED
        (("sqlite", 1544), False),  # SQLITE_READONLY_DIRECTORY
        (("sqlite", 264), False),  # SQLITE_READONLY_RECOVERY
        (("sqlite", 5), False),
        (("pg", "25006"), True),  # read_only_sql_transaction
        (("pg", "25001"), False),
        (("pg", "0A000"), False),
    ],
)
def test_read_only_refusal_is_told_by_the_driver_code(code, refusal):
    """Which driver errors are a read-only refusal (ReadOnlyError on a connection of a
    read-only unit, DatabaseReadOnlyError elsewhere): by code, never by message."""
    from skillmeat_cache.db_errors import is_read_only_refusal

    class Orig(Exception):
        pass

    orig = Orig("attempt to write a readonly database")  # the message plays no part
    if code[0] == "sqlite":
        orig.sqlite_errorcode = code[1]  # type: ignore[attr-defined]
    else:
        orig.sqlstate = code[1]  # type: ignore[attr-defined]
    assert is_read_only_refusal(orig) is refusal

"""Read-only units of work on PostgreSQL take their connections from a second engine whose
pool stays in autocommit (``engine.create_read_engine``, wired by the container): no
switch to autocommit and back per unit of work, the same refusals, disposed of with the
engine. Elsewhere (SQLite, a stricter isolation level, an engine we did not build) the
read-only units use the engine itself.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, event, text

from containers import Container
from skillmeat_cache import Project, ReadOnlyError
from skillmeat_cache.engine import create_engine_for_url, create_read_engine

pytestmark = pytest.mark.postgres


def _checkouts(engine):
    counted = []
    event.listen(engine, "checkout", lambda *_: counted.append(1))
    return counted


def test_read_only_units_take_a_second_pool_in_autocommit(db_url_pg):
    c = Container()
    c.config.from_dict({"database_url": db_url_pg})
    try:
        engine, reads = c.engine(), c.read_engine()
        assert reads is not engine and reads.pool is not engine.pool and reads.url == engine.url
        for read_only in (False, True):  # each engine's schema check, once, out of the count
            with c.unit_of_work(read_only=read_only) as uow:
                uow.projects.count()
        writes, read_checkouts = _checkouts(engine), _checkouts(reads)
        with c.unit_of_work() as uow:
            uow.projects.add(Project(name="read-engine", path="/read-engine"))
            assert uow.session.get_bind() is engine
            assert uow.session.connection().connection.dbapi_connection.autocommit is False
        for _ in range(3):
            with c.unit_of_work(read_only=True) as uow:
                assert uow.session.get_bind() is reads
                assert uow.projects.get_by_path("/read-engine").name == "read-engine"  # sees the commit
                dbapi = uow.session.connection().connection.dbapi_connection
                assert dbapi.autocommit is True
                assert uow.session.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
                assert uow.session.execute(text("SHOW TimeZone")).scalar() == "UTC"  # the same options
        assert (len(writes), len(read_checkouts)) == (1, 3)  # reads never touch the writers' pool
        assert reads.pool.checkedin() == 1  # one connection, reused as it is
        with c.unit_of_work(read_only=True) as uow, pytest.raises(ReadOnlyError):
            uow.session.execute(text("DELETE FROM projects WHERE path = '/read-engine'"))
        with c.unit_of_work(read_only=True) as uow:
            assert uow.projects.get_by_path("/read-engine") is not None  # nothing was deleted
        with c.unit_of_work() as uow:
            uow.projects.delete(uow.projects.get_by_path("/read-engine").id)
    finally:
        c.shutdown_resources()
    assert dbapi.closed  # shutting the container down closed the second pool too


def test_the_read_engine_goes_with_its_engine(db_url_pg):
    engine = create_engine_for_url(db_url_pg)
    reads = create_read_engine(engine)
    assert reads is not engine
    with reads.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert conn.execute(text("SELECT 1")).scalar() == 1
    assert not dbapi.closed
    engine.dispose()
    assert dbapi.closed
    with reads.connect() as conn:  # disposed, not broken: it connects again
        assert conn.execute(text("SELECT 1")).scalar() == 1
    reads.dispose()


def test_a_forked_child_leaves_the_parents_read_connections_alone(db_url_pg):
    engine = create_engine_for_url(db_url_pg)
    reads = create_read_engine(engine)
    try:
        with reads.connect() as conn:
            dbapi = conn.connection.dbapi_connection
        pid = os.fork()
        if pid == 0:  # the child: dispose(close=False), as SQLAlchemy advises after a fork
            engine.dispose(close=False)
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        assert not dbapi.closed
        with reads.connect() as conn:
            assert conn.connection.dbapi_connection is dbapi
            assert conn.execute(text("SELECT 1")).scalar() == 1  # the child did not close it
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"isolation_level": "REPEATABLE READ"},  # one snapshot per unit: a READ ONLY transaction
        {"connect_args": {"options": "-c default_transaction_read_only=off"}},  # the caller's default
        {"isolation_level": "AUTOCOMMIT"},  # already in autocommit
    ],
)
def test_no_second_engine_where_reads_do_not_run_in_autocommit(db_url_pg, kwargs):
    engine = create_engine_for_url(db_url_pg, **kwargs)
    try:
        assert create_read_engine(engine) is engine
    finally:
        engine.dispose()


def test_no_second_engine_on_sqlite_or_for_an_engine_built_elsewhere(sqlite_url, db_url_pg):
    sqlite = create_engine_for_url(sqlite_url)
    plain = create_engine(db_url_pg.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        assert create_read_engine(sqlite) is sqlite
        assert create_read_engine(plain) is plain
    finally:
        sqlite.dispose()
        plain.dispose()


def test_the_read_engine_is_not_built_for_a_command_that_only_writes(db_url_pg, tmp_path):
    """Building it connects once (to learn the server's isolation level): only read-only
    units of work ask for it."""
    code = (
        "from containers import Container\n"
        "from skillmeat_cache import container as module\n"
        "built = []\n"
        "real = module.create_read_engine\n"
        "module.create_read_engine = lambda e: built.append(e) or real(e)\n"
        "c = Container()\n"
        f"c.config.from_dict({{'database_url': {db_url_pg!r}}})\n"
        "with c.unit_of_work() as uow:\n"
        "    uow.projects.count()\n"
        "assert built == [], built\n"
        "with c.unit_of_work(read_only=True) as uow:\n"
        "    uow.projects.count()\n"
        "assert len(built) == 1\n"
        "c.shutdown_resources()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr

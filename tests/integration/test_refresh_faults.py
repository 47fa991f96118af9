"""The server's refreshes under database faults, in process (FastAPI's TestClient): a
refresh cut off by a busy or full database runs again and completes, ``/status`` and
``GET /refresh/{id}`` show why it waits, and readers keep answering meanwhile.
Process-level trials (PostgreSQL cut off, SIGKILL, file storms, a soak) are in
``tests/e2e/test_server_faults.py``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from benchmarks.server_faults import Tree, consistency, sqlite_checks
from skillmeat_cache.api import PREFIX, Settings, create_app
from skillmeat_cache.api.jobs import Retry
from skillmeat_cache.api.schemas import JobOut, StatusOut
from skillmeat_cache.container import Container

FAST = Retry(attempts=50, initial=0.05, maximum=0.2)


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
    return value


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree.create(tmp_path / "projects", projects=6, artifacts=5)


@pytest.fixture
def serve(sqlite_url: str, tree: Tree) -> Iterator[Callable[..., tuple[TestClient, Container]]]:
    opened: list[tuple[TestClient, Container]] = []

    def open_(retry: Retry = FAST, busy_timeout: float = 0.2) -> tuple[TestClient, Container]:
        container = Container()
        container.config.from_dict({"database_url": sqlite_url, "busy_timeout": busy_timeout})
        settings = Settings(roots=[str(tree.root)], watch=False, refresh_retry=retry)
        client = TestClient(create_app(container, settings), raise_server_exceptions=False)
        client.__enter__()
        opened.append((client, container))
        assert client.app.state.skillmeat_cache.jobs.wait_idle(30)
        return client, container

    yield open_
    for client, container in reversed(opened):
        client.__exit__(None, None, None)
        container.shutdown_resources()


def job_of(client: TestClient, job_id: str) -> dict[str, Any]:
    response = client.get(f"{PREFIX}/refresh/{job_id}")
    assert response.status_code == 200
    return JobOut.model_validate(response.json()).model_dump(mode="json")


def refresh_state(client: TestClient) -> dict[str, Any]:
    response = client.get(f"{PREFIX}/status")
    assert response.status_code == 200
    return StatusOut.model_validate(response.json()).refresh.model_dump(mode="json")


def test_a_refresh_cut_off_by_a_busy_database_runs_again_and_completes(serve, sqlite_url: str, tree: Tree) -> None:
    client, _container = serve()
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        tree.advance()
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        job = client.post(f"{PREFIX}/refresh", json={}).json()
        waiting = wait_for(lambda: (j := job_of(client, job["id"]))["attempts"] >= 2 and j)
        assert waiting["state"] in ("retrying", "running") and waiting["error"].startswith("DatabaseBusyError")
        assert refresh_state(client)["last_error"].startswith("DatabaseBusyError")
        assert client.get(f"{PREFIX}/projects").json()["total"] == 6  # readers answer meanwhile
        holder.execute("ROLLBACK")
        done = wait_for(lambda: (j := job_of(client, job["id"]))["state"] in ("done", "failed") and j)
    finally:
        holder.close()
    assert done["state"] == "done" and done["error"] is None and done["attempts"] >= 2
    assert done["summary"]["projects_updated"] == 6
    assert refresh_state(client)["last_error"] is None
    assert consistency(sqlite_url, tree, current=True)[0] == []


def test_a_job_that_stays_cut_off_fails_after_its_attempts(serve, sqlite_url: str, tree: Tree) -> None:
    client, _container = serve(retry=Retry(attempts=3, initial=0.01, maximum=0.02), busy_timeout=0.05)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        tree.advance()
        holder.execute("BEGIN IMMEDIATE")
        job = client.post(f"{PREFIX}/refresh", json={}).json()
        failed = wait_for(lambda: (j := job_of(client, job["id"]))["state"] in ("done", "failed") and j)
        assert failed["state"] == "failed" and failed["attempts"] == 3
        assert failed["error"].startswith("DatabaseBusyError") and failed["retry_at"] is None
        assert refresh_state(client)["last_error"] == failed["error"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # The next refresh, once the lock is gone, stores what the failed one could not.
    again = client.post(f"{PREFIX}/refresh", json={}).json()
    assert wait_for(lambda: (j := job_of(client, again["id"]))["state"] in ("done", "failed") and j)["state"] == "done"
    assert consistency(sqlite_url, tree, current=True)[0] == []


def test_stopping_the_server_ends_a_job_waiting_to_run_again(sqlite_url: str, tree: Tree) -> None:
    container = Container()
    container.config.from_dict({"database_url": sqlite_url, "busy_timeout": 0.05})
    app = create_app(container, Settings(roots=[str(tree.root)], watch=False, refresh_retry=Retry(initial=60)))
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        with TestClient(app) as client:
            assert app.state.skillmeat_cache.jobs.wait_idle(30)
            tree.advance()
            holder.execute("BEGIN IMMEDIATE")
            job = client.post(f"{PREFIX}/refresh", json={}).json()
            wait_for(lambda: job_of(client, job["id"])["state"] == "retrying")
            started = time.monotonic()
        assert time.monotonic() - started < 30  # not the minute the job would have waited
        stopped = app.state.skillmeat_cache.jobs.get(job["id"])
        assert stopped.state == "failed" and "stopped" in stopped.error
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        container.shutdown_resources()


def test_a_full_disk_keeps_readers_answering_shows_the_error_and_refreshing_resumes(
    serve, sqlite_url: str, tree: Tree
) -> None:
    """Disk full, simulated with ``PRAGMA max_page_count`` on the server's connections
    (the trial in benchmarks/reliability.py fills a real tmpfs)."""
    client, container = serve()
    engine = container.engine()
    limit = {"pages": None}

    @event.listens_for(engine, "checkout")
    def cap(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if limit["pages"] is not None:  # max_page_count never goes below the file's size
            dbapi_connection.execute(f"PRAGMA max_page_count = {limit['pages']}")

    db = sqlite_url.removeprefix("sqlite:///")
    size = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    limit["pages"] = size
    tree.padding = 4000  # the next generation needs pages the file does not have
    tree.advance()
    before = client.get(f"{PREFIX}/projects").json()
    job = client.post(f"{PREFIX}/refresh", json={}).json()
    cut = wait_for(lambda: (j := job_of(client, job["id"]))["state"] == "retrying" and j)
    assert cut["error"].startswith("DatabaseFullError")
    state = refresh_state(client)
    assert state["last_error"].startswith("DatabaseFullError") and state["last_error_at"] is not None
    for path in ("/projects", "/search?q=a00", "/artifacts", "/status"):  # readers keep answering
        assert client.get(PREFIX + path).status_code == 200
    assert client.get(f"{PREFIX}/projects").json() == before  # and nothing was half-written
    limit["pages"] = 1 << 30  # space is back
    done = wait_for(lambda: (j := job_of(client, job["id"]))["state"] in ("done", "failed") and j)
    assert done["state"] == "done" and done["attempts"] >= 2
    assert refresh_state(client)["last_error"] is None
    event.remove(engine, "checkout", cap)
    assert consistency(sqlite_url, tree, current=True)[0] == []
    assert sqlite_checks(db) == []


@pytest.mark.postgres
def test_a_read_cut_off_by_the_database_is_answered_and_not_raised_again(tree: Tree) -> None:
    """Starlette's handler for ``Exception`` answers and re-raises: uvicorn then logged a
    traceback and closed the connection for each 503 (a client on that keep-alive
    connection saw a reset; found by the PostgreSQL outage trial). The TestClient
    re-raises what the app re-raises."""
    from sqlalchemy import text

    from skillmeat_cache import migrate
    from skillmeat_cache.engine import create_engine_for_url
    from tests.conftest import throwaway_pg_database

    with throwaway_pg_database("skillmeat_reraise") as url:
        migrate(url)
        container = Container()
        container.config.from_dict({"database_url": url})
        app = create_app(container, Settings(roots=[str(tree.root)], watch=False))
        admin_url, name = url.rsplit("/", 1)[0] + "/postgres", url.rsplit("/", 1)[1]
        admin = create_engine_for_url(admin_url, isolation_level="AUTOCOMMIT")
        try:
            with TestClient(app) as client:  # raise_server_exceptions=True
                assert app.state.skillmeat_cache.jobs.wait_idle(30)
                with admin.connect() as conn:
                    conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                    conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                                 {"n": name})
                response = client.get(f"{PREFIX}/projects")
                assert response.status_code == 503 and response.headers["retry-after"] == "5"
                assert response.json()["type"].endswith(":DatabaseUnavailableError")
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            admin.dispose()
            container.shutdown_resources()


def test_a_pause_holds_jobs_off_the_database_until_resumed(serve, sqlite_url: str, tree: Tree) -> None:
    # What the server's heal needs: no job touches the file while it is moved and rebuilt.
    client, _container = serve(retry=Retry(attempts=50, initial=60, maximum=60), busy_timeout=0.05)
    jobs = client.app.state.skillmeat_cache.jobs
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        tree.advance()
        holder.execute("BEGIN IMMEDIATE")
        job = client.post(f"{PREFIX}/refresh", json={}).json()
        wait_for(lambda: job_of(client, job["id"])["state"] == "retrying")  # waits a minute to run again
        assert jobs.pause(10)
        holder.execute("ROLLBACK")
        # The pause ended the minute's wait, but the next attempt holds until resumed, and
        # a job submitted meanwhile only queues.
        queued = client.post(f"{PREFIX}/refresh", json={"force": True}).json()
        time.sleep(0.3)
        assert job_of(client, job["id"])["attempts"] == 1
        assert job_of(client, queued["id"])["state"] == "queued"
    finally:
        holder.close()
        jobs.resume()
    assert wait_for(lambda: job_of(client, queued["id"])["state"] in ("done", "failed"))
    assert job_of(client, job["id"])["state"] == "done" and job_of(client, job["id"])["attempts"] == 2
    assert job_of(client, queued["id"])["state"] == "done"
    assert consistency(sqlite_url, tree, current=True)[0] == []

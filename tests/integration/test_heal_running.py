"""The server heals its default cache while running (in process, FastAPI's TestClient):
damage met by a request, a refresh or the change feed starts one heal; requests in
flight are let finish and new ones get ``CacheRebuildingError`` (503, ``Retry-After``)
until the file is moved aside and rebuilt; a file named explicitly is never moved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from benchmarks.server_faults import Tree, damage_pages
from skillmeat_cache.api import PREFIX, Settings, create_app
from skillmeat_cache.api.live import LiveCache
from skillmeat_cache.api.schemas import StatusOut
from skillmeat_cache.container import Container
from skillmeat_cache.errors import DatabaseCorruptError
from skillmeat_cache.salvage import is_healthy
from tests.integration.test_refresh_faults import wait_for


class InFlight:
    """A request holding the database (inside ``cache.serving()``) in a thread until released."""

    def __init__(self, cache: LiveCache) -> None:
        self.inside, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(cache,))
        self.thread.start()
        assert self.inside.wait(10)

    def _hold(self, cache: LiveCache) -> None:
        with cache.serving():
            self.inside.set()
            self.release.wait(30)

    def end(self) -> None:
        self.release.set()
        self.thread.join(10)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("SKILLMEAT_CACHE_URL", "SKILLMEAT_CACHE_ENV", "SKILLMEAT_CACHE_SYNCHRONOUS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree.create(tmp_path / "projects", projects=6, artifacts=40)


@pytest.fixture
def serve(tree: Tree) -> Iterator[Callable[..., tuple[TestClient, LiveCache]]]:
    opened: list[tuple[TestClient, Container]] = []

    def open_(**config: Any) -> tuple[TestClient, LiveCache]:
        container = Container()
        container.config.from_dict({"auto_migrate": True, **config})
        client = TestClient(create_app(container, Settings(roots=[str(tree.root)], watch=False)),
                            raise_server_exceptions=False)
        client.__enter__()
        opened.append((client, container))
        cache = client.app.state.skillmeat_cache
        assert cache.jobs.wait_idle(60)
        return client, cache

    yield open_
    for client, container in reversed(opened):
        client.__exit__(None, None, None)
        container.shutdown_resources()


def artifact_count(client: TestClient) -> int:
    response = client.get(f"{PREFIX}/artifacts", params={"limit": 1})
    assert response.status_code == 200, response.text
    return response.json()["total"]


def asides(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".db.corrupt-" in p.name and not p.name.endswith(("-wal", "-shm")))


def test_damage_met_while_running_is_healed_without_a_restart(serve, home: Path, tree: Tree) -> None:
    client, cache = serve()
    db = home / ".skillmeat" / "cache" / "cache.db"
    stored = artifact_count(client)
    assert stored == 6 * 40 + sum(tree.count(1) - 40 for _ in tree.paths)
    before = cache.events.last_id
    with cache.container.unit_of_work(read_only=True) as uow:  # the read engine, built before the damage
        assert uow.projects.count() == 6
    damage_pages(db)

    statuses: list[int] = []

    def healed() -> bool:
        response = client.get(f"{PREFIX}/artifacts", params={"limit": 1})
        statuses.append(response.status_code)
        if response.status_code == 503:
            assert response.headers["Retry-After"] == "5"
            assert response.json()["type"].rsplit(":", 1)[1] in ("DatabaseCorruptError", "CacheRebuildingError")
        return response.status_code == 200 and cache.recovered is not None

    wait_for(healed)
    assert set(statuses) <= {200, 503}
    assert artifact_count(client) == stored  # the rescan of the remembered root gave them back
    [kept] = asides(db.parent)
    assert not is_healthy(kept) and is_healthy(db)
    status = StatusOut.model_validate(client.get(f"{PREFIX}/status").json())
    assert status.recovered is not None and status.recovered.moved_to == str(kept)
    assert "6 projects rescanned" in status.recovered.summary
    [event] = [e for e in cache.events.since(before) if e.name == "cache_recovered"]
    assert event.data == status.recovered.model_dump(mode="json") | {"at": event.data["at"]}
    # Units of work, read-only ones too, and the reader use the one new engine.
    assert cache.container.read_engine() is cache.container.engine() is cache.engine
    with cache.container.unit_of_work(read_only=True) as uow:
        assert uow.session.get_bind() is cache.engine and uow.projects.count() == 6
    # The new engine and feed serve the rebuilt file: a change on disk is read and published.
    tree.write(tree.paths[0], 2)
    client.post(f"{PREFIX}/refresh", json={})
    assert cache.jobs.wait_idle(60)
    assert artifact_count(client) == stored + tree.count(2) - tree.count(1)
    kept_bytes = kept.read_bytes()
    client.get(f"{PREFIX}/status")
    assert kept.read_bytes() == kept_bytes  # nothing writes the file kept aside


def test_requests_in_flight_finish_first_and_new_ones_get_503_until_the_rebuild(serve, home: Path) -> None:
    client, cache = serve()
    db = home / ".skillmeat" / "cache" / "cache.db"
    holder = InFlight(cache)
    cache.damage_seen(DatabaseCorruptError("database disk image is malformed"))
    wait_for(lambda: cache.healing)
    response = client.get(f"{PREFIX}/projects")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json()["type"].endswith(":CacheRebuildingError")
    assert response.json()["detail"] == "the cache is being rebuilt after damage was found; try again shortly"
    time.sleep(0.2)
    assert db.exists() and not asides(db.parent)  # nothing moved while a request uses the file
    holder.end()
    wait_for(lambda: not cache.healing)
    # A sound file is not moved: the heal found nothing to do, and the next report of
    # damage within the back-off starts none.
    assert not asides(db.parent) and cache.recovered is None
    assert client.get(f"{PREFIX}/projects").status_code == 200
    task = cache._heal_task
    cache.damage_seen(DatabaseCorruptError("again"))
    time.sleep(0.1)
    assert cache._heal_task is task and not cache.healing


def test_a_file_named_explicitly_is_never_moved_while_running(serve, tmp_path: Path, home: Path) -> None:
    db = tmp_path / "named.db"
    client, cache = serve(database_url=f"sqlite:///{db}")
    damage_pages(db)
    response = wait_for(lambda: (r := client.get(f"{PREFIX}/artifacts")).status_code == 503 and r)
    assert response.json()["type"].endswith(":DatabaseCorruptError")
    time.sleep(0.3)
    assert not cache.healing and cache.recovered is None
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("named.db")) == [
        "named.db", "named.db-shm", "named.db-wal"]


def test_a_heal_that_cannot_start_says_why_and_moves_nothing(serve, home: Path, monkeypatch) -> None:
    import skillmeat_cache.api.live as live

    monkeypatch.setattr(live, "HEAL_WAIT", 0.2)
    client, cache = serve()
    db = home / ".skillmeat" / "cache" / "cache.db"
    holder = InFlight(cache)  # a request that holds the database past the heal's wait
    feed = cache.feed
    try:
        cache.damage_seen(DatabaseCorruptError("database disk image is malformed"))
        wait_for(lambda: cache.heal_error is not None)
        wait_for(lambda: not cache.healing)
    finally:
        holder.end()
    status = client.get(f"{PREFIX}/status").json()
    assert status["heal_error"] == "TimeoutError: the database was still in use after 0.2 s"
    assert status["recovered"] is None and not asides(db.parent)
    assert client.get(f"{PREFIX}/projects").json()["total"] == 6  # serving again, same file
    assert cache.feed is feed and not feed._stop.is_set()  # the feed was never stopped: it runs on

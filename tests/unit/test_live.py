"""The server's background parts without a database: the event hub, the refresh queue
(on the fake unit of work), the watcher's path rules and its fallback to polling."""

from __future__ import annotations

import asyncio
import errno
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from skillmeat_cache.api.events import EventHub, TooManySubscribersError
from skillmeat_cache.api.jobs import RefreshJobs
from skillmeat_cache.api.watcher import Watcher, project_of, relevant
from skillmeat_cache.testing import FakeStore

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "projects"


# ----------------------------------------------------------------------------- events


def test_events_are_numbered_and_replayed_after_last_event_id() -> None:
    hub = EventHub(buffer_size=5)

    async def scenario() -> None:
        for i in range(8):
            hub.publish("tick", {"i": i})
        assert hub.last_id == 8
        sub = hub.subscribe(last_event_id=6)
        assert [(e.id, e.data["i"]) for e in sub.replay] == [(7, 6), (8, 7)]
        assert hub.subscribe(last_event_id=8).replay == []
        # Older than the buffer (ids 4..8 kept) or from a later run: one reset instead.
        for gone in (2, 9, 10**6):
            replay = hub.subscribe(last_event_id=gone).replay
            assert [e.name for e in replay] == ["reset"], gone
            reason = "older than the buffer" if gone == 2 else "ahead of the newest event (8)"
            assert replay[0].data["reason"] == f"Last-Event-ID {gone} is {reason}"
        assert [e.id for e in hub.subscribe(last_event_id=3).replay] == [4, 5, 6, 7, 8]
        # An id of an earlier run of the server, however small, is not replayed from.
        assert [e.name for e in hub.subscribe(last_event_id=3, run="0ther").replay] == ["reset"]
        assert len(hub.subscribe(last_event_id=3, run=hub.run).replay) == 5
        live = hub.subscribe()
        hub.publish("tock", {})
        event = await asyncio.wait_for(live.queue.get(), 1)
        assert (event.id, event.name) == (9, "tock")

    asyncio.run(scenario())


def test_subscribers_are_capped_and_a_slow_one_is_dropped() -> None:
    hub = EventHub(max_subscribers=2)

    async def scenario() -> None:
        first = hub.subscribe()
        hub.subscribe()
        with pytest.raises(TooManySubscribersError):
            hub.subscribe()
        hub.unsubscribe(first)
        slow = hub.subscribe()
        for i in range(1001):  # one more than its queue holds
            hub.publish("tick", {"i": i})
        await asyncio.sleep(0.05)
        assert slow.missed and slow.queue.full()
        # Dropped (both: neither read): their slots are free, and they are fed no more.
        assert hub.subscribers == 0
        hub.subscribe()
        hub.subscribe()
        while not slow.queue.empty():
            last = slow.queue.get_nowait()
        hub.publish("tock", {})
        await asyncio.sleep(0.05)
        assert last is not None and last.data == {"i": 999} and slow.queue.empty()

    asyncio.run(scenario())


def test_publishing_from_threads_reaches_the_loop() -> None:
    hub = EventHub()

    async def scenario() -> list[int]:
        sub = hub.subscribe()
        threads = [threading.Thread(target=lambda: [hub.publish("t", {}) for _ in range(50)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [(await asyncio.wait_for(sub.queue.get(), 1)).id for _ in range(200)]

    assert sorted(asyncio.run(scenario())) == list(range(1, 201))


# ----------------------------------------------------------------------------- refresh jobs


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    shutil.copytree(EXAMPLES, root)
    return root


class Gate:
    """A ``targets`` callable that holds a whole refresh until released."""

    def __init__(self, roots: list[str]) -> None:
        self.roots = roots
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> tuple[list[str], list[str]]:
        self.entered.set()
        assert self.release.wait(10)
        return self.roots, []


def _jobs(tree: Path, gate: Gate | None = None) -> tuple[RefreshJobs, EventHub, FakeStore]:
    store, hub = FakeStore(), EventHub()
    jobs = RefreshJobs(
        lambda read_only=False: store.unit_of_work(read_only=read_only),
        gate or (lambda: ([str(tree)], [])),
        hub,
    )
    return jobs, hub, store


def test_requests_join_a_job_that_covers_them(tree: Path) -> None:
    gate = Gate([str(tree)])
    jobs, hub, _store = _jobs(tree, gate)
    jobs.start()
    try:
        running, joined = jobs.submit(None)
        assert not joined and gate.entered.wait(5)
        assert jobs.submit(None) == (running, True)  # the same work, already running
        assert jobs.submit({str(tree / "web-app")}) == (running, True)  # a part of it
        # A forced request is not covered by an unforced job: it queues one.
        forced, joined = jobs.submit(None, force=True)
        assert not joined and forced is not running
        assert jobs.submit(None, force=True) == (forced, True)
        # A file change must not join the running job (it may have read that project).
        watcher_job, joined = jobs.submit({str(tree / "web-app")}, reason="watcher", join_running=False)
        assert joined and watcher_job is forced  # ...but the queued forced one covers it
        gate.release.set()
        assert jobs.wait_idle(10)
    finally:
        gate.release.set()
        jobs.stop()
    assert running.state == forced.state == "done"
    assert running.summary is not None and running.summary.projects_added == 4
    assert forced.summary is not None and forced.summary.projects_seen == 4
    names = [(e.name, e.data["id"]) for e in hub.since(0) if e.name != "refresh_progress"]
    assert names == [
        ("refresh_started", running.id),
        ("refresh_finished", running.id),
        ("refresh_started", forced.id),
        ("refresh_finished", forced.id),
    ]


def test_changes_to_projects_merge_into_one_queued_job(tree: Path) -> None:
    gate = Gate([str(tree)])
    jobs, _hub, _store = _jobs(tree, gate)
    jobs.start()
    try:
        jobs.submit(None)
        assert gate.entered.wait(5)
        a, _ = jobs.submit({str(tree / "web-app")}, reason="watcher", join_running=False)
        b, joined = jobs.submit({str(tree / "docs-site")}, reason="watcher", join_running=False)
        assert joined and b is a and a.scope == {str(tree / "web-app"), str(tree / "docs-site")}
        assert jobs.pending == 1
        gate.release.set()
        assert jobs.wait_idle(10)
    finally:
        gate.release.set()
        jobs.stop()
    assert a.state == "done" and a.summary is not None and a.summary.projects_seen == 2


def test_a_failing_job_is_reported_and_the_worker_goes_on(tree: Path) -> None:
    calls = []

    def targets() -> tuple[list[str], list[str]]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        return [str(tree)], []

    store, hub = FakeStore(), EventHub()
    jobs = RefreshJobs(lambda read_only=False: store.unit_of_work(read_only=read_only), targets, hub)
    jobs.start()
    try:
        bad, _ = jobs.submit(None)
        assert jobs.wait_idle(10)
        good, _ = jobs.submit(None)
        assert jobs.wait_idle(10)
    finally:
        jobs.stop()
    assert (bad.state, bad.error) == ("failed", "RuntimeError: disk on fire")
    assert good.state == "done" and jobs.get(bad.id) is bad


# ----------------------------------------------------------------------------- watcher


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/r/p/.claude/skills/x/SKILL.md", True),
        ("/r/p/.codex/agents/a.md", True),
        ("/r/p/.mcp.json", True),
        ("/r/p/.claude", True),
        ("/r/p/src/main.py", False),
        ("/r/p/node_modules/q/.claude/skills/x/SKILL.md", False),
        ("/r/p/.git/index", False),
        ("/r/p/README.md", False),
    ],
)
def test_only_what_a_scan_reads_is_relevant(path: str, expected: bool) -> None:
    assert relevant(path) is expected


def test_a_change_maps_to_its_project(tree: Path) -> None:
    root = str(tree)
    skill = tree / "web-app" / ".claude" / "skills" / "pdf-tools" / "SKILL.md"
    assert project_of(str(skill), [root], set()) == str(tree / "web-app")
    nested = tree / "data-pipeline" / "tools" / "cli-helper" / ".claude" / "commands" / "x.md"
    assert project_of(str(nested), [root], set()) == str(tree / "data-pipeline" / "tools" / "cli-helper")
    # A deleted project is still mapped while the cache knows it (the refresh marks it stale).
    gone = tree / "old" / ".claude" / "skills" / "x" / "SKILL.md"
    assert project_of(str(gone), [root], set()) is None
    assert project_of(str(gone), [root], {str(tree / "old")}) == str(tree / "old")
    assert project_of("/elsewhere/p/.claude/x", [root], set()) is None


def test_the_watch_limit_falls_back_to_polling(tree: Path) -> None:
    calls: list[bool] = []
    seen: list[set[str]] = []
    skill = str(tree / "web-app" / ".claude" / "skills" / "pdf-tools" / "SKILL.md")

    async def fake_watch(*_roots: str, force_polling: bool, **_kwargs: Any) -> Any:
        calls.append(force_polling)
        if not force_polling:
            raise OSError(errno.ENOSPC, "OS file watch limit reached.")
        yield {(2, skill)}

    watcher = Watcher([str(tree)], set, seen.append, watch=fake_watch)
    asyncio.run(watcher.run(asyncio.Event()))
    assert calls == [False, True]
    assert watcher.polling and "watch limit" in (watcher.warning or "")
    assert seen == [{str(tree / "web-app")}]


def test_another_watcher_failure_stops_it_without_raising(tree: Path) -> None:
    async def broken(*_roots: str, **_kwargs: Any) -> Any:
        raise RuntimeError("inotify exploded")
        yield  # pragma: no cover

    watcher = Watcher([str(tree)], set, lambda _p: None, watch=broken)
    asyncio.run(watcher.run(asyncio.Event()))
    assert watcher.mode == "off" and "inotify exploded" in (watcher.warning or "")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("::", False), ("192.168.1.5", False), ("no-such-host.invalid", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    from skillmeat_cache.api.serve import check_exposure, is_loopback
    from skillmeat_cache.errors import CacheError

    assert is_loopback(host) is loopback
    if loopback:
        check_exposure(host, None)
    else:
        with pytest.raises(CacheError, match="without a token"):
            check_exposure(host, None)
        check_exposure(host, "x" * 16)


def test_a_new_folder_outside_projects_is_walked(tree: Path) -> None:
    from watchfiles import Change

    from skillmeat_cache.api.watcher import new_folder

    seen: list[set[str]] = []
    watcher = Watcher([str(tree)], set, seen.append)
    (tree / "fresh" / "inner").mkdir(parents=True)
    (tree / "node_modules" / "x").mkdir(parents=True)
    assert new_folder(Change.added, str(tree / "fresh")) and not new_folder(Change.modified, str(tree / "fresh"))
    assert not new_folder(Change.added, str(tree / "node_modules" / "x"))
    inside = tree / "web-app" / "src"
    inside.mkdir()
    assert watcher.dispatch([str(tree / "fresh"), str(inside)]) == {str(tree / "fresh"), str(tree / "web-app")}

"""``skillmeat-cache serve`` as a process: started on a free port, hit over the loopback
(httpx, Server-Sent Events read off the wire), stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import server_process

from benchmarks.api import free_port
from benchmarks.api_load import sse_events
from skillmeat_cache import migrate

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "projects"
API = "/api/v1/cache"
WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLMEAT_CACHE_")}
    env["HOME"] = str(home)
    return env


@contextmanager
def server(db: str, *args: str, home: Path) -> Iterator[str]:
    """A ``serve`` process on a free port; its base URL once /status answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "skillmeat_cache", "--db", db, "serve", "--port", str(port), *args]
    with server_process(cmd, port, env=_env(home)) as running:
        yield running.base


class Events:
    """Reads ``/events`` in a thread; events land in a queue as ``(id, name, data)``."""

    def __init__(self, base: str, last_event_id: str | None = None) -> None:
        self.queue: queue.Queue[tuple[int, str, dict[str, Any]]] = queue.Queue()
        self.open = threading.Event()
        self.run = ""  # the server run named by the ids (RUN-NUMBER)
        headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=None))
        self._thread = threading.Thread(target=self._read, args=(base + API + "/events", headers), daemon=True)
        self._thread.start()
        assert self.open.wait(10)

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                assert response.status_code == 200
                self.open.set()
                for fields in sse_events(response.iter_lines()):
                    run, _, number = fields["id"].partition("-")
                    self.run = run
                    self.queue.put((int(number), fields["event"], json.loads(fields["data"])))
        except httpx.HTTPError:
            pass

    def wait(self, match: Callable[[str, dict[str, Any]], bool], timeout: float = 10) -> tuple[int, str, dict]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no matching event in time"
            try:
                event = self.queue.get(timeout=left)
            except queue.Empty:
                continue
            if match(event[1], event[2]):
                return event

    def close(self) -> None:
        self._client.close()


def updated(project_path: str, field: str | None = None) -> Callable[[str, dict[str, Any]], bool]:
    def match(name: str, data: dict[str, Any]) -> bool:
        project = data.get("project") or {}
        return (
            name == "project_updated"
            and project.get("path") == project_path
            and (field is None or field in data["fields"] or data["change"] == "added")
        )

    return match


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    shutil.copytree(EXAMPLES, root)
    return root.resolve()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_the_server_serves_the_api_the_page_and_stops_cleanly(tmp_path: Path, tree: Path, home: Path) -> None:
    with server(str(tmp_path / "c.db"), str(tree), home=home) as base:
        status = httpx.get(base + API + "/status").json()
        assert status["watcher"]["mode"] == "native" and status["watcher"]["roots"] == [str(tree)]
        deadline = time.monotonic() + 10
        while httpx.get(base + API + "/projects").json()["total"] != 4:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        page = httpx.get(base + "/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert httpx.get(base + "/openapi.json").json()["info"]["title"] == "skillmeat-cache"


def test_an_edited_file_reaches_the_events_within_a_second(tmp_path: Path, tree: Path, home: Path) -> None:
    with server(str(tmp_path / "c.db"), str(tree), home=home) as base:
        events = Events(base, last_event_id="0")
        web = str(tree / "web-app")
        events.wait(updated(web))  # the startup refresh added it
        skill = tree / "web-app" / ".claude" / "skills" / "pdf-tools" / "SKILL.md"
        started = time.monotonic()
        with skill.open("a") as f:
            f.write("\nOne more line.\n")
        _id, _name, data = events.wait(updated(web, "fingerprint"), timeout=5)
        assert time.monotonic() - started < 1.0 + 0.5  # the PRD's second, with room for a slow machine
        count = data["project"]["artifact_count"]
        new = tree / "web-app" / ".claude" / "skills" / "fresh-skill" / "SKILL.md"
        new.parent.mkdir()
        new.write_text("---\nname: fresh-skill\ndescription: just made\n---\nbody\n")
        _id, _name, data = events.wait(updated(web, "artifact_count"))
        assert data["project"]["artifact_count"] == count + 1
        hits = httpx.get(base + API + "/search", params={"q": "fresh-skill"}).json()
        assert [h["name"] for h in hits["items"]] == ["fresh-skill"]
        events.close()


def test_a_reconnecting_client_gets_what_it_missed(tmp_path: Path, tree: Path, home: Path) -> None:
    with server(str(tmp_path / "c.db"), str(tree), "--no-watch", home=home) as base:
        first = Events(base, last_event_id="0")
        seen = first.wait(lambda name, _d: name == "refresh_finished")
        first.close()
        job = httpx.post(base + API + "/refresh", json={"force": True}).json()
        time.sleep(0.5)  # events published while no one listens
        again = Events(base, last_event_id=f"{first.run}-{seen[0]}")
        ids = [again.wait(lambda _n, _d: True)[0]]
        started = again.wait(lambda name, data: name == "refresh_started" and data["id"] == job["id"])
        assert ids[0] == seen[0] + 1 and started[0] > seen[0]
        future = httpx.Client(timeout=5)
        with future.stream("GET", base + API + "/events", headers={"Last-Event-ID": "999999"}) as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: reset"
        other_run = httpx.Client(timeout=5)
        with other_run.stream("GET", base + API + "/events", headers={"Last-Event-ID": "abc123-1"}) as response:
            assert next(line for line in response.iter_lines() if line.startswith("event:")) == "event: reset"
        other_run.close()
        bad = httpx.get(base + API + "/events", headers={"Last-Event-ID": "soon"})
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        future.close()
        again.close()


def test_a_scan_by_another_process_reaches_the_events(tmp_path: Path, tree: Path, home: Path) -> None:
    db = str(tmp_path / "c.db")
    migrate(db)
    with server(db, "--no-watch", home=home) as base:
        events = Events(base)
        cli = [sys.executable, "-m", "skillmeat_cache", "--db", db, "scan", str(tree)]
        subprocess.run(cli, env=_env(home), check=True, capture_output=True)
        _id, _name, data = events.wait(updated(str(tree / "docs-site")))
        assert data["change"] == "added"
        events.close()


@pytest.mark.postgres
def test_two_servers_on_one_postgres_see_each_others_updates(
    fresh_pg_url: str, tree: Path, home: Path, tmp_path: Path
) -> None:
    migrate(fresh_pg_url)
    with (
        server(fresh_pg_url, str(tree), "--no-watch", home=home) as a,
        server(fresh_pg_url, "--no-watch", home=tmp_path / "home-b") as b,
    ):
        on_b = Events(b)
        web = str(tree / "web-app")
        while httpx.get(b + API + "/projects").json()["total"] != 4:  # A's startup refresh, read by B
            time.sleep(0.1)
        (tree / "web-app" / ".claude" / "agents" / "extra.md").write_text("---\nname: extra\n---\nx\n")
        job = httpx.post(a + API + "/refresh", json={}).json()
        assert job["state"] in ("queued", "running", "done")
        _id, _name, data = on_b.wait(updated(web, "artifact_count"))
        assert data["project"]["path"] == web
        # ...and a CLI scan in a terminal reaches both.
        on_a = Events(a)
        other = tmp_path / "other"
        shutil.copytree(EXAMPLES / "docs-site", other / "docs-copy")
        cli = [sys.executable, "-m", "skillmeat_cache", "--db", fresh_pg_url, "scan", str(other)]
        subprocess.run(cli, env=_env(home), check=True, capture_output=True)
        for events in (on_a, on_b):
            events.wait(updated(str((other / "docs-copy").resolve())))
            events.close()


def test_the_kernel_watch_limit_falls_back_to_polling(tmp_path: Path, tree: Path, home: Path) -> None:
    if not os.access(WATCHES, os.W_OK):
        pytest.skip("needs a writable fs.inotify.max_user_watches (root)")
    for i in range(300):  # more folders than the lowered limit lets the kernel watch
        (tree / "bulk" / f"d{i}").mkdir(parents=True)
    before = WATCHES.read_text()
    try:
        WATCHES.write_text("4\n")
        with server(str(tmp_path / "c.db"), str(tree), home=home) as base:
            deadline = time.monotonic() + 10
            while (watcher := httpx.get(base + API + "/status").json()["watcher"])["mode"] == "native":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            WATCHES.write_text(before)
            assert watcher["mode"] == "polling" and "watch limit" in watcher["warning"]
            events = Events(base, last_event_id="0")
            web = str(tree / "web-app")
            events.wait(updated(web))
            (tree / "web-app" / ".claude" / "agents" / "polled.md").write_text("---\nname: polled\n---\nx\n")
            events.wait(updated(web, "artifact_count"), timeout=10)
            events.close()
    finally:
        WATCHES.write_text(before)


def test_listening_beyond_loopback_needs_a_token(run: Callable[..., Any]) -> None:
    result = run("serve", "--host", "0.0.0.0")
    assert result.exit_code == 1
    assert result.output.startswith("error: refusing to listen on 0.0.0.0 without a token")
    assert result.output.count("\n") == 1
    short = run("serve", "--host", "0.0.0.0", "--token", "short")
    assert short.exit_code == 1 and "at least 16 characters" in short.output


def test_a_project_copied_in_at_once_is_found(tmp_path: Path, tree: Path, home: Path) -> None:
    """``cp -r`` writes a whole project before the watcher can watch its folders: the new
    folder itself is walked (the page helper saw half of such projects missed before)."""
    with server(str(tmp_path / "c.db"), str(tree), home=home) as base:
        events = Events(base, last_event_id="0")
        events.wait(updated(str(tree / "web-app")))
        for i in range(4):
            shutil.copytree(EXAMPLES / "web-app", tree / "incoming" / f"copy-{i}")
        for i in range(4):
            events.wait(updated(str(tree / "incoming" / f"copy-{i}")), timeout=10)
        events.close()

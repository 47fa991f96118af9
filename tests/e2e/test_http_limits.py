"""The server's limits over real sockets: a uvicorn process (``api.serve.run``, what
``skillmeat-cache serve`` runs) on a free port, spoken to with raw sockets where a client
has to misbehave (send a body it never finishes, stop reading an event stream)."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningServer, server_process

from benchmarks.api import free_port
from skillmeat_cache import migrate
from skillmeat_cache.api.guards import MAX_BODY_BYTES

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "projects"
API = "/api/v1/cache"
# The server as `serve` runs it, with the limits a test needs (the CLI does not expose them).
SERVER = """
import sys
from skillmeat_cache.api import events
from skillmeat_cache.api.live import Settings
from skillmeat_cache.api.serve import run
from skillmeat_cache.container import Container

url, root, port, cap, write_timeout, max_age, queue = sys.argv[1:8]
events._QUEUE_SIZE = int(queue)  # a subscriber's queue, small so that a test can overflow it
container = Container()
container.config.from_dict({"database_url": url})
settings = Settings(roots=[root], watch=False, max_subscribers=int(cap), event_write_timeout=float(write_timeout),
                    event_stream_max_age=float(max_age))
run(container, settings, "127.0.0.1", int(port), announce=lambda line: None)
"""
BIG_PROJECTS = 12
DESCRIPTION_BYTES = 600_000  # 12 projects: ~7 MB of project_updated events, more than sockets buffer


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples plus projects with long descriptions: every event about one is large."""
    root = tmp_path_factory.mktemp("limits") / "projects"
    shutil.copytree(EXAMPLES, root)
    for i in range(BIG_PROJECTS):
        claude = root / f"big-{i:02}" / ".claude"
        (claude / "agents").mkdir(parents=True)
        (claude / "agents" / "a.md").write_text("---\nname: a\n---\nx\n")
        description = f"{i} " + "d" * DESCRIPTION_BYTES
        (claude / ".skillmeat-project.toml").write_text(f'name = "big-{i:02}"\ndescription = "{description}"\n')
    return root.resolve()


@contextmanager
def server(
    tmp_path: Path, root: Path, *, cap: int = 64, write_timeout: float = 30, max_age: float = 600, queue: int = 1000
) -> Iterator[RunningServer]:
    """A server process on a fresh SQLite file, stopped with SIGTERM after."""
    db = f"sqlite:///{tmp_path / f'c{free_port()}.db'}"
    migrate(db)
    port = free_port()
    args = [db, str(root), str(port), str(cap), str(write_timeout), str(max_age), str(queue)]
    with server_process([sys.executable, "-c", SERVER, *args], port) as running:
        yield running


def _raw(port: int, *, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer is not None:  # before connecting: the window the client offers stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    return sock


def _read_head(sock: socket.socket) -> tuple[str, bytes]:
    """The status line and headers of a response; and what came after them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def _read_to_end(sock: socket.socket, data: bytes = b"", *, until: bytes | None = None) -> bytes:
    """Everything until the server closes the connection (or ``data`` ends with ``until``)."""
    while until is None or not data.endswith(until):
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return data


def _problem_from(head: str, body: bytes, status: int, kind: str) -> dict[str, Any]:
    assert head.startswith(f"HTTP/1.1 {status} "), head
    assert "content-type: application/problem+json" in head.lower(), head
    problem = json.loads(body)
    assert problem["status"] == status and problem["type"].endswith(":" + kind), problem
    return problem


def _wait_for_job(base: str, job: str) -> None:
    deadline = time.monotonic() + 30
    while httpx.get(base + API + f"/refresh/{job}").json()["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, f"job {job} did not finish"
        time.sleep(0.05)


def _refresh_jobs(base: str) -> str:
    """The id of a new refresh job: ids count up, so it tells how many jobs came before."""
    response = httpx.post(base + API + "/refresh", json={})
    assert response.status_code == 202, response.text
    return response.json()["id"]


# ----------------------------------------------------------------------------- bodies


def test_bodies_over_the_limit_are_refused_before_they_are_read(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    shutil.copytree(EXAMPLES, root)
    with server(tmp_path, root) as srv:
        _wait_for_job(srv.base, "r1")  # the startup refresh, which a request would join
        # A Content-Length of a gigabyte, and only a few bytes of it ever sent: the answer
        # comes at once, so the server read none of the rest.
        sock = _raw(srv.port)
        sock.sendall(
            f"POST {API}/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10**9}\r\n\r\n".encode() + b'{"force": '
        )
        head, rest = _read_head(sock)
        problem = _problem_from(head, _read_to_end(sock, rest), 413, "ContentTooLarge")
        assert f"{MAX_BODY_BYTES:,} bytes" in problem["detail"]
        assert "connection: close" in head.lower()  # and it closed: _read_to_end saw the end
        sock.close()
        # Chunked, no Content-Length: counted as it arrives, refused once past the limit,
        # the rest never sent.
        sock = _raw(srv.port)
        sock.sendall(
            f"POST {API}/invalidate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        # One byte over: everything sent is read, so the server's close is a clean one.
        for chunk in [b" " * 8192] * (MAX_BODY_BYTES // 8192) + [b" "]:
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        head, rest = _read_head(sock)
        _problem_from(head, _read_to_end(sock, rest), 413, "ContentTooLarge")
        sock.close()
        # Nothing was done for them: the next job is the second (the first is the startup
        # refresh), and no project was invalidated.
        assert _refresh_jobs(srv.base) == "r2"
        assert httpx.get(srv.base + API + "/projects", params={"status": "stale"}).json()["total"] == 0
        # A request head still incomplete past h11's 16 KiB (a megabyte cannot arrive in one
        # read) never reaches the app: uvicorn's own plain 400 (the one answer that is not a
        # problem), and the server goes on.
        sock = _raw(srv.port)
        sock.sendall(f"GET {API}/projects/{'x' * 1_000_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head, _rest = _read_head(sock)
        assert head.startswith("HTTP/1.1 400 ") and "text/plain" in head, head
        sock.close()
        assert httpx.get(srv.base + API + "/status").status_code == 200
        # A body of exactly the limit is taken.
        at_limit = b"{}" + b" " * (MAX_BODY_BYTES - 2)
        json_type = {"content-type": "application/json"}
        response = httpx.post(srv.base + API + "/refresh", content=at_limit, headers=json_type)
        assert response.status_code == 202, response.text


# ----------------------------------------------------------------------------- slow event clients


def _wait_for_startup_events(base: str) -> None:
    """Read the event stream from the start until every project's ``added`` event came."""
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=30)) as client,
        client.stream("GET", base + API + "/events", headers={"Last-Event-ID": "0"}) as response,
    ):
        assert response.status_code == 200
        seen = 0
        for line in response.iter_lines():
            if line == "event: project_updated":
                seen += 1
                if seen == BIG_PROJECTS + 4:
                    return


def _open_slot(base: str) -> int:
    """The status a new ``/events`` subscriber gets (its stream is closed at once)."""
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=10)) as client,
        client.stream("GET", base + API + "/events") as response,
    ):
        return response.status_code


def _wait_for_a_free_slot(base: str) -> None:
    deadline = time.monotonic() + 60
    while _open_slot(base) != 200:
        assert time.monotonic() < deadline, "the stalled subscriber still holds its slot"
        time.sleep(0.2)


def _stalled_subscriber(port: int) -> socket.socket:
    """A client that asks for every kept event, reads the headers and then nothing."""
    deadline = time.monotonic() + 10
    while True:  # the probe that found the slot free may not have left it yet
        sock = _raw(port, receive_buffer=4096)
        sock.sendall(f"GET {API}/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 0\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(1)  # byte by byte: nothing of the body is taken
        if data.startswith(b"HTTP/1.1 200 "):
            return sock
        sock.close()
        assert data.startswith(b"HTTP/1.1 503 ") and time.monotonic() < deadline, data
        time.sleep(0.1)


def test_a_client_that_stops_reading_is_disconnected(tmp_path: Path, big_tree: Path) -> None:
    with server(tmp_path, big_tree, cap=1, write_timeout=1) as srv:
        _wait_for_startup_events(srv.base)
        _wait_for_a_free_slot(srv.base)
        sock = _stalled_subscriber(srv.port)
        # Its replay (megabytes) stalls once the socket buffers are full; a second later
        # the server gives up: the one slot is free again...
        _wait_for_a_free_slot(srv.base)
        # ...and the connection is closed mid-stream (no end-of-body chunk).
        received = _read_to_end(sock)
        sock.close()
        assert b"event: project_updated" in received and not received.endswith(b"0\r\n\r\n")
        assert len(received) < (BIG_PROJECTS + 4) * DESCRIPTION_BYTES
    assert "closed an event stream: its client read nothing for 1 s" in srv.output
    assert "Exception in ASGI application" not in srv.output and "without completing" not in srv.output


def test_a_client_that_reads_nothing_gives_its_slot_back_when_its_stream_ends(tmp_path: Path) -> None:
    """Nothing but keep-alive pings go out, so no write ever stalls: the stream's maximum
    age is what ends it."""
    root = tmp_path / "projects"
    shutil.copytree(EXAMPLES, root)
    with server(tmp_path, root, cap=1, max_age=1) as srv:
        _wait_for_job(srv.base, "r1")
        _wait_for_a_free_slot(srv.base)
        sock = _stalled_subscriber(srv.port)
        _wait_for_a_free_slot(srv.base)
        # The whole stream was written (the replay, then the end of the body), and uvicorn
        # closes the idle keep-alive connection after it.
        received = _read_to_end(sock, until=b"\r\n0\r\n\r\n")
        assert b"event: project_updated" in received and received.endswith(b"\r\n0\r\n\r\n")
        assert sock.recv(1) == b""
        sock.close()


def test_a_subscriber_whose_queue_overflows_is_dropped_and_told(tmp_path: Path, big_tree: Path) -> None:
    with server(tmp_path, big_tree, cap=1, write_timeout=300, queue=4) as srv:
        _wait_for_startup_events(srv.base)
        _wait_for_a_free_slot(srv.base)
        sock = _stalled_subscriber(srv.port)
        assert _open_slot(srv.base) == 503  # the stalled client holds the only slot
        # Events while it reads nothing: each refresh publishes three or more, its queue
        # holds four.
        for _ in range(3):
            _wait_for_job(srv.base, _refresh_jobs(srv.base))
        _wait_for_a_free_slot(srv.base)  # dropped: its slot is free while its connection is open
        # Reading again, it gets the rest of its replay, then `reset`, then the end of the stream.
        received = _read_to_end(sock, until=b"\r\n0\r\n\r\n")
        sock.close()
        assert received.endswith(b"\r\n0\r\n\r\n")
        tail = received[-2000:].decode("latin-1")
        assert "event: reset" in tail and "this client fell behind" in tail


# ----------------------------------------------------------------------------- Last-Event-ID


def _first_event(base: str, last_event_id: str) -> dict[str, str]:
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=10)) as client,
        client.stream("GET", base + API + "/events", headers={"Last-Event-ID": last_event_id}) as response,
    ):
        assert response.status_code == 200
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if not line:
                if "event" in fields:
                    return fields
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
    raise AssertionError("the stream ended without an event")


def test_last_event_ids_from_the_future_or_another_run_get_one_reset(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    shutil.copytree(EXAMPLES, root)
    with server(tmp_path, root) as srv:
        _wait_for_job(srv.base, "r1")
        run = _first_event(srv.base, "0")["id"].partition("-")[0]
        other = "0" * 8 if run != "0" * 8 else "1" * 8
        for sent, reason in [
            (f"{run}-{10**17}", f"Last-Event-ID {10**17} is ahead of the newest event"),
            ("9" * 18, f"Last-Event-ID {'9' * 18} is ahead of the newest event"),
            (f"{other}-1", "Last-Event-ID is from another run of the server"),
        ]:
            event = _first_event(srv.base, sent)
            assert event["event"] == "reset", sent
            assert json.loads(event["data"])["reason"].startswith(reason), event
            assert event["id"].startswith(run + "-")  # where to resume from: this run's numbers
        for garbage in ("abc", "-1", "1" + "0" * 30):
            response = httpx.get(srv.base + API + "/events", headers={"Last-Event-ID": garbage})
            assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"

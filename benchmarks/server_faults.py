"""Server fault trials (issue 13): ``skillmeat-cache serve`` as a real process, faulted.

- :func:`pg_outage_trial`: PostgreSQL goes away (restarted, or its sessions terminated
  while it refuses connections) while 16 clients read and a refresh writes.
- :func:`kill_trial`: the server SIGKILLed at a random moment of a refresh.
- :func:`disk_full_trial`: the database's file system fills up during a refresh (a small
  tmpfs; needs root).
- :func:`storm_trial`: thousands of files rewritten at once under the watched roots.
- :func:`soak_trial`: many clients for minutes while files change every second.

The trees are :class:`Tree`: projects whose agents all carry the generation they were
written in (``description: gen N``), one generation's files rewritten at a time. The
cache is then checked directly (:func:`consistency`): a project is whole when all of its
artifacts are of one generation, as many as that generation has, and its stored
fingerprint is the one its files had in that generation: one scan's work, nothing from
another. ``benchmarks/reliability.py`` runs these with full counts, the tests in
``tests/e2e/test_server_faults.py`` with small ones.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

API = "/api/v1/cache"
ROOT = Path(__file__).resolve().parents[1]
READ_URLS = ("/projects?limit=100", "/search?q=a01&limit=20", "/status", "/artifacts?limit=50", "/projects?stale=true")


# --------------------------------------------------------------------------- the tree


@dataclass
class Tree:
    """``projects`` projects under ``root``, each with agents of one generation."""

    root: Path
    artifacts: int = 10
    vary: bool = True  # the number of agents depends on the generation
    padding: int = 0  # characters of frontmatter (stored as the metadata document) per agent
    gen: dict[str, int] = field(default_factory=dict)
    fingerprints: dict[tuple[str, int], str] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path, projects: int, artifacts: int = 10, vary: bool = True) -> Tree:
        """Write generation 1 of every project."""
        tree = cls(root.resolve(), artifacts, vary)
        for i in range(projects):
            tree.write(str(tree.root / f"group-{i // 25}" / f"p{i:04d}"), 1)
        return tree

    def count(self, gen: int) -> int:
        """How many agents generation ``gen`` has."""
        return self.artifacts + (gen % 3 if self.vary else 0)

    @property
    def paths(self) -> list[str]:
        """The projects' folders, sorted."""
        return sorted(self.gen)

    def write(self, path: str, gen: int, fingerprint: bool = True) -> int:
        """Rewrite a project as generation ``gen``; how many files were written or removed."""
        from skillmeat_cache.scanner import project_fingerprint

        agents = Path(path) / ".claude" / "agents"
        agents.mkdir(parents=True, exist_ok=True)
        n = self.count(gen)
        body = f"body of generation {gen}\n" * (1 + gen % 5)  # sizes differ from one generation to the next
        for i in range(n):
            notes = f"notes: {'x' * self.padding}\n" if self.padding else ""
            (agents / f"a{i:03d}.md").write_text(f"---\nname: a{i:03d}\ndescription: gen {gen}\n{notes}---\n{body}")
        touched = n
        for extra in agents.glob("a*.md"):
            if int(extra.stem[1:]) >= n:
                extra.unlink()
                touched += 1
        self.gen[path] = gen
        if fingerprint:
            self.fingerprints[(path, gen)] = project_fingerprint(path)
        return touched

    def rewrite_elsewhere(self) -> int:
        """The next generation of every project, written by another process (so that the
        writing does not hold this one's GIL while its threads measure); files touched.
        """
        spec = {"root": str(self.root), "artifacts": self.artifacts, "vary": self.vary, "padding": self.padding,
                "gens": {p: g + 1 for p, g in self.gen.items()}}
        out = subprocess.run([sys.executable, "-m", "benchmarks.server_faults", json.dumps(spec)], cwd=ROOT,
                             check=True, capture_output=True, text=True)
        from skillmeat_cache.scanner import project_fingerprint

        for path, gen in spec["gens"].items():
            self.gen[path] = gen
            self.fingerprints[(path, gen)] = project_fingerprint(path)
        return int(out.stdout)

    def advance(self, paths: list[str] | None = None) -> int:
        """The next generation of ``paths`` (default: every project); files touched."""
        return sum(self.write(p, self.gen[p] + 1) for p in (self.paths if paths is None else paths))


def consistency(url: str, tree: Tree, *, current: bool = False) -> tuple[list[str], dict[str, int]]:
    """Problems with the cache's copy of ``tree``, and the generation of each project it
    holds. ``current``: every project must hold the generation now on disk.
    """
    from sqlalchemy import text
    from sqlalchemy.pool import NullPool

    from skillmeat_cache.engine import create_engine_for_url

    engine = create_engine_for_url(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT p.path, p.fingerprint, p.status, a.id, m.description FROM projects p"
                " LEFT JOIN artifacts a ON a.project_id = p.id LEFT JOIN artifact_metadata m ON m.artifact_id = a.id"
            )).all()
    finally:
        engine.dispose()
    stored: dict[str, list[str | None]] = defaultdict(list)
    fingerprints: dict[str, str | None] = {}
    for path, fingerprint, _status, artifact, description in rows:
        fingerprints[path] = fingerprint
        if artifact is not None:
            stored[path].append(description)
    problems: list[str] = []
    gens: dict[str, int] = {}
    for path in tree.paths:
        if path not in fingerprints:
            problems.append(f"{path}: missing")
            continue
        descriptions = set(stored[path])
        if len(descriptions) != 1 or None in descriptions:
            problems.append(f"{path}: artifacts of several scans {sorted(map(str, descriptions))}")
            continue
        gen = int(str(descriptions.pop()).split()[1])
        gens[path] = gen
        if len(stored[path]) != tree.count(gen):
            problems.append(f"{path}: {len(stored[path])} artifacts of generation {gen}, which has {tree.count(gen)}")
        if fingerprints[path] != tree.fingerprints.get((path, gen)):
            problems.append(f"{path}: fingerprint is not generation {gen}'s")
        if current and gen != tree.gen[path]:
            problems.append(f"{path}: generation {gen} stored, {tree.gen[path]} on disk")
    return problems, gens


def sqlite_checks(path: str | Path) -> list[str]:
    """``PRAGMA integrity_check`` and ``foreign_key_check`` of a SQLite file: [] when both
    pass (``skillmeat-cache check`` is to run these and more).
    """
    conn = sqlite3.connect(path)
    try:
        integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        keys = conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()
    problems = [] if integrity == ["ok"] else [f"integrity_check: {'; '.join(integrity[:3])}"]
    return problems + [f"foreign_key_check: {row}" for row in keys[:3]]


# --------------------------------------------------------------------------- the server


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``skillmeat-cache serve`` in a process of its own, on a free port."""

    def __init__(self, db: str | None, roots: list[str], *args: str, home: Path, log: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLMEAT_CACHE_")}
        env["HOME"] = str(home)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        named = ["--db", db] if db is not None else []  # None: the default cache under ``home``
        cmd = [sys.executable, "-m", "skillmeat_cache", *named, "serve", "--port", str(self.port), *roots, *args]
        with log.open("a") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.tail()}")
            try:
                if httpx.get(self.base + API + "/status", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the server did not start: {self.tail()}")
            time.sleep(0.05)

    def tracebacks(self) -> int:
        """Tracebacks in the server's log so far (an answered error should leave none)."""
        return self.log.read_text(errors="replace").count("Traceback (most recent call last)")

    def tail(self) -> str:
        """The last lines of the server's log."""
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-3:])

    def get(self, path: str, **kwargs: Any) -> Any:
        """GET an API path."""
        return httpx.get(self.base + API + path, timeout=30, **kwargs)

    def post(self, path: str, body: Any = None) -> Any:
        """POST a JSON body to an API path."""
        return httpx.post(self.base + API + path, json=body if body is not None else {}, timeout=30)

    def job(self, job_id: str, until: tuple[str, ...] = ("done", "failed"), timeout: float = 300) -> dict[str, Any]:
        """The job once its state is one of ``until``."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(f"/refresh/{job_id}").json()
            if job["state"] in until:
                return job
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} still {job['state']} after {timeout} s")
            time.sleep(0.05)

    def idle(self, timeout: float = 300) -> None:
        """Wait until no refresh runs (three looks in a row, 0.2 s apart)."""
        deadline, quiet = time.monotonic() + timeout, 0
        while quiet < 3:
            quiet = 0 if self.get("/status").json()["refresh"]["running"] else quiet + 1
            if time.monotonic() > deadline:
                raise RuntimeError("the server's refreshes did not end")
            time.sleep(0.2)

    def rss_kib(self) -> int:
        """The process's resident memory now, KiB."""
        return _proc_status(self.proc.pid, "VmRSS")

    def peak_kib(self) -> int:
        """The process's peak resident memory, KiB."""
        return _proc_status(self.proc.pid, "VmHWM")

    def fds(self) -> int:
        """The process's open file descriptors."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def kill(self) -> None:
        """SIGKILL, and reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        """SIGTERM; the exit status (0 or -SIGTERM: a clean stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
                return -9
        return self.proc.returncode


def _proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@contextmanager
def serving(db: str | None, roots: list[str], *args: str, work: Path) -> Iterator[Server]:
    """A :class:`Server` stopped (SIGTERM) afterwards."""
    server = Server(db, roots, *args, home=work / "home", log=work / "server.log")
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- clients


@dataclass
class Response:
    """One answer a reader got (or did not)."""

    started: float  # time.monotonic()
    seconds: float
    status: int  # 0: no answer (transport error); -1: timed out
    problem: bool = True  # a non-200 answer was problem+json with Retry-After when a 503
    note: str = ""


class Readers:
    """``n`` threads reading ``READ_URLS`` round and round, each answer recorded."""

    def __init__(self, base: str, n: int, timeout: float = 15.0) -> None:
        self.base = base
        self.timeout = timeout
        self.responses: list[Response] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read, args=(k,), daemon=True) for k in range(n)]

    def __enter__(self) -> Readers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def _read(self, offset: int) -> None:
        with httpx.Client(base_url=self.base + API, timeout=self.timeout) as client:
            i = offset
            while not self._stop.is_set():
                url = READ_URLS[i % len(READ_URLS)]
                i += 1
                started = time.monotonic()
                try:
                    r = client.get(url)
                    status, ok, note = r.status_code, True, ""
                    if status != 200:
                        ok = r.headers.get("content-type") == "application/problem+json"
                        ok = ok and (status != 503 or "retry-after" in r.headers)
                        note = r.text[:160]
                except httpx.TimeoutException:
                    status, ok, note = -1, False, "timed out"
                except httpx.TransportError as exc:
                    status, ok, note = 0, False, f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self.responses.append(Response(started, time.monotonic() - started, status, ok, note))
                if status != 200:
                    time.sleep(0.05)  # what a client told Retry-After would do, briefly

    def recent_ok(self, n: int = 32) -> bool:
        """Whether the last ``n`` answers were all 200."""
        with self._lock:
            tail = self.responses[-n:]
        return len(tail) == n and all(r.status == 200 for r in tail)

    def bad(self) -> list[Response]:
        """Answers a client must never get: 500s, hangs, no answer, a 503 without Retry-After."""
        return [r for r in self.responses if r.status not in (200, 503) or not r.problem]


def p99_ms(responses: list[Response]) -> float:
    """The 99th percentile of the answers' times, ms."""
    values = [r.seconds * 1000 for r in responses]
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100)[98]


class EventLog:
    """Reads ``/events`` in a thread; keeps ``(monotonic time, name, data)``."""

    def __init__(self, base: str) -> None:
        from benchmarks.api_load import sse_events

        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self._open = threading.Event()
        self._sse = sse_events

        def read() -> None:
            with suppress(httpx.HTTPError), self._client.stream("GET", base + API + "/events") as response:
                self._open.set()
                for fields in self._sse(response.iter_lines()):
                    self.events.append((time.monotonic(), fields["event"], json.loads(fields["data"])))

        self._thread = threading.Thread(target=read, daemon=True)
        self._thread.start()
        self._open.wait(10)

    def since(self, t: float, name: str) -> list[dict[str, Any]]:
        """The data of the events ``name`` received from monotonic time ``t`` on."""
        return [data for at, n, data in list(self.events) if at >= t and n == name]

    def close(self) -> None:
        """Stop reading."""
        self._client.close()


# --------------------------------------------------------------------------- 1. PostgreSQL goes away


def restart_postgres() -> None:
    """Restart the local cluster for real (every connection to it is cut)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    # A session of its own: a signal to this process group (Ctrl-C, `timeout`) must not
    # stop pg_ctlcluster between its stop and its start, leaving the cluster down.
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True, capture_output=True, timeout=120, start_new_session=True,
    )


def terminate_sessions(admin_url: str, name: str, seconds: float) -> None:
    """Refuse new connections to database ``name``, cut its sessions, wait ``seconds``, allow again."""
    from sqlalchemy import text

    from skillmeat_cache.engine import create_engine_for_url

    admin = create_engine_for_url(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
        time.sleep(seconds)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


@dataclass
class OutageResult:
    """What :func:`pg_outage_trial` found."""

    problems: list[str]
    rows_lost: int
    requests: int
    unavailable: int  # 503 answers
    p99_outage_ms: float  # of the requests that started between the cut and the recovery
    recovery_s: float  # from the cut to 32 answers in a row that were 200
    attempts: int  # runs of the cut-off refresh


def pg_outage_trial(server: Server, url: str, tree: Tree, *, clients: int = 16, restart: bool = False,
                    outage_s: float = 1.5) -> OutageResult:
    """A refresh writes the next generation of every project; once it has stored a few,
    PostgreSQL goes away (``restart``: the cluster restarts; else the database refuses
    connections for ``outage_s`` seconds and its sessions are terminated) while
    ``clients`` threads read. Every answer must be 200 or a 503 problem with Retry-After,
    the server must answer 200 again by itself, the refresh must run again and complete,
    and nothing committed before the cut may be lost.
    """
    from sqlalchemy.engine import make_url

    problems: list[str] = []
    tree.advance()
    tracebacks = server.tracebacks()
    events = EventLog(server.base)
    begun = time.monotonic()
    with Readers(server.base, clients) as readers:
        job = server.post("/refresh").json()
        deadline = time.monotonic() + 60
        while (state := server.get(f"/refresh/{job['id']}").json())["projects_done"] < 3:
            if state["state"] in ("done", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        _, before = consistency(url, tree)  # what the refresh had committed before the cut
        cut = time.monotonic()
        if restart:
            restart_postgres()
        else:
            parsed = make_url(url)
            terminate_sessions(parsed.set(database="postgres").render_as_string(hide_password=False),
                               parsed.database or "", outage_s)
        while not readers.recent_ok():
            if time.monotonic() - cut > 120:
                problems.append("the server did not answer 200 again within 120 s")
                break
            time.sleep(0.05)
        recovered = time.monotonic()
        done = server.job(job["id"])
    if done["state"] != "done":
        problems.append(f"the cut-off refresh ended {done['state']}: {done['error']}")
    if done["attempts"] < 2:
        problems.append(f"the refresh was not cut off (1 attempt; {state['projects_done']} projects done at the cut)")
    bad = readers.bad()
    problems += [f"{len(bad)} bad answers, first: {bad[0].status} {bad[0].note}"] if bad else []
    if server.tracebacks() > tracebacks:
        problems.append(f"{server.tracebacks() - tracebacks} tracebacks in the server's log")
    found, after = consistency(url, tree, current=True)
    problems += found[:3]
    lost = sum(1 for path, gen in before.items() if after.get(path, 0) < gen)
    deadline = time.monotonic() + 30  # the change feed, reconnected, tells of every project
    while (unheard := set(tree.paths) - {d["project"]["path"] for d in events.since(begun, "project_updated")
                                         if d["project"]}) and time.monotonic() < deadline:
        time.sleep(0.1)
    events.close()
    if unheard:
        problems.append(f"{len(unheard)} rewritten projects never reached /events")
    window = [r for r in readers.responses if cut <= r.started <= recovered]
    return OutageResult(
        problems, lost, len(readers.responses), sum(r.status == 503 for r in readers.responses),
        p99_ms(window), recovered - cut, done["attempts"],
    )


# --------------------------------------------------------------------------- 2. SIGKILL during a refresh


@dataclass
class KillResult:
    """What :func:`kill_trial` found."""

    problems: list[str]
    new_at_kill: int  # projects holding the new generation when the server died
    projects: int
    rows_lost: int  # projects missing, or holding an older generation than before the refresh


def kill_trial(db: Path, work: Path, tree: Tree, refresh_s: float, rng: random.Random) -> KillResult:
    """Start the server, write the next generation of every project, ask for a refresh and
    SIGKILL the server at a uniformly random moment within ``refresh_s`` (how long that
    refresh takes unkilled). Then: the file passes ``integrity_check`` and
    ``foreign_key_check``, every project is whole (:func:`consistency`), and a restarted
    server's start-up refresh completes and stores the generation on disk everywhere.
    """
    url = f"sqlite:///{db}"
    server = Server(str(db), [str(tree.root)], "--no-watch", home=work / "home", log=work / "server.log")
    try:
        server.job("r1")
        tree.advance()
        server.post("/refresh")
        time.sleep(rng.uniform(0, refresh_s))
    finally:
        server.kill()
    problems = sqlite_checks(db)
    found, gens = consistency(url, tree)
    problems += [f"after the kill: {p}" for p in found[:3]]
    new = sum(1 for path, gen in gens.items() if gen == tree.gen[path])
    lost = sum(1 for path in tree.paths if gens.get(path, 0) < tree.gen[path] - 1)
    with serving(str(db), [str(tree.root)], "--no-watch", work=work) as again:
        job = again.job("r1")
        if job["state"] != "done":
            problems.append(f"the refresh after the restart ended {job['state']}: {job['error']}")
    problems += [f"after the next refresh: {p}" for p in consistency(url, tree, current=True)[0][:3]]
    problems += sqlite_checks(db)
    return KillResult(problems, new, len(tree.paths), lost)


def refresh_seconds(db: Path, work: Path, tree: Tree) -> float:
    """Seconds the refresh of a kill trial takes, unkilled (the first start also fills
    the cache).
    """
    from datetime import datetime

    with serving(str(db), [str(tree.root)], "--no-watch", work=work) as server:
        server.job("r1")
        tree.advance()
        job = server.job(server.post("/refresh").json()["id"])
    if job["state"] != "done":
        raise RuntimeError(f"the calibration refresh failed: {job['error']}")
    return (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()


# --------------------------------------------------------------------------- 3. disk full


@contextmanager
def small_tmpfs(where: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of ``megabytes`` mounted at ``where`` (root only); unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)],
                   check=True, capture_output=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(path: Path) -> int:
    """Write zeros to ``path`` until its file system is full; bytes written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            chunk = bytes(size)
            with suppress(OSError):
                while (n := os.write(fd, chunk)) == size:
                    written += n
                written += n
    finally:
        os.close(fd)
    return written


@dataclass
class FullResult:
    """What :func:`disk_full_trial` found."""

    problems: list[str]
    reads: int
    attempts: int
    last_error: str | None
    p99_full_ms: float


def disk_full_trial(work: Path, tree: Tree, *, clients: int = 4, full_s: float = 3.0) -> FullResult:
    """The database on a small tmpfs; the disk fills up, then a refresh writes the next
    generation of every project. Readers must keep getting 200, ``/status`` must show the
    error, and once the ballast is removed the refresh must complete by itself.
    """
    problems: list[str] = []
    with small_tmpfs(work / "tmpfs", 64) as mount:
        db = mount / "cache.db"
        with serving(str(db), [str(tree.root)], "--no-watch", work=work) as server:
            server.job("r1")
            ballast = mount / "ballast"
            with Readers(server.base, clients) as readers:
                fill(ballast)
                tree.padding = 4000  # the next generation needs new pages, not only the WAL's old ones
                tree.advance()
                job = server.post("/refresh").json()
                seen = server.job(job["id"], until=("retrying", "done", "failed"), timeout=60)
                full_from = time.monotonic()
                status = server.get("/status").json()["refresh"]
                time.sleep(full_s)  # readers go on reading from the full disk
                full_to = time.monotonic()
                ballast.unlink()
                done = server.job(job["id"], timeout=300)
                after = server.get("/status").json()["refresh"]
            if seen["state"] != "retrying" or "DatabaseFullError" not in (seen["error"] or ""):
                problems.append(f"the refresh was not cut off by a full disk: {seen['state']} {seen['error']}")
            if "DatabaseFullError" not in (status["last_error"] or ""):
                problems.append(f"/status did not show the error: {status}")
            if done["state"] != "done":
                problems.append(f"the refresh did not complete once space was back: {done['state']} {done['error']}")
            if after["last_error"] is not None:
                problems.append(f"/status still shows an error after the refresh completed: {after['last_error']}")
            bad = [r for r in readers.responses if r.status != 200]
            problems += [f"{len(bad)} reads failed, first: {bad[0].status} {bad[0].note}"] if bad else []
            window = [r for r in readers.responses if full_from <= r.started <= full_to]
        problems += consistency(f"sqlite:///{db}", tree, current=True)[0][:3]
        problems += sqlite_checks(db)
    return FullResult(problems, len(window), done["attempts"], status["last_error"], p99_ms(window))


# --------------------------------------------------------------------------- 4. a storm of changes


@dataclass
class StormResult:
    """What :func:`storm_trial` found."""

    problems: list[str]
    files: int
    projects: int
    jobs: int  # refreshes run from the storm's start until the server was idle again
    updates_per_project: Counter[int]  # how many project_updated events per project -> projects
    rss_before_kib: int
    rss_peak_kib: int  # sampled every 20 ms during the storm and until idle
    rss_after_kib: int  # once idle again
    p99_ms: float  # a reader's, from the storm's first write until the cache caught up
    reads: int
    seconds: float  # from the first write to the cache holding every change


def storm_trial(work: Path, tree: Tree, db: Path, *, readers: int = 1) -> StormResult:
    """Rewrite every file of every project at once (a ``git checkout``), the server
    watching: every project must end up holding the new generation, each refreshed about
    once, the server's memory bounded and its readers answered.
    """
    problems: list[str] = []
    with serving(str(db), [str(tree.root)], work=work) as server:
        server.job("r1")
        server.idle()
        events = EventLog(server.base)
        rss_before = server.rss_kib()
        peak = [rss_before]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                with suppress(OSError, ValueError):
                    peak[0] = max(peak[0], server.rss_kib())
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with Readers(server.base, readers) as reading:
            started = time.monotonic()
            files = tree.rewrite_elsewhere()
            deadline = time.monotonic() + 300
            while consistency(f"sqlite:///{db}", tree, current=True)[0]:
                if time.monotonic() > deadline:
                    problems.append("the cache did not catch up with the storm in 300 s")
                    break
                time.sleep(0.2)
            caught_up = time.monotonic()
            server.idle()
        sampling.set()
        sampler.join()
        rss_after = server.rss_kib()
        events.close()
        jobs = len(events.since(started, "refresh_finished"))
        per_project = Counter(d["project"]["path"] for d in events.since(started, "project_updated") if d["project"])
        problems += consistency(f"sqlite:///{db}", tree, current=True)[0][:3]
        bad = [r for r in reading.responses if r.status != 200]
        problems += [f"{len(bad)} reads failed, first: {bad[0].status} {bad[0].note}"] if bad else []
        window = [r for r in reading.responses if started <= r.started <= caught_up]
        missing = [p for p in tree.paths if per_project[p] == 0]
        if missing:
            problems.append(f"{len(missing)} projects changed without a project_updated event")
    return StormResult(
        problems, files, len(tree.paths), jobs, Counter(per_project.values()), rss_before, peak[0], rss_after,
        p99_ms(window),
        len(window), caught_up - started,
    )


# --------------------------------------------------------------------------- damage under a running server


def damage_pages(db: Path, seed: int = 3) -> int:
    """Garbage over every leaf page of the artifacts table of ``db`` while a server runs
    on it: the WAL is checkpointed into the file first, and a commit afterwards makes every
    connection drop the pages it keeps in memory and read the file again. How many pages.
    """
    with sqlite3.connect(db, isolation_level=None) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = sorted(p for (p,) in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'artifacts' AND pagetype = 'leaf'"))
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    garbage = random.Random(seed)
    with open(db, "r+b") as f:
        for page in pages:
            f.seek((page - 1) * size)
            f.write(garbage.randbytes(size))
    with sqlite3.connect(db, isolation_level=None) as conn:
        conn.execute("PRAGMA user_version = 1")
    return len(pages)


@dataclass
class HealResult:
    """What :func:`heal_trial` found."""

    problems: list[str]
    pages: int  # leaf pages overwritten
    requests: int  # answers the readers got from the damage until all was well again
    unavailable: int  # of them 503 (DatabaseCorruptError, then CacheRebuildingError)
    p99_ms: float
    recovery_s: float  # from the damage to the cache rebuilt and every reader answered
    rows_lost: int  # artifacts on disk the cache did not hold once healed and idle


def heal_trial(server: Server, db: Path, tree: Tree, *, clients: int = 16, seed: int = 3) -> HealResult:
    """Damage the default cache under ``server`` while ``clients`` read: the server must
    answer 200 or 503 with Retry-After (never a 500, a hang or a reset), move the file
    aside, rebuild it from the remembered root and serve everything again by itself.
    """
    problems: list[str] = []
    before = server.get("/status").json()["recovered"]
    with Readers(server.base, clients) as reading:
        time.sleep(0.5)
        started = time.monotonic()
        pages = damage_pages(db, seed)
        deadline = started + 120
        while True:
            recovered = server.get("/status").json().get("recovered") if reading.recent_ok(clients) else before
            if recovered is not None and recovered != before:
                break
            if time.monotonic() > deadline:
                problems.append("not healed within 120 s")
                break
            time.sleep(0.05)
        recovery = time.monotonic() - started
    window = [r for r in reading.responses if r.started >= started]
    bad = reading.bad()
    problems += [f"{len(bad)} bad answers, first: {bad[0].status} {bad[0].note}"] if bad else []
    server.idle()
    problems += consistency(f"sqlite:///{db}", tree, current=True)[0][:3]
    lost = max(0, sum(tree.count(gen) for gen in tree.gen.values()) - server.get("/status").json()["artifacts"])
    return HealResult(problems, pages, len(window), sum(r.status == 503 for r in window), p99_ms(window), recovery,
                      lost)


# --------------------------------------------------------------------------- 5. soak


@dataclass
class SoakResult:
    """What :func:`soak_trial` found."""

    problems: list[str]
    requests: int
    errors: int
    changes: int
    events: int
    rss_kib: tuple[int, int, int]  # after start, after the warm-up, at the end
    fds: tuple[int, int, int]
    p99_ms: float


def soak_trial(work: Path, tree: Tree, db: Path, *, clients: int = 32, seconds: float = 300,
               warmup: float = 10, change_every: float = 1.0) -> SoakResult:
    """``clients`` readers (one of them on ``/events``) for ``warmup`` + ``seconds`` while
    a project's files change every ``change_every`` seconds: no error, every change in
    the cache, and the server's RSS and open files at the end within 10 % of the values
    after the warm-up.
    """
    problems: list[str] = []
    rng = random.Random(13)
    with serving(str(db), [str(tree.root)], work=work) as server:
        server.job("r1")
        server.idle()
        rss0, fds0 = server.rss_kib(), server.fds()
        events = EventLog(server.base)
        changes = 0
        with Readers(server.base, clients - 1) as readers:
            time.sleep(warmup)
            rss1, fds1 = server.rss_kib(), server.fds()
            start = time.monotonic()
            end = start + seconds
            while time.monotonic() < end:
                tree.advance([rng.choice(tree.paths)])
                changes += 1
                time.sleep(max(0.0, start + changes * change_every - time.monotonic()))
            deadline = time.monotonic() + 60
            while consistency(f"sqlite:///{db}", tree, current=True)[0] and time.monotonic() < deadline:
                time.sleep(0.2)
            rss2, fds2 = server.rss_kib(), server.fds()
        events.close()
        updates = len(events.since(start, "project_updated"))
    problems += consistency(f"sqlite:///{db}", tree, current=True)[0][:3]
    bad = [r for r in readers.responses if r.status != 200]
    problems += [f"{len(bad)} errors, first: {bad[0].status} {bad[0].note}"] if bad else []
    if rss2 > rss1 * 1.10:
        problems.append(f"RSS grew {100 * (rss2 / rss1 - 1):.0f} % ({rss1 // 1024} -> {rss2 // 1024} MiB)")
    if fds2 > fds1 * 1.10:
        problems.append(f"open files grew {fds1} -> {fds2}")
    if updates < changes * 0.5:
        problems.append(f"{changes} changes, only {updates} project_updated events")
    return SoakResult(problems, len(readers.responses), len(bad), changes, updates, (rss0, rss1, rss2),
                      (fds0, fds1, fds2), p99_ms(readers.responses))


def scratch() -> Any:
    """A temporary folder for a trial."""
    return tempfile.TemporaryDirectory(prefix="server-faults-")


if __name__ == "__main__":  # Tree.rewrite_elsewhere's child
    _spec = json.loads(sys.argv[1])
    _tree = Tree(Path(_spec["root"]), _spec["artifacts"], _spec["vary"], _spec["padding"])
    print(sum(_tree.write(path, gen, fingerprint=False) for path, gen in _spec["gens"].items()))

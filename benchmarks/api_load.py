"""A3 (concurrent clients during a full rescan), A4 (a file edit until its event) and A5
(an idle server's CPU and memory) for ``benchmarks.api``.
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

API = "/api/v1/cache"
Line = Callable[..., None]


def process_stats(pid: int) -> str:
    """RSS and open file descriptors of a process, from /proc."""
    rss = next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return f"RSS {int(rss) / 1024:.0f} MiB, {len(os.listdir(f'/proc/{pid}/fd'))} fds"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _clients(urls: list[str], clients: int, seconds: float) -> tuple[int, int, list[float]]:
    """``clients`` threads cycling through ``urls`` for ``seconds``: (done, errors, latencies ms)."""
    done, errors, lat = [0], [0], []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def work(offset: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = offset
            while time.monotonic() < stop:
                url = urls[i % len(urls)]
                i += 1
                start = time.perf_counter()
                try:
                    ok = client.get(url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    lat.append((time.perf_counter() - start) * 1000)
                    done[0] += ok
                    errors[0] += not ok

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0], errors[0], lat


def a3_load(base: str, floor: str, project_id: str, scan_cmd: list[str], clients: int, seconds: float,
            line: Line) -> bool:
    """A3: the same mix on both servers while a full rescan of the tree writes; run floor,
    ours, ours, floor (each ``seconds`` long, each with its own rescan) so that neither
    side gains from going first or last, and summed per side.
    """
    ours = [f"{base}{API}/projects?limit=1000", f"{base}{API}/search?q=csv&limit=100",
            f"{base}{API}/projects/{project_id}", f"{base}{API}/artifacts?q=csv&limit=100"]
    floors = [f"{floor}/replay/projects", f"{floor}/replay/search-csv", f"{floor}/replay/detail",
              f"{floor}/replay/artifacts-csv"]
    totals = {"ours": [0, 0, []], "floor": [0, 0, []]}
    for side in ("floor", "ours", "ours", "floor"):
        scan = subprocess.Popen(scan_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done, errors, lat = _clients(ours if side == "ours" else floors, clients, seconds)
        scan.terminate()  # the window is over; a full rescan of 100k artifacts takes minutes
        scan.wait()
        total = totals[side]
        total[0] += done
        total[1] += errors
        total[2] += lat
    (done, errors, lat), (fdone, ferrors, flat) = totals["ours"], totals["floor"]
    seconds *= 2
    ratio = (done / seconds) / max(fdone / seconds, 1e-9)
    ok = errors == 0 and ratio >= 0.7
    line("A3", f"{clients} clients {seconds:.0f} s, mix, during a full rescan",
         f"{done / seconds:6.1f}/s p99 {statistics.quantiles(lat, n=100)[98]:6.0f} err {errors}",
         f"{fdone / seconds:6.1f}/s p99 {statistics.quantiles(flat, n=100)[98]:6.0f} err {ferrors}",
         ratio, "0 errors; >= 0.7x floor", ok)
    return ok


def sse_events(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """The events of a text/event-stream, as their fields (``id``, ``event``, ``data``);
    comments (keep-alives) are skipped.
    """
    fields: dict[str, str] = {}
    for raw in lines:
        if not raw:
            if "event" in fields:
                yield fields
            fields = {}
        elif not raw.startswith(":"):
            key, _, value = raw.partition(":")
            fields[key] = value.removeprefix(" ")


def _reader(base: str, into: queue.Queue[tuple[float, dict[str, Any]]], ready: threading.Event) -> None:
    client = httpx.Client(timeout=httpx.Timeout(10, read=None))
    with client, client.stream("GET", base + API + "/events") as r:
        ready.set()
        for fields in sse_events(r.iter_lines()):
            if fields["event"] == "project_updated":
                into.put((time.perf_counter(), json.loads(fields["data"])))


def a4_events(base: str, root: Path, edits: int, line: Line) -> bool:
    """A4: append to a SKILL.md, time until its project's ``project_updated`` arrives."""
    events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
    ready = threading.Event()
    threading.Thread(target=_reader, args=(base, events, ready), daemon=True).start()
    ready.wait(10)
    one_each: dict[Path, Path] = {}  # one skill in each of the first projects
    for skill in sorted(root.resolve().glob("**/.claude/skills/*/SKILL.md")):
        one_each.setdefault(skill.parents[3], skill)
    skills = list(one_each.values())[:edits]
    times, missed = [], 0
    for skill in skills:
        project = str(skill.parents[3])
        while not events.empty():
            events.get_nowait()
        start = time.perf_counter()
        with skill.open("a") as f:
            f.write("\nedited by the benchmark\n")
        deadline = start + 5
        while True:
            try:
                at, data = events.get(timeout=max(0.01, deadline - time.perf_counter()))
            except queue.Empty:
                missed += 1
                break
            if (data.get("project") or {}).get("path") == project and "fingerprint" in data["fields"]:
                times.append((at - start) * 1000)
                break
        time.sleep(0.3)
    p99 = statistics.quantiles(times, n=100)[98] if len(times) > 1 else (times[0] if times else float("inf"))
    ok = missed == 0 and p99 < 500
    line("A4", f"edit a SKILL.md -> project_updated, {len(skills)} edits",
         f"p50 {statistics.median(times) if times else float('nan'):6.0f} p99 {p99:6.0f} miss {missed}", "", None,
         "p99 < 500 ms", ok)
    return ok


def a5_idle(pid: int, seconds: float, line: Line) -> bool:
    """A5: the server's CPU over ``seconds`` of doing nothing, and its memory."""
    before, start = _cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    share = (_cpu_seconds(pid) - before) / (time.monotonic() - start) * 100
    ok = share < 1.0
    line("A5", f"idle {seconds:.0f} s, watching the tree", f"{share:5.2f} % of a core", process_stats(pid), None,
         "< 1 % of one core", ok)
    return ok

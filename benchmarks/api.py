"""The HTTP API against its floor (issue targets A1-A6), on a cache of 1,000 projects x 100
artifacts scanned from a generated tree.

    python -m benchmarks.api [--backend sqlite|postgresql|both] [--quick] [--screenshots DIR]

The floor (``benchmarks.api_floor``) is a bare Starlette app that replays the statements
our API sends, captured off the driver, with the raw driver and ``json.dumps``; both are
served by the same uvicorn settings as separate processes and hit by the same client.
Nothing here asserts a time: it prints figures (a test runs ``--quick`` for the shape).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from skillmeat_cache.engine import create_engine_for_url
from skillmeat_cache.listing import artifact_page, project_detail, project_page, search_page

from .api_load import a3_load, a4_events, a5_idle, process_stats
from .corpus import generate, marketplace_entries

API = "/api/v1/cache"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TERMS = ("review", "zzz-no-match", "csv")  # common (~24 %), none, a name part


def free_port() -> int:
    """A free loopback port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def process(cmd: list[str], base: str) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, once ``base`` answers; stopped with SIGTERM."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(base + "/", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd} did not start") from None
                time.sleep(0.2)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def capture(url: str, project_id: str) -> dict[str, list[tuple[str, Any]]]:
    """The statements (and parameters) our read models send for each benchmarked route."""
    engine = create_engine_for_url(url)
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, params if isinstance(params, dict) else list(params)))

    event.listen(engine, "before_cursor_execute", record)
    reads: dict[str, Callable[[Any], Any]] = {
        "projects": lambda c: project_page(c, limit=1000),
        "detail": lambda c: project_detail(c, project_id),
        **{f"search-{t}": (lambda c, t=t: search_page(c, t, limit=100)) for t in TERMS},
        **{f"artifacts-{t}": (lambda c, t=t: artifact_page(c, text_=t, limit=100)) for t in TERMS},
    }
    out = {}
    with engine.connect() as conn:
        for name, read in reads.items():
            seen.clear()
            read(conn)
            out[name] = [s for s in seen if s[0].lstrip().upper().startswith("SELECT")]
    engine.dispose()
    return out


def latencies(client: httpx.Client, ours: str, floor: str, n: int) -> tuple[list[float], list[float]]:
    """``n`` sequential requests to each, interleaved so both see the same machine; ms."""
    a, b = [], []
    for _ in range(n):
        for url, into in ((ours, a), (floor, b)):
            start = time.perf_counter()
            response = client.get(url)
            into.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
    return a, b


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def line(id_: str, what: str, ours: str, floor: str, ratio: float | None, target: str, ok: bool) -> None:
    """One printed row of the report."""
    shown = "" if ratio is None else f"{ratio:.2f}"
    print(f"{id_:4} {what:44} {ours:>24} {floor:>24} {shown:>6}  {target:28} {'PASS' if ok else 'FAIL'}")


def read_benchmarks(base: str, floor: str, project_id: str, n: int) -> dict[str, Any]:
    """A1, A2 and SkillMeat's shape."""
    results: dict[str, Any] = {}
    with httpx.Client(timeout=60) as client:
        client.get(base + API + "/projects?limit=1000")  # warm both
        client.get(floor + "/replay/projects")
        a, b = latencies(client, base + API + "/projects?limit=1000", floor + "/replay/projects", n)
        sm = [latencies(client, floor + "/skillmeat/projects?limit=1000", floor + "/replay/projects", 1)[0][0]
              for _ in range(max(3, n // 10))]
        results["A1"] = (a, b)
        results["skillmeat"] = sm
        for term in TERMS:
            for kind, path in (("search", "/search"), ("artifacts", "/artifacts")):
                ours = f"{base}{API}{path}?q={term}&limit=100"
                results[f"A2 {kind} q={term}"] = latencies(client, ours, f"{floor}/replay/{kind}-{term}", n)
        results["detail"] = latencies(client, base + API + f"/projects/{project_id}", floor + "/replay/detail", n)
    return results


def report_reads(results: dict[str, Any]) -> bool:
    """Print A1/A2 (and the detail page, SkillMeat's shape); whether all passed."""
    ok_all = True
    a, b = results["A1"]
    ratio = statistics.median(a) / statistics.median(b)
    ok = ratio <= 1.5 and pct(a, 99) < 100
    ok_all &= ok
    fmt = lambda v: f"p50 {statistics.median(v):6.1f} p99 {pct(v, 99):6.1f}"  # noqa: E731
    line("A1", "GET /projects?limit=1000", fmt(a), fmt(b), ratio, "<= 1.5x floor; p99 < 100 ms", ok)
    sm = results["skillmeat"]
    shape = f"p50 {statistics.median(sm):6.1f}"
    line("", "  SkillMeat's shape (all + artifacts, slice)", shape, "", None, "(record)", True)
    for key, pair in results.items():
        if not key.startswith("A2"):
            continue
        a, b = pair
        ratio = statistics.median(a) / statistics.median(b)
        ok = ratio <= 1.5 and pct(a, 99) < 50
        ok_all &= ok
        line("A2", key[3:], fmt(a), fmt(b), ratio, "<= 1.5x floor; p99 < 50 ms", ok)
    a, b = results["detail"]
    line("", "GET /projects/{id} (100 artifacts)", fmt(a), fmt(b), statistics.median(a) / statistics.median(b),
         "(record)", True)
    return ok_all


def fill(url: str, root: Path, work: Path) -> None:
    """Scan the tree into the cache, import the corpus's marketplace and check for updates
    (the CLI, as a user would), so that some artifacts are outdated.
    """
    market = work / "marketplace.json"
    market.write_text(json.dumps(marketplace_entries(seed=1)))
    cli = [sys.executable, "-m", "skillmeat_cache", "--db", url]
    for args in (["migrate"], ["scan", str(root)], ["marketplace", "import", str(market)], ["check-updates"]):
        subprocess.run([*cli, *args], check=True, capture_output=True)


def run_backend(url: str, root: Path, work: Path, args: argparse.Namespace) -> bool:
    """Every benchmark on one cache; whether all passed."""
    started = time.perf_counter()
    fill(url, root, work)
    print(f"\n== {url.split('://')[0]}: cache filled by a scan in {time.perf_counter() - started:.1f} s")
    ours_port, floor_port = free_port(), free_port()
    base, floor = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{floor_port}"
    serve = [sys.executable, "-m", "skillmeat_cache", "--db", url, "serve", str(root), "--port", str(ours_port)]
    with ExitStack() as stack:
        ours = stack.enter_context(process(serve, base))
        while not (s := httpx.get(base + API + "/status", timeout=30).json())["refresh"]["last_finished"]:
            time.sleep(0.5)  # the start-up refresh (an unchanged tree: fingerprints only)
        project_id = httpx.get(base + API + "/projects?limit=1").json()["items"][0]["id"]
        statements = work / f"statements-{ours_port}.json"
        statements.write_text(json.dumps(capture(url, project_id)))
        floor_cmd = [sys.executable, "-m", "benchmarks.api_floor", "--db", url, "--statements", str(statements),
                     "--port", str(floor_port)]
        stack.enter_context(process(floor_cmd, floor))
        print(f"{'id':4} {'workload':44} {'ours (ms)':>24} {'floor (ms)':>24} {'ratio':>6}  {'target':28} result")
        ok = report_reads(read_benchmarks(base, floor, project_id, args.requests))
        if args.reads_only:
            return ok
        scan_cmd = [sys.executable, "-m", "skillmeat_cache", "--db", url, "scan", "--full", str(root)]
        ok &= a3_load(base, floor, project_id, scan_cmd, args.clients, args.seconds, line)
        ok &= a4_events(base, root, args.edits, line)
        ok &= a5_idle(ours.pid, args.idle, line)
        if args.browser:
            from .api_browser import a6_page

            ok &= a6_page(base, floor, line, args.screenshots)
        print(f"server after the run: {process_stats(ours.pid)}; projects {s['projects']}, artifacts {s['artifacts']}")
    return ok


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database."""
    from .postgres import throwaway_postgres_database

    with throwaway_postgres_database(PG_ADMIN, "skillmeat_api_bench") as url:
        yield url


def main(argv: list[str] | None = None) -> int:
    """Run the HTTP benchmarks; exit 1 when a target fails."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--quick", action="store_true", help="A small cache and short runs (a smoke test).")
    parser.add_argument("--screenshots", type=Path, help="Save the page's screenshots here (A6).")
    parser.add_argument("--no-browser", dest="browser", action="store_false", help="Skip A6.")
    parser.add_argument("--reads-only", action="store_true", help="A1 and A2 alone (and the detail page).")
    parser.add_argument("--requests", type=int, help="Requests per A1/A2 cell, each side (default 100).")
    args = parser.parse_args(argv)
    projects, artifacts = (60, 10) if args.quick else (1000, 100)
    requests = args.requests
    args.requests, args.clients, args.seconds = (10, 8, 2.0) if args.quick else (100, 32, 10.0)
    args.requests = requests or args.requests
    args.edits, args.idle = (5, 3.0) if args.quick else (50, 60.0)
    ok = True
    with tempfile.TemporaryDirectory(prefix="skillmeat-api-bench-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        generate(work / "tree", projects, artifacts, seed=1)
        print(f"tree: {projects} projects x {artifacts} artifacts, generated in {time.perf_counter() - started:.1f} s")
        if args.backend in ("sqlite", "both"):
            ok &= run_backend(f"sqlite:///{work / 'cache.db'}", work / "tree", work, args)
        if args.backend in ("postgresql", "both"):
            with postgres_database() as url:
                ok &= run_backend(url, work / "tree", work, args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Reliability trials (issue 5), with counts.

    python -m benchmarks.reliability            # full counts (several minutes)
    python -m benchmarks.reliability --quick    # reduced counts (about a minute)

1  concurrent writers: 8 processes start at the same moment on a SQLite file that does
   not exist yet (each migrates on first use), each writes 2,000 artifacts in units of
   work of 20 rows, while 2 processes read continuously; no error may surface, every
   row must be there, and no reader may ever see a unit of work half-written.
2  crashes: a writer is SIGKILLed at a random moment; the file must pass
   ``PRAGMA integrity_check``, every batch whose commit returned (logged to a side file
   after the commit) must be complete and no batch partial. Then kills in the middle
   of ``migrate()`` (from an empty file, and from revision 0001 to head): the next
   start sees the old or the new revision, never a mix, and migrates cleanly.
3  busy: a process holds the write lock past the busy timeout; the caller gets
   ``DatabaseBusyError`` promptly, ``run_with_retry`` succeeds once the lock is gone,
   nothing else leaks. On PostgreSQL the same for lock timeouts (55P03), serialization
   failures (40001) and deadlocks (40P01).

8-12 the server (issue 13; ``benchmarks/server_faults.py``): PostgreSQL restarted while
   16 clients read and a refresh writes; the server SIGKILLed during refreshes; the
   disk filling up during a refresh; 10,000 files changed at once under the watched
   roots; a soak of 32 clients for 5 minutes while files change every second.
13 the server's default cache damaged under it (every leaf page of the artifacts table
   overwritten) while 16 clients read, 5 times: only 200s and 503s with Retry-After, the
   file moved aside and rebuilt without a restart, every artifact back.

4-7  the test files of the other items, run in a fresh process and counted: the
   hypothesis state machine (fake vs SQLite vs PostgreSQL; 500 examples per test here,
   fewer in CI), the bad-input catalogue, security, the durability setting.

Each item is a function returning :class:`ItemResult`; ``ITEMS`` lists them in order,
so a new row is one more function. Child processes run this module
(``python -m benchmarks.reliability _child ROLE ARGS``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skillmeat_cache.errors import DatabaseUnavailableError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
APP_TABLES = frozenset({"projects", "artifacts", "artifact_metadata", "artifact_tags", "marketplace", "cache_metadata"})


@dataclass
class ItemResult:
    """One row of the report."""

    item: str
    trials: int
    failures: int
    rows_lost: int
    detail: str = ""
    skipped: bool = False

    @property
    def ok(self) -> bool:
        """True when nothing failed (a skipped row counts as ok)."""
        return self.failures == 0 and self.rows_lost == 0


@dataclass
class Counts:
    """How many trials each item runs, and how big they are."""

    writer_trials: int = 20
    writers: int = 8
    readers: int = 2
    rows_per_writer: int = 2000
    batch: int = 20
    kill_trials: int = 50
    migration_kill_trials: int = 20
    busy_repeats: int = 3
    hypothesis_examples: int = 500
    server_projects: int = 200
    pg_restarts: int = 3
    pg_cuts: int = 2
    server_kills: int = 20
    disk_full_trials: int = 3
    storm_projects: int = 100
    storm_files: int = 100
    soak_clients: int = 32
    soak_seconds: float = 300
    heal_trials: int = 5

    @classmethod
    def quick(cls) -> Counts:
        """Reduced counts for a quick look."""
        return cls(
            writer_trials=2,
            rows_per_writer=400,
            kill_trials=10,
            migration_kill_trials=6,
            busy_repeats=1,
            hypothesis_examples=40,
            server_projects=60,
            pg_restarts=1,
            pg_cuts=1,
            server_kills=4,
            disk_full_trials=1,
            storm_projects=30,
            soak_clients=16,
            soak_seconds=30,
            heal_trials=2,
        )


# --------------------------------------------------------------------------- child processes


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    for name in ("SKILLMEAT_CACHE_URL", "SKILLMEAT_CACHE_ENV", "SKILLMEAT_CACHE_SYNCHRONOUS"):
        env.pop(name, None)
    return env


def spawn(role: str, *args: Any) -> subprocess.Popen[str]:
    """Start ``role`` of this module in a child process (stdin/stdout are pipes)."""
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.reliability", "_child", role, json.dumps(list(args))],
        cwd=ROOT,
        env=_child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _expect(proc: subprocess.Popen[str], word: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != word:
        proc.kill()
        _out, err = proc.communicate()
        raise RuntimeError(f"child said {line!r} instead of {word!r}: {err.strip()[-2000:]}")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    with suppress(Exception):
        proc.communicate(timeout=30)


def _uow_factory(url: str, **engine_kwargs: Any) -> tuple[Any, Callable[..., Any]]:
    from dependency_injector import providers

    from skillmeat_cache.container import Container
    from skillmeat_cache.engine import create_engine_for_url

    engine = create_engine_for_url(url, **engine_kwargs)  # engine options the container's config does not carry
    container = Container()
    container.engine.override(providers.Object(engine))
    return engine, container.unit_of_work


def _write_batch(uow: Any, project_id: str, marker: str, size: int, bulk: bool) -> None:
    """``size`` artifacts whose ``source`` is ``marker``, through ``upsert_many`` or ``add``."""
    from skillmeat_cache import Artifact

    if bulk:
        uow.artifacts.upsert_many(
            {"project_id": project_id, "type": "skill", "name": f"{marker}-{i}", "source": marker} for i in range(size)
        )
    else:
        for i in range(size):
            uow.artifacts.add(Artifact(project_id=project_id, type="agent", name=f"{marker}-{i}", source=marker))


def _child_writer(url: str, index: int, rows: int, batch: int) -> dict[str, Any]:
    from skillmeat_cache import Project, migrate

    print("ready", flush=True)
    sys.stdin.readline()
    migrate(url)  # first use: every process races to create the schema
    engine, uows = _uow_factory(url)
    with uows() as uow:
        project_id = uow.projects.add(Project(name=f"writer-{index}", path=f"/reliability/w{index}")).id
    longest = 0.0
    for number in range(rows // batch):
        started = time.monotonic()
        with uows() as uow:
            _write_batch(uow, project_id, f"w{index}-b{number}", batch, bulk=number % 2 == 0)
        longest = max(longest, time.monotonic() - started)
    engine.dispose()
    return {"batches": rows // batch, "longest": longest}


def _child_reader(url: str, stop_path: str, batch: int) -> dict[str, Any]:
    from sqlalchemy import text

    from skillmeat_cache import migrate

    print("ready", flush=True)
    sys.stdin.readline()
    migrate(url)
    engine, uows = _uow_factory(url)
    reads, torn, vanished = 0, [], []
    seen: set[str] = set()
    query = text("SELECT source, COUNT(*) FROM artifacts GROUP BY source")
    during = 0  # reads begun before the writers had all ended
    while True:  # at least one read: a reader that starts after the writers ended still checks
        stopped = os.path.exists(stop_path)
        with uows(read_only=True) as uow:
            counts = dict(uow.session.execute(query).all())
        reads += 1
        during += not stopped
        torn += [f"{marker}: {n} rows" for marker, n in counts.items() if n != batch]
        vanished += sorted(seen - counts.keys())
        seen |= counts.keys()
        if stopped:
            break
    engine.dispose()
    return {"reads": reads, "during": during, "torn": torn[:5], "torn_count": len(torn), "vanished": vanished[:5]}


def _child_crash_writer(url: str, log_path: str, synchronous: str, batch: int) -> None:
    from skillmeat_cache import Project

    _engine, uows = _uow_factory(url, synchronous=synchronous)
    with uows() as uow:
        project_id = uow.projects.add(Project(name="crash", path="/reliability/crash")).id
    print("ready", flush=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    number = 0
    while True:
        with uows() as uow:
            _write_batch(uow, project_id, f"b{number}", batch, bulk=number % 2 == 0)
        os.write(fd, f"{number}\n".encode())  # only after the commit returned
        os.fsync(fd)
        number += 1


def _child_migrator(url: str, pause: float) -> None:
    from sqlalchemy import Engine, event

    from skillmeat_cache import migrate

    # This process only: every statement waits a moment, so a kill lands mid-migration.
    event.listen(Engine, "before_cursor_execute", lambda *_a, **_k: time.sleep(pause))
    print("migrating", flush=True)
    started = time.monotonic()
    migrate(url)
    print(f"done {time.monotonic() - started:.3f}", flush=True)


def _child_lock_holder(path: str, seconds: float) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(seconds)
    conn.execute("ROLLBACK")
    conn.close()


_ROLES: dict[str, Callable[..., Any]] = {
    "writer": _child_writer,
    "reader": _child_reader,
    "crash_writer": _child_crash_writer,
    "migrator": _child_migrator,
    "lock_holder": _child_lock_holder,
}


def _run_child(role: str, args: list[Any]) -> int:
    try:
        result = _ROLES[role](*args)
    except BaseException as exc:  # reported to the parent, which counts it as a surfaced error
        print(json.dumps({"error": f"{type(exc).__module__}.{type(exc).__name__}: {exc}"}), flush=True)
        traceback.print_exc()
        return 1
    if result is not None:
        print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------- checks


def integrity(path: str | Path) -> str:
    """``PRAGMA integrity_check`` of a SQLite file, as one string."""
    conn = sqlite3.connect(path)
    try:
        return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def batch_counts(path: str | Path) -> dict[str, int]:
    """Rows per batch marker (``artifacts.source``) in a SQLite file."""
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT source, COUNT(*) FROM artifacts GROUP BY source").fetchall())
    finally:
        conn.close()


def schema_problems(url: str) -> tuple[str | None, list[str]]:
    """The database's revision, and how its tables disagree with that revision."""
    from sqlalchemy import inspect
    from sqlalchemy.pool import NullPool

    from skillmeat_cache.engine import create_engine_for_url

    engine = create_engine_for_url(url, poolclass=NullPool)
    problems: list[str] = []
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            tables = set(inspector.get_table_names())
            versions = []
            if "alembic_version" in tables:
                versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
            if len(versions) > 1:
                problems.append(f"alembic_version holds {versions}")
            revision = versions[0] if versions else None
            if revision is None:
                if tables & APP_TABLES:
                    problems.append(f"no revision but tables {sorted(tables & APP_TABLES)}")
                return revision, problems
            if tables & APP_TABLES != APP_TABLES:
                problems.append(f"revision {revision} lacks tables {sorted(APP_TABLES - tables)}")
                return revision, problems
            has_fingerprint = "fingerprint" in {c["name"] for c in inspector.get_columns("projects")}
            if has_fingerprint != (revision >= "0002"):
                problems.append(f"revision {revision} but projects.fingerprint present={has_fingerprint}")
            index = {i["name"]: i["column_names"] for i in inspector.get_indexes("artifacts")}
            wide = index.get("idx_artifacts_project_id") == ["project_id", "is_outdated"]
            if wide != (revision >= "0003"):
                problems.append(
                    f"revision {revision} but idx_artifacts_project_id is {index.get('idx_artifacts_project_id')}"
                )
            if conn.dialect.name == "sqlite":
                check = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
                if check != "ok":
                    problems.append(f"integrity_check: {check}")
    finally:
        engine.dispose()
    return revision, problems


# --------------------------------------------------------------------------- item 1


def concurrent_writers_trial(workdir: Path, counts: Counts) -> tuple[list[str], int, int, float]:
    """One trial of item 1 on a new file under ``workdir``: (problems, rows lost, reads
    the readers made, the longest write unit of work in seconds, lock wait included).
    """
    db = workdir / f"race-{uuid.uuid4().hex[:8]}.db"
    stop = workdir / f"{db.name}.stop"
    url = "sqlite:///" + str(db)
    writers = [spawn("writer", url, i, counts.rows_per_writer, counts.batch) for i in range(counts.writers)]
    readers = [spawn("reader", url, str(stop), counts.batch) for _ in range(counts.readers)]
    problems: list[str] = []
    reads, during, longest = 0, 0, 0.0
    try:
        for proc in writers + readers:  # the barrier: every process has imported everything
            _expect(proc, "ready")
        for proc in writers + readers:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for i, proc in enumerate(writers):
            out, err = proc.communicate(timeout=600)
            result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err.strip()[-300:]}
            if proc.returncode != 0 or "error" in result:
                problems.append(f"writer {i}: {result.get('error')}")
            longest = max(longest, result.get("longest", 0.0))
        stop.touch()
        for i, proc in enumerate(readers):
            out, err = proc.communicate(timeout=120)
            result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err.strip()[-300:]}
            if proc.returncode != 0 or "error" in result:
                problems.append(f"reader {i}: {result.get('error')}")
            elif result["torn_count"] or result["vanished"]:
                problems.append(
                    f"reader {i} saw half-written units of work {result['torn']} / vanished {result['vanished']}"
                )
            elif result["reads"] == 0:
                problems.append(f"reader {i} read nothing")
            reads += result.get("reads", 0)
            during += result.get("during", 0)
    finally:
        for proc in writers + readers:
            _stop(proc)
    if reads and not during:
        problems.append("no reader read while the writers ran")
    expected = counts.writers * counts.rows_per_writer
    found = batch_counts(db) if db.exists() else {}
    present = sum(found.values())
    wrong = {k: v for k, v in found.items() if v != counts.batch}
    if wrong:
        problems.append(f"partial batches {sorted(wrong.items())[:3]}")
    if present != expected:
        problems.append(f"{present} of {expected} rows present")
    if db.exists() and (check := integrity(db)) != "ok":
        problems.append(f"integrity_check: {check}")
    for path in workdir.glob(db.name + "*"):
        path.unlink()
    return problems, max(0, expected - present), reads, longest


def run_concurrent_writers(counts: Counts, workdir: Path, **_: Any) -> ItemResult:
    """Item 1: ``counts.writer_trials`` trials of :func:`concurrent_writers_trial`."""
    failures, lost, first, reads, seconds, longest = 0, 0, "", 0, [], 0.0
    for _trial in range(counts.writer_trials):
        started = time.monotonic()
        problems, rows_lost, trial_reads, trial_longest = concurrent_writers_trial(workdir, counts)
        longest = max(longest, trial_longest)
        seconds.append(time.monotonic() - started)
        lost += rows_lost
        reads += trial_reads
        if problems:
            failures += 1
            first = first or "; ".join(problems)
    name = f"1 concurrent writers ({counts.writers}x{counts.rows_per_writer} rows, {counts.readers} readers, new file)"
    detail = first or (
        f"{counts.writer_trials * counts.writers * counts.rows_per_writer // counts.batch} write units of work,"
        f" {reads} read units of work checked; longest write unit of work {longest:.2f} s (lock wait included);"
        f" {min(seconds):.1f}-{max(seconds):.1f} s per trial"
    )
    return ItemResult(name, counts.writer_trials, failures, lost, detail)


# --------------------------------------------------------------------------- item 2


def _migrated_template(workdir: Path, revision: str = "head") -> Path:
    from skillmeat_cache import migrate

    path = workdir / f"template-{revision}.db"
    if not path.exists():
        migrate(str(path), revision)
    return path


def crash_trial(
    workdir: Path, template: Path, *, synchronous: str, batch: int, max_delay: float
) -> tuple[list[str], int, int, bool]:
    """One SIGKILL of a writer at a random moment: (problems, rows lost, batches logged,
    whether a committed batch was not logged yet).
    """
    db = workdir / f"crash-{uuid.uuid4().hex[:8]}.db"
    log = workdir / f"{db.name}.log"
    shutil.copyfile(template, db)
    proc = spawn("crash_writer", "sqlite:///" + str(db), str(log), synchronous, batch)
    try:
        _expect(proc, "ready")
        time.sleep(random.uniform(0.0, max_delay))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        _stop(proc)
    problems, lost, logged, pending = crash_problems(db, log, batch)
    for path in workdir.glob(db.name + "*"):
        path.unlink()
    return problems, lost, logged, pending


def crash_problems(db: Path, log: Path, batch: int) -> tuple[list[str], int, int, bool]:
    """Check a killed writer's file against its side log: (problems, rows lost, batches
    logged, whether the batch after the last logged one is there).
    """
    problems: list[str] = []
    if (check := integrity(db)) != "ok":
        problems.append(f"integrity_check: {check}")
    logged = [int(x) for x in log.read_text().split()] if log.exists() else []
    found = {int(k[1:]): v for k, v in batch_counts(db).items()}
    lost = sum(batch - found.get(n, 0) for n in logged)
    if lost:
        problems.append(f"{lost} rows of committed batches missing")
    partial = {n: c for n, c in found.items() if c != batch}
    if partial:
        problems.append(f"partial batches {partial}")
    unlogged = sorted(set(found) - set(logged))
    if unlogged and unlogged != [len(logged)]:  # only the batch after the last logged one may be there unlogged
        problems.append(f"batches present but never logged: {unlogged}")
    if logged != list(range(len(logged))):
        problems.append("side log out of order")
    return problems, lost, len(logged), bool(unlogged)


def migration_kill_trial(
    workdir: Path, url: str, start: str | None, delay: float, pause: float
) -> tuple[list[str], str]:
    """Kill ``migrate()`` after ``delay`` s (from ``start``, None = empty), then check and
    migrate again: (problems, what the kill left: ``old`` or ``new`` revision, or
    ``after`` when migrate() had already returned).
    """
    from skillmeat_cache import HEAD_REVISION, migrate

    proc = spawn("migrator", url, pause)
    try:
        _expect(proc, "migrating")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        returned = "done" in proc.stdout.read()
    finally:
        _stop(proc)
    revision, problems = schema_problems(url)
    if revision not in (start, HEAD_REVISION):
        problems.append(f"killed migration left revision {revision} (expected {start} or {HEAD_REVISION})")
    if start is not None and not problems and _seed_present(url) is False:
        problems.append("rows stored before the migration are gone")
    try:
        migrate(url)
    except Exception as exc:
        problems.append(f"migrate() after the kill: {type(exc).__name__}: {exc}")
    after, more = schema_problems(url)
    problems += [f"after migrate(): {p}" for p in more]
    if after != HEAD_REVISION:
        problems.append(f"migrate() after the kill reached {after}")
    elif start is not None and not _seed_present(url):
        problems.append("rows stored before the migration are gone after migrate()")
    if returned:
        return problems, "after"  # the kill came after migrate() had returned
    return problems, "old" if revision == start else "new" if revision == HEAD_REVISION else str(revision)


def _seed(url: str) -> None:
    """Rows written at revision 0001 (raw SQL: the models are at head)."""
    from sqlalchemy import text

    from skillmeat_cache.engine import create_engine_for_url

    engine = create_engine_for_url(url)
    try:
        with engine.begin() as conn:
            values = {"t": "2026-01-01 00:00:00"}
            conn.execute(
                text(
                    "INSERT INTO projects (id, name, path, created_at, updated_at, status)"
                    " VALUES ('p1', 'seed', '/s', :t, :t, 'active')"
                ),
                values,
            )
            conn.execute(
                text(
                    "INSERT INTO artifacts (id, project_id, name, type, is_outdated, local_modified, created_at,"
                    " updated_at) VALUES ('a1', 'p1', 'seed', 'skill', false, false, :t, :t)"
                ),
                values,
            )
    finally:
        engine.dispose()


def _seed_present(url: str) -> bool:
    from sqlalchemy import text

    from skillmeat_cache.engine import create_engine_for_url

    engine = create_engine_for_url(url)
    try:
        with engine.connect() as conn:
            return (
                conn.execute(text("SELECT COUNT(*) FROM artifacts WHERE id = 'a1' AND project_id = 'p1'")).scalar() == 1
            )
    finally:
        engine.dispose()


def _calibrate(url: str, pause: float) -> float:
    proc = spawn("migrator", url, pause)
    out, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"calibration migration failed: {err.strip()[-500:]}")
    return float(out.split()[-1])


def run_crashes(counts: Counts, workdir: Path, **_: Any) -> ItemResult:
    """Item 2a: ``counts.kill_trials`` SIGKILLs of a writer (half NORMAL, half FULL)."""
    template = _migrated_template(workdir)
    failures, lost, first = 0, 0, ""
    logged, unlogged = [], 0
    for trial in range(counts.kill_trials):
        problems, rows_lost, batches, pending = crash_trial(
            workdir, template, synchronous="FULL" if trial % 2 else "NORMAL", batch=counts.batch, max_delay=0.6
        )
        lost += rows_lost
        logged.append(batches)
        unlogged += pending
        if problems:
            failures += 1
            first = first or "; ".join(problems)
    detail = first or (
        f"batches committed before the kill: {min(logged)}-{max(logged)} (median {sorted(logged)[len(logged) // 2]});"
        f" killed between commit and log: {unlogged}"
    )
    return ItemResult("2 SIGKILL of a writer (SQLite, NORMAL/FULL)", counts.kill_trials, failures, lost, detail)


def run_migration_kills(counts: Counts, workdir: Path, pause: float = 0.02, **_: Any) -> ItemResult:
    """Item 2b: kills during ``migrate()`` from an empty file and from 0001, alternately."""
    from skillmeat_cache import migrate

    durations = {}
    for start in (None, "0001"):
        probe = workdir / f"calibrate-{start}.db"
        if start:
            migrate(str(probe), start)
        durations[start] = _calibrate("sqlite:///" + str(probe), pause)
    failures, first = 0, ""
    outcomes: dict[str, int] = {}
    for trial in range(counts.migration_kill_trials):
        start = None if trial % 2 == 0 else "0001"
        db = workdir / f"mkill-{uuid.uuid4().hex[:8]}.db"
        if start:
            migrate(str(db), start)
            _seed("sqlite:///" + str(db))
        delay = random.uniform(0.0, durations[start])
        problems, outcome = migration_kill_trial(workdir, "sqlite:///" + str(db), start, delay, pause)
        outcomes[f"{start or 'empty'}->{outcome}"] = outcomes.get(f"{start or 'empty'}->{outcome}", 0) + 1
        if problems:
            failures += 1
            first = first or "; ".join(problems)
        for path in workdir.glob(db.name + "*"):
            path.unlink()
    seen = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    took = ", ".join(f"{start or 'empty'} {seconds:.2f} s" for start, seconds in durations.items())
    detail = first or f"left by the kill: {seen} (slowed migration from {took})"
    return ItemResult("2 SIGKILL during migrate() (SQLite)", counts.migration_kill_trials, failures, 0, detail)


def run_pg_migration_kill(counts: Counts, workdir: Path, pg_url: str | None = None, **_: Any) -> ItemResult:
    """Item 2c: two kills during ``migrate()`` of an empty PostgreSQL database."""
    name = "2 SIGKILL during migrate() (PostgreSQL)"
    fractions = (0.3, 0.7)
    failures, first, outcomes = 0, "", []
    try:
        with throwaway_pg_database(pg_url or DEFAULT_PG_URL, "reliability_calibrate") as url:
            duration = _calibrate(url, 0.01)
        for fraction in fractions:
            with throwaway_pg_database(pg_url or DEFAULT_PG_URL, "reliability_mkill") as url:
                problems, outcome = migration_kill_trial(workdir, url, None, duration * fraction, 0.01)
                outcomes.append(outcome)
                if problems:
                    failures += 1
                    first = first or "; ".join(problems)
    except DatabaseUnavailableError as exc:
        return ItemResult(name, 0, 0, 0, f"skipped: not reachable ({exc})", skipped=True)
    return ItemResult(name, len(fractions), failures, 0, first or f"left by the kill: {', '.join(outcomes)}")


# --------------------------------------------------------------------------- item 3


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _driver_code(exc: BaseException) -> str | None:
    for link in _chain(exc):
        orig = getattr(link, "orig", None)
        if getattr(orig, "sqlstate", None):
            return str(orig.sqlstate)
        if getattr(orig, "sqlite_errorcode", None) is not None:
            return f"sqlite {orig.sqlite_errorcode & 0xFF}"
    return None


def _expect_busy(action: Callable[[], Any], code: str, limit: float, timings: list[float] | None = None) -> list[str]:
    """Run ``action``; it must raise DatabaseBusyError caused by ``code`` within ``limit`` s
    (the time it took is appended to ``timings``).
    """
    from skillmeat_cache import DatabaseBusyError

    started = time.monotonic()
    try:
        action()
    except DatabaseBusyError as exc:
        elapsed = time.monotonic() - started
        if timings is not None:
            timings.append(elapsed)
        problems = []
        if _driver_code(exc) != code:
            problems.append(f"busy error caused by {_driver_code(exc)}, expected {code}")
        if elapsed > limit:
            problems.append(f"busy error after {elapsed:.2f} s (limit {limit:.2f} s)")
        return problems
    except BaseException as exc:
        return [f"leaked {type(exc).__module__}.{type(exc).__name__}: {exc}"]
    return ["no error although the database was locked"]


def _retry(uows: Callable[..., Any], work: Callable[[Any], Any]) -> tuple[list[str], int]:
    """``run_with_retry(uows, work)``: (problems, attempts)."""
    from skillmeat_cache import run_with_retry

    attempts = [0]

    def counted(uow: Any) -> Any:
        attempts[0] += 1
        return work(uow)

    try:
        run_with_retry(uows, counted, attempts=20, initial_wait=0.05, max_wait=0.5)
    except BaseException as exc:
        return [f"run_with_retry raised {type(exc).__module__}.{type(exc).__name__}: {exc}"], attempts[0]
    return [], attempts[0]


def sqlite_busy_scenario(
    workdir: Path, template: Path, repeat: int, busy_timeout: float = 1.0, timings: list[float] | None = None
) -> tuple[list[str], int]:
    """Another process holds ``BEGIN IMMEDIATE`` for ``busy_timeout + 1.5`` s: a write gets
    DatabaseBusyError within the timeout plus a margin, a read works meanwhile, and
    ``run_with_retry`` then succeeds (the holder rolls back, or is SIGKILLed on odd repeats).
    """
    from skillmeat_cache import Project

    db = workdir / f"busy-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, db)
    url = "sqlite:///" + str(db)
    engine, uows = _uow_factory(url, busy_timeout=busy_timeout)
    hold = busy_timeout + 1.5
    holder = spawn("lock_holder", str(db), hold if repeat % 2 == 0 else 600)
    problems: list[str] = []
    try:
        _expect(holder, "locked")
        locked_at = time.monotonic()
        if repeat % 2:
            threading.Timer(hold, holder.send_signal, args=(signal.SIGKILL,)).start()

        def write() -> None:
            with uows() as uow:
                uow.projects.add(Project(name="blocked", path="/busy/blocked"))

        problems += _expect_busy(write, "sqlite 5", busy_timeout + 2.0, timings)
        try:
            with uows(read_only=True) as uow:
                uow.projects.count()
        except BaseException as exc:
            problems.append(f"a read during the lock raised {type(exc).__name__}: {exc}")
        more, attempts = _retry(uows, lambda uow: uow.projects.add(Project(name="retried", path="/busy/retried")))
        problems += more
        if not more and time.monotonic() - locked_at < hold * 0.9:
            problems.append("run_with_retry succeeded while the lock was still held")
        if not more and attempts < 2:
            problems.append("run_with_retry never met the lock")
    finally:
        _stop(holder)
    lost = 0
    with uows(read_only=True) as uow:
        paths = [p.path for p in uow.projects.list()]
    if paths != ["/busy/retried"]:
        problems.append(f"projects afterwards: {paths}")
        lost = int("/busy/retried" not in paths)
    engine.dispose()
    return problems, lost


def _pg_fixture(url: str, busy_timeout: float = 1.0) -> tuple[Any, Callable[..., Any], list[str]]:
    """A migrated database's engine/UoW factory and the ids of two artifacts."""
    from skillmeat_cache import Artifact, Project

    engine, uows = _uow_factory(url, busy_timeout=busy_timeout)
    with uows() as uow:
        project = uow.projects.add(Project(name="busy", path=f"/busy/{uuid.uuid4().hex}"))
        ids = [uow.artifacts.add(Artifact(project_id=project.id, name=n, type="skill")).id for n in ("x", "y")]
    return engine, uows, ids


def pg_lock_timeout_scenario(url: str, timings: list[float] | None = None) -> tuple[list[str], int]:
    """A row lock held past the engine's busy timeout (lock_timeout): 55P03 as
    DatabaseBusyError within the timeout plus a margin; the retry succeeds after release.
    """
    from sqlalchemy import text

    engine, uows, (x, _y) = _pg_fixture(url)
    holder = engine.connect()
    holder.execute(text("SELECT 1 FROM artifacts WHERE id = :id FOR UPDATE"), {"id": x})
    try:

        def write() -> None:
            with uows() as uow:
                uow.artifacts.update_many([{"id": x, "deployed_version": "2.0"}])

        problems = _expect_busy(write, "55P03", 1.0 + 2.0, timings)
        release = threading.Timer(1.5, holder.rollback)
        release.start()
        more, attempts = _retry(uows, lambda uow: uow.artifacts.update_many([{"id": x, "deployed_version": "2.0"}]))
        release.join()
        problems += more + (["run_with_retry never met the lock"] if attempts < 2 and not more else [])
    finally:
        holder.close()
    with uows(read_only=True) as uow:
        stored = uow.artifacts.get(x).deployed_version
    engine.dispose()
    return problems + ([f"deployed_version is {stored!r}"] if stored != "2.0" else []), int(stored != "2.0")


def pg_serialization_scenario(url: str, timings: list[float] | None = None) -> tuple[list[str], int]:
    """Two SERIALIZABLE units of work with a write skew: the second to commit gets 40001
    as DatabaseBusyError; re-run with ``run_with_retry`` it succeeds.
    """
    from skillmeat_cache import Artifact

    engine, _uows, (x, _y) = _pg_fixture(url)
    engine.dispose()
    engine, uows = _uow_factory(url, busy_timeout=1.0, isolation_level="SERIALIZABLE")
    with uows(read_only=True) as uow:
        project_id = uow.artifacts.get(x).project_id

    def add_after_count(uow: Any, name: str) -> None:
        n = uow.artifacts.count(project_id)
        uow.artifacts.add(Artifact(project_id=project_id, name=f"{name}-{n}", type="command"))

    def interleaved() -> None:
        with uows() as first, uows() as second:
            first.artifacts.count(project_id)
            add_after_count(second, "second")
            add_after_count(first, "first")
        # second exits first and commits; first read what second changed: it must not commit.

    problems = _expect_busy(interleaved, "40001", 5.0, timings)
    more, _attempts = _retry(uows, lambda uow: add_after_count(uow, "first"))
    problems += more
    with uows(read_only=True) as uow:
        names = sorted(a.name for a in uow.artifacts.list_for_project(project_id, type="command"))
    engine.dispose()
    if names != ["first-3", "second-2"]:
        problems.append(f"command artifacts afterwards: {names}")
    return problems, 2 - len(names) if len(names) < 2 else 0


def pg_deadlock_scenario(url: str, timings: list[float] | None = None) -> tuple[list[str], int]:
    """Two units of work update rows x and y in opposite orders: one gets 40P01 as
    DatabaseBusyError, the other commits; the loser succeeds with ``run_with_retry``.
    """
    from skillmeat_cache import DatabaseBusyError

    # A lock timeout longer than the server's deadlock_timeout (1 s), or it would fire first.
    engine, uows, (x, y) = _pg_fixture(url, busy_timeout=5.0)
    barrier = threading.Barrier(2, timeout=30)
    outcome: dict[str, BaseException | None] = {}

    def work(uow: Any, first: str, second: str, version: str, wait: bool) -> None:
        uow.artifacts.update_many([{"id": first, "deployed_version": version}])
        if wait:
            barrier.wait()
        uow.artifacts.update_many([{"id": second, "deployed_version": version}])

    def run(label: str, first: str, second: str) -> None:
        try:
            with uows() as uow:
                work(uow, first, second, label, True)
            outcome[label] = None
        except BaseException as exc:
            outcome[label] = exc

    threads = [threading.Thread(target=run, args=a) for a in (("a", x, y), ("b", y, x))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started
    problems: list[str] = []
    losers = [k for k, v in outcome.items() if v is not None]
    if len(losers) != 1:
        problems.append(f"expected one deadlock victim, got outcomes {outcome}")
    else:
        exc = outcome[losers[0]]
        assert exc is not None
        if not isinstance(exc, DatabaseBusyError):
            problems.append(f"leaked {type(exc).__module__}.{type(exc).__name__}: {exc}")
        elif _driver_code(exc) != "40P01":
            problems.append(f"busy error caused by {_driver_code(exc)}, expected 40P01")
        if elapsed > 10:
            problems.append(f"deadlock resolved after {elapsed:.1f} s")
        if timings is not None:
            timings.append(elapsed)
        winner = "b" if losers[0] == "a" else "a"
        first, second = (x, y) if losers[0] == "a" else (y, x)
        more, _ = _retry(uows, lambda uow: work(uow, first, second, losers[0], False))
        problems += more
        with uows(read_only=True) as uow:
            versions = {uow.artifacts.get(i).deployed_version for i in (x, y)}
        if versions != {losers[0]}:
            problems.append(f"versions afterwards {versions}, expected the retried {losers[0]!r} over {winner!r}")
    engine.dispose()
    return problems, 0


def run_busy_sqlite(counts: Counts, workdir: Path, **_: Any) -> ItemResult:
    """Item 3a: :func:`sqlite_busy_scenario`, ``busy_repeats`` times."""
    template = _migrated_template(workdir)
    failures, lost, first, timings = 0, 0, "", []
    for repeat in range(counts.busy_repeats):
        problems, rows_lost = sqlite_busy_scenario(workdir, template, repeat, timings=timings)
        lost += rows_lost
        if problems:
            failures += 1
            first = first or "; ".join(problems)
    detail = first or f"DatabaseBusyError after {_span(timings)} s (busy_timeout 1 s); then run_with_retry succeeded"
    return ItemResult("3 busy: write lock held past busy_timeout (SQLite)", counts.busy_repeats, failures, lost, detail)


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def run_busy_postgres(counts: Counts, workdir: Path, pg_url: str | None = None, **_: Any) -> ItemResult:
    """Item 3b: lock timeout, serialization failure and deadlock on PostgreSQL."""
    from skillmeat_cache import migrate

    name = "3 busy: lock timeout, serialization, deadlock (PostgreSQL)"
    scenarios = (pg_lock_timeout_scenario, pg_serialization_scenario, pg_deadlock_scenario)
    failures, lost, first = 0, 0, ""
    timings: dict[str, list[float]] = {"55P03": [], "40001": [], "40P01": []}
    try:
        with throwaway_pg_database(pg_url or DEFAULT_PG_URL, "reliability_busy") as url:
            migrate(url)
            for _repeat in range(counts.busy_repeats):
                for scenario, times in zip(scenarios, timings.values(), strict=True):
                    problems, rows_lost = scenario(url, times)
                    lost += rows_lost
                    if problems:
                        failures += 1
                        first = first or f"{scenario.__name__}: " + "; ".join(problems)
    except DatabaseUnavailableError as exc:
        return ItemResult(name, 0, 0, 0, f"skipped: not reachable ({exc})", skipped=True)
    detail = first or "DatabaseBusyError after " + ", ".join(f"{k} {_span(v)} s" for k, v in timings.items())
    if not first:
        detail += "; each retry succeeded"
    return ItemResult(name, counts.busy_repeats * len(scenarios), failures, lost, detail)


# --------------------------------------------------------------------------- PostgreSQL


def throwaway_pg_database(admin_url: str, prefix: str) -> Any:
    """Create an empty database on the server of ``admin_url``, yield its URL, drop it;
    DatabaseUnavailableError when the server cannot be reached.
    """
    from benchmarks.postgres import throwaway_postgres_database

    return throwaway_postgres_database(admin_url, prefix)


# --------------------------------------------------------------------------- report

# --------------------------------------------------------------------------- items 4-7: test files


def pytest_item(item: str, paths: list[str], workdir: Path, env: dict[str, str] | None = None) -> ItemResult:
    """Run test files in a fresh process and count: a test is a trial, a failed or
    erroring test a failure; a failure whose message says rows were lost (the bad-input
    tests' ``assert_kept``) counts as rows lost.
    """
    import xml.etree.ElementTree as ET

    junit = workdir / f"junit-{uuid.uuid4().hex}.xml"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--no-cov", "-q", f"--junitxml={junit}", *paths]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if not junit.exists():
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        return ItemResult(item, 0, 1, 0, f"pytest did not run: {tail[0]}")
    tests = failures = skipped = rows_lost = 0
    failed: list[str] = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        tests += 1
        problems = case.findall("failure") + case.findall("error")
        if case.find("skipped") is not None:
            skipped += 1
        if problems:
            failures += 1
            failed.append(case.get("name", "?"))
            text = " ".join((p.get("message") or "") + (p.text or "") for p in problems)
            rows_lost += "rows lost from" in text
    detail = f"{tests - failures - skipped} passed, {skipped} skipped ({' '.join(paths)})"
    if failed:
        detail += f"; failed: {', '.join(failed[:5])}"
    return ItemResult(item, tests, failures, rows_lost, detail)


def run_fake_equals_real(counts: Counts, workdir: Path, **_: Any) -> ItemResult:
    """Item 4: the hypothesis state machine, fake vs SQLite vs PostgreSQL in lockstep; a
    trial is one example (a random sequence of units of work), a failure one that differs.
    """
    report = workdir / f"hypothesis-{uuid.uuid4().hex}.json"
    env = {
        "SKILLMEAT_HYPOTHESIS_EXAMPLES": str(counts.hypothesis_examples),
        "SKILLMEAT_HYPOTHESIS_REPORT": str(report),
        "SKILLMEAT_HYPOTHESIS_NO_SHRINK": "1",  # a failure is reported as found, not minimised for minutes
    }
    test_file = "tests/integration/test_fake_equals_real.py"
    result = pytest_item("4 fake equals real (hypothesis)", [test_file], workdir, env)
    if not report.exists():
        return result
    figures = json.loads(report.read_text())
    failures = figures["failures"] if isinstance(figures["failures"], int) else len(figures["failures"])
    detail = f"{figures['examples']} examples, {figures['steps']} steps, backends fake/SQLite/PostgreSQL"
    return ItemResult(result.item, figures["examples"], max(failures, result.failures), 0, f"{detail}; {result.detail}")


def run_bad_input(counts: Counts, workdir: Path, **_: Any) -> ItemResult:
    """Item 5: every case of the bad-input catalogue (docs/errors.md)."""
    return pytest_item("5 bad-input catalogue", ["tests/e2e/test_bad_input.py"], workdir)


def run_security(counts: Counts, workdir: Path, **_: Any) -> ItemResult:
    """Item 6: bound parameters, file modes, secrets, the scanner's trust rules."""
    return pytest_item("6 security", ["tests/integration/test_security.py"], workdir)


def run_durability(counts: Counts, workdir: Path, **_: Any) -> ItemResult:
    """Item 7: the ``synchronous`` setting."""
    return pytest_item("7 durability setting", ["tests/e2e/test_durability.py"], workdir)


# --------------------------------------------------------------------------- items 8-12: the server


def _server_work(workdir: Path, name: str) -> Path:
    work = workdir / f"{name}-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    return work


def run_server_pg_outage(counts: Counts, workdir: Path, pg_url: str | None = None, **_: Any) -> ItemResult:
    """Item 8: PostgreSQL restarted (``pg_ctlcluster``, root only; every connection to the
    cluster is cut) or its sessions terminated while it refuses connections, each while 16
    clients read and a refresh writes; one server process through all the trials.
    """
    from benchmarks import server_faults as sf
    from skillmeat_cache import migrate

    name = "8 server: PostgreSQL restarted/cut off, 16 readers, a refresh writing"
    can_restart = os.geteuid() == 0 and shutil.which("pg_ctlcluster") is not None and os.path.isdir("/etc/postgresql")
    kinds = ["restart"] * (counts.pg_restarts if can_restart else 0) + ["cut"] * counts.pg_cuts
    work = _server_work(workdir, "pg-outage")
    results, failures, lost, first = [], 0, 0, ""
    try:
        with throwaway_pg_database(pg_url or DEFAULT_PG_URL, "reliability_server") as url:
            migrate(url)
            tree = sf.Tree.create(work / "projects", counts.server_projects, 10)
            with sf.serving(url, [str(tree.root)], "--no-watch", work=work) as server:
                server.job("r1")
                for kind in kinds:
                    result = sf.pg_outage_trial(server, url, tree, clients=16, restart=kind == "restart")
                    results.append((kind, result))
                    lost += result.rows_lost
                    if result.problems:
                        failures += 1
                        first = first or f"{kind}: " + "; ".join(result.problems)
    except DatabaseUnavailableError as exc:
        return ItemResult(name, 0, 0, 0, f"skipped: not reachable ({exc})", skipped=True)
    summary = "; ".join(
        f"{kind}: {r.requests} requests, {r.unavailable} x 503, p99 {r.p99_outage_ms:.0f} ms while away, "
        f"200 again after {r.recovery_s:.1f} s, refresh ran {r.attempts}x"
        for kind, r in results
    )
    note = "" if can_restart else " (no restart: not root or no pg_ctlcluster)"
    return ItemResult(name, len(results), failures, lost, (first + " | " if first else "") + summary + note)


def run_server_kills(counts: Counts, workdir: Path, **_: Any) -> ItemResult:
    """Item 9: the server SIGKILLed at random moments of its refresh (SQLite)."""
    from benchmarks import server_faults as sf

    name = f"9 server: SIGKILL during a refresh ({counts.server_projects} projects, SQLite)"
    work = _server_work(workdir, "kills")
    tree = sf.Tree.create(work / "projects", counts.server_projects, 10)
    db = work / "cache.db"
    refresh_s = sf.refresh_seconds(db, work, tree)
    rng = random.Random(13)
    failures, lost, first, new = 0, 0, "", []
    for _trial in range(counts.server_kills):
        result = sf.kill_trial(db, work, tree, refresh_s, rng)
        lost += result.rows_lost
        new.append(result.new_at_kill)
        if result.problems:
            failures += 1
            first = first or "; ".join(result.problems)
    detail = first or (
        f"unkilled refresh {refresh_s:.1f} s; projects already rewritten when killed: {min(new)}-{max(new)} of "
        f"{counts.server_projects} (median {sorted(new)[len(new) // 2]}); integrity_check, foreign_key_check, "
        "whole projects and the next refresh: all passed"
    )
    return ItemResult(name, counts.server_kills, failures, lost, detail)


def run_server_disk_full(counts: Counts, workdir: Path, **_: Any) -> ItemResult:
    """Item 10: the database's file system (a 64 MB tmpfs) fills up during a refresh."""
    from benchmarks import server_faults as sf

    name = "10 server: disk full during a refresh (tmpfs, SQLite)"
    if os.geteuid() != 0:
        return ItemResult(name, 0, 0, 0, "skipped: mounting a tmpfs needs root", skipped=True)
    failures, first, notes = 0, "", []
    for _trial in range(counts.disk_full_trials):
        work = _server_work(workdir, "full")
        tree = sf.Tree.create(work / "projects", counts.server_projects // 2, 10)
        result = sf.disk_full_trial(work, tree)
        notes.append(f"{result.reads} reads while full (p99 {result.p99_full_ms:.0f} ms), refresh ran "
                     f"{result.attempts}x")
        if result.problems:
            failures += 1
            first = first or "; ".join(result.problems)
    return ItemResult(name, counts.disk_full_trials, failures, 0, first or "; ".join(notes))


def run_server_storm(counts: Counts, workdir: Path, **_: Any) -> ItemResult:
    """Item 11: every file of every project rewritten at once under the watched root."""
    from benchmarks import server_faults as sf

    files = counts.storm_projects * counts.storm_files
    name = f"11 server: {files} files changed at once ({counts.storm_projects} projects, watched)"
    work = _server_work(workdir, "storm")
    tree = sf.Tree.create(work / "projects", counts.storm_projects, counts.storm_files, vary=False)
    r = sf.storm_trial(work, tree, work / "cache.db")
    per = ", ".join(f"{n} update(s): {k} projects" for n, k in sorted(r.updates_per_project.items()))
    detail = "; ".join(r.problems) or (
        f"{r.jobs} refresh jobs; project_updated per project: {per}; caught up in {r.seconds:.1f} s; server RSS "
        f"{r.rss_before_kib // 1024} MiB before, peak {r.rss_peak_kib // 1024}, after {r.rss_after_kib // 1024}; "
        f"a reader's p99 {r.p99_ms:.0f} ms over {r.reads} reads"
    )
    return ItemResult(name, 1, int(bool(r.problems)), 0, detail)


def run_server_soak(counts: Counts, workdir: Path, **_: Any) -> ItemResult:
    """Item 12: many clients for minutes while a project changes every second."""
    from benchmarks import server_faults as sf

    name = f"12 server: soak, {counts.soak_clients} clients x {counts.soak_seconds:.0f} s, a change every second"
    work = _server_work(workdir, "soak")
    tree = sf.Tree.create(work / "projects", 50, 10)
    r = sf.soak_trial(work, tree, work / "cache.db", clients=counts.soak_clients, seconds=counts.soak_seconds)
    rss = " -> ".join(f"{v // 1024}" for v in r.rss_kib)
    fds = " -> ".join(str(v) for v in r.fds)
    detail = (
        f"{r.requests} requests, {r.errors} errors, p99 {r.p99_ms:.0f} ms; {r.changes} changes, {r.events} "
        f"project_updated events; RSS MiB (start, after warm-up, end) {rss}; open fds {fds}"
    )
    if r.problems:
        detail = "; ".join(r.problems) + " | " + detail
    return ItemResult(name, 1, int(bool(r.problems)), 0, detail)


def run_server_heal(counts: Counts, workdir: Path, **_: Any) -> ItemResult:
    """Item 13: the default cache damaged under a running server while 16 clients read."""
    from benchmarks import server_faults as sf

    name = f"13 server: its default cache damaged while 16 clients read ({counts.server_projects // 2} projects)"
    work = _server_work(workdir, "heal")
    tree = sf.Tree.create(work / "projects", counts.server_projects // 2, 10)
    db = work / "home" / ".skillmeat" / "cache" / "cache.db"
    failures, lost, first, notes = 0, 0, "", []
    with sf.serving(None, [str(tree.root)], "--no-watch", work=work) as server:
        server.job("r1")
        for trial in range(counts.heal_trials):
            r = sf.heal_trial(server, db, tree, clients=16, seed=trial)
            lost += r.rows_lost
            notes.append(f"{r.pages} pages: {r.unavailable}/{r.requests} x 503, p99 {r.p99_ms:.0f} ms, "
                         f"all 200 again after {r.recovery_s:.1f} s")
            if r.problems:
                failures += 1
                first = first or "; ".join(r.problems)
        tracebacks = server.tracebacks()
    kept = sorted(p.name for p in db.parent.iterdir() if ".corrupt-" in p.name and p.name[-4:] not in ("-wal", "-shm"))
    if len(kept) != counts.heal_trials:
        failures, first = failures + 1, first or f"{len(kept)} damaged files kept aside, not {counts.heal_trials}"
    if tracebacks:
        failures, first = failures + 1, first or f"{tracebacks} tracebacks in the server's log"
    return ItemResult(name, counts.heal_trials, failures, lost, (first + " | " if first else "") + "; ".join(notes))


ITEMS: list[Callable[..., ItemResult]] = [
    run_concurrent_writers,
    run_crashes,
    run_migration_kills,
    run_pg_migration_kill,
    run_busy_sqlite,
    run_busy_postgres,
    run_fake_equals_real,
    run_bad_input,
    run_security,
    run_durability,
    run_server_pg_outage,
    run_server_kills,
    run_server_disk_full,
    run_server_storm,
    run_server_soak,
    run_server_heal,
]


def format_row(result: ItemResult, seconds: float | None = None) -> str:
    """One table row (and the detail line under it, if any)."""
    if result.skipped:
        row = f"| {result.item} | - | - | - |"
    else:
        row = f"| {result.item} | {result.trials} | {result.failures} | {result.rows_lost} |"
    if seconds is not None:
        row += f" {seconds:.0f} s"
    return row + (f"\n    {result.detail}" if result.detail else "")


def main(argv: list[str] | None = None) -> int:
    """Run every item, print the table; non-zero exit status when anything failed."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        return _run_child(argv[1], json.loads(argv[2]))
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced counts")
    parser.add_argument(
        "--postgres-url", default=DEFAULT_PG_URL, help=f"admin URL of a server (default {DEFAULT_PG_URL})"
    )
    parser.add_argument("--only", type=int, nargs="*", help="run only these rows (1-based positions in the list)")
    args = parser.parse_args(argv)
    counts = Counts.quick() if args.quick else Counts()
    print("| item | trials | failures | rows lost |\n|---|---|---|---|", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        for position, runner in enumerate(ITEMS, start=1):
            if args.only and position not in args.only:
                continue
            started = time.monotonic()
            result = runner(counts, Path(tmp), pg_url=args.postgres_url)
            results.append(result)
            print(format_row(result, time.monotonic() - started), flush=True)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

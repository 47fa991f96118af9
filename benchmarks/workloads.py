"""Repository workloads W1-W8: our repositories against hand-written SQL on the bare driver.

Run with ``python -m benchmarks`` (see ``--help`` and docs/performance.md). Each
backend gets two throwaway databases built by our migrations: ``ingest`` (emptied
before every W1 run) and ``main`` (filled once with the dataset; the workloads that
change it put back what they changed, untimed, before every timed section). Both sides
use the same databases, one after the other, in alternating runs: ours, raw, ours, raw...
Before every timed section: ``gc.collect()`` and a WAL checkpoint (SQLite
``PRAGMA wal_checkpoint(TRUNCATE)``, PostgreSQL ``CHECKPOINT``). Every workload is
warmed once per side before its first timed run. A run's figure is the median of its
repetitions; a workload's figure is the median of its runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .dataset import SIZES, Dataset, build
from .ours import Ours
from .raw import RawPostgres, RawSqlite, sqlite_connect

__all__ = ["TARGETS", "main", "run"]

# id: (what, target ratio ours / raw), for SQLite; PostgreSQL targets are all 2.0.
TARGETS: dict[str, tuple[str, float]] = {
    "W1": ("ingest projects x artifacts + metadata (upsert_many, set_many; one UoW per project)", 1.5),
    "W2": ("every project with artifact and outdated counts (summaries)", 2.0),
    "W3": ("the outdated artifacts as tracked entities (outdated)", 3.0),
    "W4": ("update_many of 1,000 artifacts (new upstream version)", 1.5),
    "W5": ("delete one project with its artifacts and metadata", 1.5),
    "W6": ("one project's artifacts of one type, read-only UoW", 6.0),
    "W7": ("metadata.set_many on 1,000 existing artifacts", 2.0),
    "W8": ("rescan, nothing changed (upsert_many of identical rows)", 1.5),
}
PG_TARGET = 2.0
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
_TABLES = ("artifact_tags", "artifact_metadata", "artifacts", "projects")


@dataclass
class Workload:
    """One workload: two timed callables and what to do around them (untimed)."""

    id: str
    ours: Callable[[int], Any]
    raw: Callable[[int], Any]
    reps: int = 1
    prepare: Callable[[int], None] | None = None  # before every repetition, both sides
    verify: Callable[[str, Any], None] | None = None  # after every repetition
    warm: Callable[[], tuple[Any, Any]] | None = None  # default: repetition 0 of each side
    check: Callable[[Any, Any], None] | None = None  # on the warm-up results: same answer?


@dataclass
class Result:
    """The figures of one workload on one backend (seconds)."""

    id: str
    backend: str
    target: float
    ours: float
    raw: float
    ours_runs: list[float] = field(default_factory=list)
    raw_runs: list[float] = field(default_factory=list)
    reps: int = 1

    @property
    def ratio(self) -> float:
        return self.ours / self.raw

    @property
    def passed(self) -> bool:
        return self.ratio <= self.target


# -- backends -------------------------------------------------------------------------


class _Backend:
    name = ""

    def __init__(self) -> None:
        self.ours: dict[str, Ours] = {}
        self.raw: dict[str, Any] = {}

    def q(self, sql: str) -> str:
        return sql

    def level(self) -> None:
        raise NotImplementedError

    @contextmanager
    def admin_tx(self, db: str) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def admin_fetch(self, db: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def clear(self, db: str) -> None:
        raise NotImplementedError

    def after_populate(self) -> None:
        pass

    def close(self) -> None:
        for side in (*self.ours.values(), *self.raw.values()):
            side.close()


class SqliteBackend(_Backend):
    """Two SQLite files in a temporary folder, migrated by our migrations."""

    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        from skillmeat_cache import migrate

        super().__init__()
        self.paths = {db: str(folder / f"{db}.db") for db in ("main", "ingest")}
        self.admin: dict[str, sqlite3.Connection] = {}
        for db, path in self.paths.items():
            migrate(path)
            self.ours[db] = Ours(path)
            self.raw[db] = RawSqlite(path)
            self.admin[db] = sqlite_connect(path)

    def level(self) -> None:
        gc.collect()
        for db, conn in self.admin.items():
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                raise RuntimeError(f"WAL checkpoint of {db} blocked: a connection left a transaction open")

    @contextmanager
    def admin_tx(self, db: str) -> Iterator[Any]:
        conn = self.admin[db]
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def admin_fetch(self, db: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self.admin[db].execute(sql, params).fetchall()

    def clear(self, db: str) -> None:
        conn = self.admin[db]
        conn.execute("PRAGMA foreign_keys = OFF")  # lets DELETE take its truncate shortcut
        try:
            with self.admin_tx(db):
                for table in _TABLES:
                    conn.execute(f"DELETE FROM {table}")
        finally:
            conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("VACUUM")

    def close(self) -> None:
        super().close()
        for conn in self.admin.values():
            conn.close()

    def describe(self) -> str:
        return f"SQLite {sqlite3.sqlite_version} (files in {Path(self.paths['main']).parent})"


class PostgresBackend(_Backend):
    """Two throwaway PostgreSQL databases, created here, migrated, dropped at the end."""

    name = "postgres"

    def __init__(self, admin_url: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        from skillmeat_cache import migrate

        super().__init__()
        base = make_url(admin_url).set(drivername="postgresql")
        self.server = base.render_as_string(hide_password=False)
        self.dbs: dict[str, str] = {}
        self.admin: dict[str, Any] = {}
        suffix = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(self.server, autocommit=True, connect_timeout=5) as conn:
            for db in ("main", "ingest"):
                name = f"skillmeat_bench_{db}_{suffix}"
                conn.execute(f'CREATE DATABASE "{name}"')
                self.dbs[db] = name
        try:
            for db, name in self.dbs.items():
                conninfo = base.set(database=name).render_as_string(hide_password=False)
                migrate(conninfo)
                self.ours[db] = Ours(conninfo)
                self.raw[db] = RawPostgres(conninfo)
                self.admin[db] = psycopg.connect(conninfo, autocommit=True)
                for table in _TABLES:
                    # Autovacuum waking up in the middle of a timed section is noise; the
                    # benchmark vacuums and analyzes explicitly after filling the database.
                    self.admin[db].execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        except BaseException:
            self.close()
            raise

    def q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def level(self) -> None:
        gc.collect()
        self.admin["main"].execute("CHECKPOINT")

    @contextmanager
    def admin_tx(self, db: str) -> Iterator[Any]:
        conn = self.admin[db]
        with conn.transaction():
            yield _PgAdminCursor(conn)

    def admin_fetch(self, db: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self.admin[db].execute(self.q(sql), params).fetchall()

    def clear(self, db: str) -> None:
        self.admin[db].execute(f"TRUNCATE {', '.join(_TABLES)}")

    def after_populate(self) -> None:
        self.admin["main"].execute("VACUUM ANALYZE")

    def close(self) -> None:
        import psycopg

        for side in (*self.ours.values(), *self.raw.values(), *self.admin.values()):
            side.close()
        self.ours, self.raw, self.admin = {}, {}, {}
        with psycopg.connect(self.server, autocommit=True) as conn:
            for name in self.dbs.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.dbs = {}

    def describe(self) -> str:
        version = self.admin_fetch("main", "SHOW server_version")[0][0]
        return f"PostgreSQL {version} (throwaway databases {', '.join(self.dbs.values())})"


class _PgAdminCursor:
    """Gives the admin PostgreSQL connection sqlite3's ``execute``/``executemany`` with ``?``."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), params)

    def executemany(self, sql: str, params: list[Any]) -> None:
        self.conn.cursor().executemany(sql.replace("?", "%s"), params)


# -- the workloads ----------------------------------------------------------------------


def _bump(version: str) -> str:
    return f"{int(version.split('.')[0]) + 1}.0.0"


def _spread(items: list[Any], count: int, offset: int = 0) -> list[Any]:
    """``count`` items spread evenly over ``items``."""
    count = min(count, len(items))
    return [items[(i * len(items)) // count + offset % max(len(items) // count, 1)] for i in range(count)]


class Suite:
    """The dataset, a backend and the eight workloads on it."""

    def __init__(self, backend: _Backend, data: Dataset) -> None:
        self.b = backend
        self.data = data
        self.deleted: set[str] = set()

    # -- setup (untimed) -------------------------------------------------------------

    def populate(self) -> None:
        raw = self.b.raw["main"]
        for project, rows, metas in zip(self.data.projects, self.data.artifacts, self.data.metadata, strict=True):
            raw.ingest_project(project, rows, metas)
        self.b.after_populate()
        keys = self.b.admin_fetch(
            "main", "SELECT id, project_id, type, name, deployed_version FROM artifacts ORDER BY project_id, type, name"
        )
        self.keys = keys
        index = {}
        for p, (project, metas) in enumerate(zip(self.data.projects, self.data.metadata, strict=True)):
            for i, row in enumerate(self.data.artifacts[p]):
                index[(project["id"], row["type"], row["name"])] = metas[i]
        # W4: 1,000 artifacts get a newer upstream version (so all become outdated).
        picked = _spread(keys, 1000)
        self.w4_changes = [{"id": k[0], "upstream_version": _bump(k[4])} for k in picked]
        # W7: 1,000 other artifacts get new frontmatter: version, description, one tag changed.
        self.w7_rows = []
        for k in _spread(keys, 1000, offset=1):
            old = index[(k[1], k[2], k[3])]
            data = {**old["data"], "version": "9.9.9", "description": old["description"] + " Updated."}
            self.w7_rows.append(
                {
                    "artifact_id": k[0],
                    "data": data,
                    "description": data["description"],
                    "tags": [*old["tags"][:2], "changed"],
                    "aliases": list(old["aliases"]),
                }
            )
        projects = [p["id"] for p in self.data.projects]
        self.w5_projects = _spread(projects, 10, offset=3)
        self.w6_projects = _spread(projects, 50, offset=5)
        self._snapshot()

    def _snapshot(self) -> None:
        """Temporary copies (on the admin connection) of what W4, W5 and W7 change."""
        with self.b.admin_tx("main") as c:
            for name, source in (
                ("bak_w4", "artifacts"),
                ("bak_w7m", "artifact_metadata"),
                ("bak_w7t", "artifact_tags"),
                ("bak_w5p", "projects"),
                ("bak_w5a", "artifacts"),
                ("bak_w5m", "artifact_metadata"),
                ("bak_w5t", "artifact_tags"),
            ):
                c.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {source} WHERE 1 = 0")
            for name in ("sel_w4", "sel_w7", "sel_w5"):
                c.execute(f"CREATE TEMP TABLE {name} (id TEXT PRIMARY KEY)")
            c.executemany("INSERT INTO sel_w4 (id) VALUES (?)", [(x["id"],) for x in self.w4_changes])
            c.executemany("INSERT INTO sel_w7 (id) VALUES (?)", [(x["artifact_id"],) for x in self.w7_rows])
            c.executemany("INSERT INTO sel_w5 (id) VALUES (?)", [(x,) for x in self.w5_projects])
            c.execute("INSERT INTO bak_w4 SELECT a.* FROM artifacts a JOIN sel_w4 s ON s.id = a.id")
            c.execute("INSERT INTO bak_w7m SELECT m.* FROM artifact_metadata m JOIN sel_w7 s ON s.id = m.artifact_id")
            c.execute("INSERT INTO bak_w7t SELECT t.* FROM artifact_tags t JOIN sel_w7 s ON s.id = t.artifact_id")
            c.execute("INSERT INTO bak_w5p SELECT p.* FROM projects p JOIN sel_w5 s ON s.id = p.id")
            c.execute("INSERT INTO bak_w5a SELECT a.* FROM artifacts a JOIN sel_w5 s ON s.id = a.project_id")
            c.execute("INSERT INTO bak_w5m SELECT m.* FROM artifact_metadata m JOIN bak_w5a a ON a.id = m.artifact_id")
            c.execute("INSERT INTO bak_w5t SELECT t.* FROM artifact_tags t JOIN bak_w5a a ON a.id = t.artifact_id")

    def _restore_w4(self, _rep: int = 0) -> None:
        with self.b.admin_tx("main") as c:
            c.execute(
                "UPDATE artifacts SET upstream_version = b.upstream_version, is_outdated = b.is_outdated, "
                "updated_at = b.updated_at FROM bak_w4 b WHERE artifacts.id = b.id"
            )

    def _restore_w7(self, _rep: int = 0) -> None:
        with self.b.admin_tx("main") as c:
            c.execute(
                "UPDATE artifact_metadata SET metadata = b.metadata, description = b.description, tags = b.tags, "
                "aliases = b.aliases FROM bak_w7m b WHERE artifact_metadata.artifact_id = b.artifact_id"
            )
            c.execute("DELETE FROM artifact_tags WHERE artifact_id IN (SELECT id FROM sel_w7)")
            c.execute("INSERT INTO artifact_tags SELECT * FROM bak_w7t")

    def _restore_w5(self, _rep: int = 0) -> None:
        if not self.deleted:
            return
        with self.b.admin_tx("main") as c:
            for pid in sorted(self.deleted):
                c.execute("INSERT INTO projects SELECT * FROM bak_w5p WHERE id = ?", (pid,))
                c.execute("INSERT INTO artifacts SELECT * FROM bak_w5a WHERE project_id = ?", (pid,))
                c.execute(
                    "INSERT INTO artifact_metadata SELECT m.* FROM bak_w5m m JOIN bak_w5a a ON a.id = m.artifact_id "
                    "WHERE a.project_id = ?",
                    (pid,),
                )
                c.execute(
                    "INSERT INTO artifact_tags SELECT t.* FROM bak_w5t t JOIN bak_w5a a ON a.id = t.artifact_id "
                    "WHERE a.project_id = ?",
                    (pid,),
                )
        self.deleted.clear()

    def _count(self, db: str, table: str) -> int:
        return int(self.b.admin_fetch(db, f"SELECT count(*) FROM {table}")[0][0])

    # -- the workloads ---------------------------------------------------------------

    def workloads(self) -> dict[str, Workload]:
        b, data = self.b, self.data
        o, r = b.ours["main"], b.raw["main"]
        oi, ri = b.ours["ingest"], b.raw["ingest"]
        triples = list(zip(data.projects, data.artifacts, data.metadata, strict=True))
        n_tags = sum(len(m["tags"]) for metas in data.metadata for m in metas)

        def ingest(side: Any) -> Callable[[int], None]:
            def go(_rep: int) -> None:
                for project, rows, metas in triples:
                    side.ingest_project(project, rows, metas)

            return go

        def verify_ingest(_side: str, _result: Any) -> None:
            got = (self._count("ingest", "artifacts"), self._count("ingest", "artifact_metadata"))
            tags = self._count("ingest", "artifact_tags")
            if got != (data.artifact_count, data.artifact_count) or tags != n_tags:
                raise AssertionError(f"W1 wrote {got} artifacts/metadata and {tags} tags")

        def warm_ingest() -> tuple[Any, Any]:
            for side in (oi, ri):
                b.clear("ingest")
                side.ingest_project(*triples[0])
            b.clear("ingest")
            return None, None

        def check_summaries(ours: Any, raw: Any) -> None:
            got = [(s.project.id, s.artifact_count, s.outdated_count) for s in ours]
            want = [(row[0], row[-2], row[-1]) for row in raw]
            if got != want:
                raise AssertionError("W2: ours and raw disagree")
            if sum(x[2] for x in got) != data.outdated:
                raise AssertionError(f"W2: {sum(x[2] for x in got)} outdated, expected {data.outdated}")

        def check_ids(ours: Any, raw: Any) -> None:
            if [a.id for a in ours] != [row[0] for row in raw]:
                raise AssertionError("ours and raw return different artifacts or orders")

        def check_equal(ours: Any, raw: Any) -> None:
            if ours != raw:
                raise AssertionError(f"ours returned {ours!r}, raw {raw!r}")

        def delete(side: Any) -> Callable[[int], None]:
            def go(rep: int) -> None:
                pid = self.w5_projects[rep % len(self.w5_projects)]
                self.deleted.add(pid)
                side.delete_project(pid)

            return go

        def verify_delete(_side: str, _result: Any) -> None:
            if self._count("main", "projects") != len(data.projects) - 1:
                raise AssertionError("W5 did not delete exactly one project")

        def listing(side: Any) -> Callable[[int], Any]:
            def go(rep: int) -> Any:
                return side.list_for_project(self.w6_projects[rep % len(self.w6_projects)], "skill")

            return go

        def rescan(side: Any) -> Callable[[int], int]:
            def go(_rep: int) -> int:
                total = 0
                for rows in data.artifacts:
                    total += side.rescan_project(rows) or 0
                return total

            return go

        def warm_rescan() -> tuple[Any, Any]:
            return o.rescan_project(data.artifacts[0]), r.rescan_project(data.artifacts[0])

        def verify_nothing(side: str, result: Any) -> None:
            if side == "ours" and result != 0:
                raise AssertionError(f"W8 changed {result} rows")

        return {
            "W1": Workload(
                "W1",
                ingest(oi),
                ingest(ri),
                prepare=lambda _rep: b.clear("ingest"),
                verify=verify_ingest,
                warm=warm_ingest,
            ),
            "W2": Workload("W2", lambda _: o.summaries(), lambda _: r.summaries(), reps=5, check=check_summaries),
            "W3": Workload("W3", lambda _: o.outdated(), lambda _: r.outdated(), reps=5, check=check_ids),
            "W4": Workload(
                "W4",
                lambda _: o.update_upstream(self.w4_changes),
                lambda _: r.update_upstream(self.w4_changes),
                reps=10,
                prepare=self._restore_w4,
                check=check_equal,
            ),
            "W5": Workload("W5", delete(o), delete(r), reps=10, prepare=self._restore_w5, verify=verify_delete),
            "W6": Workload("W6", listing(o), listing(r), reps=50, check=check_ids),
            "W7": Workload(
                "W7",
                lambda _: o.set_metadata(self.w7_rows),
                lambda _: r.set_metadata(self.w7_rows),
                reps=10,
                prepare=self._restore_w7,
                check=check_equal,
            ),
            "W8": Workload("W8", rescan(o), rescan(r), verify=verify_nothing, warm=warm_rescan),
        }

    def finish(self, workload: Workload) -> None:
        """Put back what a workload changed."""
        if workload.id == "W4":
            self._restore_w4()
        elif workload.id == "W5":
            self._restore_w5()
        elif workload.id == "W7":
            self._restore_w7()


# -- the harness ----------------------------------------------------------------------


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.001:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def measure(suite: Suite, w: Workload, runs: int, target: float, profile: Path | None = None) -> Result:
    """Warm both sides, then ``runs`` alternating runs (ours, raw, ...), each the median
    of ``w.reps`` timed repetitions.
    """
    b = suite.b
    if w.warm is not None:
        warm_ours, warm_raw = w.warm()
    else:
        results = []
        for fn in (w.ours, w.raw):
            if w.prepare is not None:
                w.prepare(0)
            results.append(fn(0))
        warm_ours, warm_raw = results
        del results
    if w.check is not None:
        w.check(warm_ours, warm_raw)
    # Results are dropped as soon as they are checked: a previous result kept alive while
    # the next one is built would be garbage-collector work charged to the next run.
    del warm_ours, warm_raw
    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
    times: dict[str, list[float]] = {"ours": [], "raw": []}
    for _run in range(runs):
        for side, fn in (("ours", w.ours), ("raw", w.raw)):
            samples = []
            for rep in range(w.reps):
                if w.prepare is not None:
                    w.prepare(rep)
                b.level()
                if profiler is not None and side == "ours":
                    profiler.enable()
                start = time.perf_counter()
                result = fn(rep)
                elapsed = time.perf_counter() - start
                if profiler is not None and side == "ours":
                    profiler.disable()
                samples.append(elapsed)
                if w.verify is not None:
                    w.verify(side, result)
                del result
            times[side].append(statistics.median(samples))
    suite.finish(w)
    if profiler is not None and profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(profile / f"{b.name}-{w.id}.prof")
    return Result(
        w.id,
        b.name,
        target,
        statistics.median(times["ours"]),
        statistics.median(times["raw"]),
        times["ours"],
        times["raw"],
        w.reps,
    )


def _machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sqlalchemy

    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "platform": platform.platform(),
    }


def table(results: list[Result]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| backend | id | workload | ours | raw | ratio | target | pass |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.backend} | {r.id} | {TARGETS[r.id][0]} | {_fmt(r.ours)} | {_fmt(r.raw)} | {r.ratio:.2f} | "
            f"≤ {r.target:g} | {'PASS' if r.passed else 'FAIL'} |"
        )
    return "\n".join(lines)


def run(
    backend_name: str,
    size: str,
    runs: int,
    only: list[str],
    data: Dataset,
    pg_url: str,
    profile: Path | None = None,
    out: Callable[[str], None] = print,
) -> list[Result]:
    """Build a backend, fill it and measure the chosen workloads on it."""
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="skillmeat-bench-") as folder:
        started = time.perf_counter()
        backend: _Backend = SqliteBackend(Path(folder)) if backend_name == "sqlite" else PostgresBackend(pg_url)
        try:
            out(f"\n== {backend.describe()}")  # type: ignore[attr-defined]
            suite = Suite(backend, data)
            suite.populate()
            out(f"   filled in {time.perf_counter() - started:.1f} s")
            workloads = suite.workloads()
            # What setting up built (engines, migration scripts, snapshots) stays alive but is
            # no part of either side's work: keep it out of the collections in timed sections,
            # as the dataset is (a real process holds neither).
            gc.collect()
            gc.freeze()
            for wid in only:
                target = TARGETS[wid][1] if backend_name == "sqlite" else PG_TARGET
                w = workloads[wid]
                t0 = time.perf_counter()
                result = measure(suite, w, runs, target, profile)
                results.append(result)
                out(
                    f"{wid:<3} ours {_fmt(result.ours):>9}  raw {_fmt(result.raw):>9}  ratio {result.ratio:5.2f}  "
                    f"(≤ {target:g}: {'PASS' if result.passed else 'FAIL'})  "
                    f"runs ours [{', '.join(_fmt(x) for x in result.ours_runs)}] "
                    f"raw [{', '.join(_fmt(x) for x in result.raw_runs)}]  {time.perf_counter() - t0:.0f} s"
                )
        finally:
            backend.close()
    return results


def main(argv: list[str] | None = None) -> int:
    """The command line: ``python -m benchmarks [--size small|full] [--runs N] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Repository workloads W1-W8: ours vs raw sqlite3 / psycopg on the same schema.",
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="full", help="full: 1,000 x 100; small: 100 x 10")
    parser.add_argument("--runs", type=int, default=5, help="alternating runs per side (default 5)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--only", default=",".join(TARGETS), help="comma-separated workload ids, e.g. W1,W4")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("SKILLMEAT_BENCH_PG_URL", DEFAULT_PG_URL),
        help="a PostgreSQL server URL whose user may create databases (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--profile", type=Path, help="cProfile our side of each workload into this folder")
    args = parser.parse_args(argv)
    only = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in only if w not in TARGETS]
    if unknown:
        parser.error(f"unknown workload {unknown[0]}; choose from {', '.join(TARGETS)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]

    started = time.perf_counter()
    machine = _machine()
    n_projects, per_project = SIZES[args.size]
    print(f"python -m benchmarks {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip())
    print(
        f"machine: {machine['cpus']} x {machine['cpu']}; Python {machine['python']}; SQLite {machine['sqlite']}; "
        f"SQLAlchemy {machine['sqlalchemy']}"
    )
    data = build(args.size, seed=args.seed)
    gc.collect()
    gc.freeze()  # the dataset is never garbage: keep it out of every collection
    print(
        f"dataset: {n_projects} projects x {per_project} artifacts, {data.outdated} outdated, "
        f"metadata JSON ~{data.meta_bytes} bytes; {args.runs} alternating runs per workload"
    )
    results: list[Result] = []
    for name in backends:
        results.extend(run(name, args.size, args.runs, only, data, args.pg_url, args.profile))
    print()
    print(table(results))
    failed = [f"{r.backend} {r.id}" for r in results if not r.passed]
    print(f"\n{len(results) - len(failed)}/{len(results)} PASS" + (f"; FAIL: {', '.join(failed)}" if failed else ""))
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        payload = {
            "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
            "size": args.size,
            "runs": args.runs,
            "machine": machine,
            "results": [{**asdict(r), "ratio": r.ratio, "passed": r.passed} for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if not failed else 1

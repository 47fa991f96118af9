"""The parallel scan (issue 14): readers in worker processes, one writer.

A scan with ``jobs=4`` must leave exactly the cache (row by row) and the summary that a
scan with ``jobs=1`` leaves, on a tree with warnings, an error and nested projects, on
both engines; readers never run more than ``jobs * AHEAD_PER_JOB`` projects ahead of the
writer; a reader process that dies leaves its projects to the calling thread.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import TABLES, factory_for, write_file
from sqlalchemy import text

import skillmeat_cache.readers as readers
from benchmarks.corpus import generate
from skillmeat_cache.container import Container
from skillmeat_cache.readers import (
    AHEAD_PER_JOB,
    CHECK_AHEAD_PER_JOB,
    CHECKS_FROM,
    LOOK_AHEAD,
    PARALLEL_FROM,
    Task,
    read_in_order,
    read_one,
)
from skillmeat_cache.services import scan

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _tree(root: Path) -> Path:
    """20 corpus projects, plus: a project nested in another, warnings of several kinds, and
    a project whose data cannot be stored (a deployed name over the 255-byte name limit)."""
    generate(root / "corpus", 20, 6, seed=3)
    outer = root / "outer"
    write_file(outer / ".claude" / "skills" / "broken" / "SKILL.md", "---\ndescription: a: b: c\nname: x\n---\n")
    write_file(outer / ".claude" / "skills" / "empty-folder" / "notes.txt", "no manifest")
    write_file(outer / ".claude" / "agents" / "ok.md", "---\ndescription: fine\ntags: py, csv\n---\n")
    write_file(outer / "nested" / "inner" / ".claude" / "commands" / "go.md", "---\nversion: 1.10\n---\n")
    write_file(
        outer / ".claude" / ".skillmeat-deployed.toml",
        '[[deployed]]\nartifact_name = "gone"\nartifact_type = "agent"\nartifact_path = "agents/gone.md"\n',
    )
    bad = root / "zz-bad"
    write_file(bad / ".claude" / "agents" / "a.md", "---\ndescription: refused\n---\n")
    write_file(
        bad / ".claude" / ".skillmeat-deployed.toml",
        f'[[deployed]]\nartifact_name = "{"n" * 300}"\nartifact_type = "agent"\nartifact_path = "agents/a.md"\n',
    )
    return root


def _snapshot(uow_factory: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the cache by natural keys, without ids and write timestamps."""
    queries = {
        "projects": "SELECT path, name, description, status, error_message, fingerprint, warnings, last_fetched "
        "FROM projects",
        "artifacts": "SELECT p.path, a.type, a.path, a.name, a.source, a.deployed_version, a.upstream_version, "
        "a.is_outdated, a.local_modified, a.content_hash FROM artifacts a JOIN projects p ON p.id = a.project_id",
        "metadata": "SELECT p.path, a.type, a.path, a.name, m.metadata, m.description, m.tags, m.aliases "
        "FROM artifact_metadata m JOIN artifacts a ON a.id = m.artifact_id JOIN projects p ON p.id = a.project_id",
        "tags": "SELECT p.path, a.type, a.path, a.name, t.tag FROM artifact_tags t "
        "JOIN artifacts a ON a.id = t.artifact_id JOIN projects p ON p.id = a.project_id",
        "search": "SELECT project_path, type, path, name, name_l, description_l, tags_l FROM artifact_search",
    }
    out = {}
    with uow_factory(read_only=True) as uow:
        for name, sql in queries.items():
            rows = [
                tuple(json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for v in row)
                for row in uow.session.execute(text(sql))
            ]
            out[name] = sorted(rows, key=repr)
    return out


def _empty(uow_factory: Any) -> None:
    with uow_factory() as uow:
        for table in TABLES:
            uow.session.execute(text(f"DELETE FROM {table}"))


def test_four_jobs_leave_the_cache_one_job_leaves(db_url, tmp_path, monkeypatch):
    root = _tree(tmp_path / "tree")
    engine, uow = factory_for(db_url)
    started = []
    real_start = readers._start_worker
    monkeypatch.setattr(readers, "_start_worker", lambda: started.append(1) or real_start())
    results = {}
    for jobs in (1, 4):
        _empty(uow)
        summary = scan(uow, [root], jobs=jobs, now=NOW)
        results[jobs] = (summary.to_dict() | {"seconds": None}, _snapshot(uow))
    engine.dispose()
    assert len(started) == 4  # the jobs=4 scan really read in four worker processes
    (summary_1, rows_1), (summary_4, rows_4) = results[1], results[4]
    assert summary_4 == summary_1  # warnings too, in the same order
    for table, rows in rows_1.items():
        assert rows_4[table] == rows, table
    assert (summary_1["projects_added"], summary_1["projects_error"]) == (22, 1)
    assert summary_1["artifacts_added"] == 20 * 6 + 3
    paths = {row[0]: row for row in rows_1["projects"]}
    bad = paths[str((root / "zz-bad").resolve())]
    assert bad[3] == "error" and bad[4].startswith("cannot store project:")
    assert not [row for row in rows_1["artifacts"] if row[0] == bad[0]]  # nothing of it was kept
    assert str((root / "outer" / "nested" / "inner").resolve()) in paths
    messages = [w["message"] for w in summary_1["warnings"]]
    assert any("recovered from the top-level lines" in m for m in messages)
    assert any(m.startswith("deployed artifact missing on disk") for m in messages)
    assert any(m.startswith("not a skill") for m in messages)


def test_rescan_with_four_jobs_finds_everything_unchanged(sqlite_url, tmp_path):
    root = _tree(tmp_path / "tree")
    engine, uow = factory_for(sqlite_url)
    first = scan(uow, [root], jobs=4)
    again = scan(uow, [root], jobs=4)
    engine.dispose()
    assert again.projects_unchanged == first.projects_added == 22 and again.projects_error == 1
    assert [(w.path, w.message) for w in again.warnings] == [(w.path, w.message) for w in first.warnings]


def _projects(root: Path, count: int) -> list[Path]:
    paths = []
    for index in range(count):
        project = root / f"p{index:03d}"
        write_file(project / ".claude" / "agents" / "a.md", f"---\ndescription: agent {index}\n---\n")
        paths.append(project)
    return paths


@pytest.mark.parametrize("checks", [0, CHECKS_FROM])
def test_readers_run_a_bounded_distance_ahead_of_the_writer(tmp_path, checks):
    """jobs × AHEAD_PER_JOB projects ahead; jobs × CHECK_AHEAD_PER_JOB in a rescan of a
    large cache (most answers "unchanged"), which the workers fill."""
    paths = _projects(tmp_path, 3 * CHECK_AHEAD_PER_JOB)
    prints = {p: read_one(str(p), None).disk.fingerprint for p in paths} if checks else {}
    pulled = []

    def tasks():
        for path in paths:
            pulled.append(path)
            yield Task(str(path), prints.get(path), path)

    jobs, taken, furthest = 2, 0, 0
    bound = jobs * CHECK_AHEAD_PER_JOB if checks else max(jobs * AHEAD_PER_JOB, PARALLEL_FROM)
    for task, outcome in read_in_order(tasks(), jobs, checks=checks):
        taken += 1
        assert outcome.kind == ("unchanged" if checks else "read")
        assert checks or outcome.disk.path == task.context.resolve()
        furthest = max(furthest, len(pulled) - taken)
        assert len(pulled) - taken <= bound
    assert taken == len(paths)
    assert furthest >= bound - 1  # the window is used


def test_a_reader_process_that_dies_leaves_its_projects_to_the_caller(tmp_path, monkeypatch):
    paths = _projects(tmp_path, PARALLEL_FROM + 4)
    real_start = readers._start_worker
    started = []

    def start_one_dead() -> readers._Worker:
        worker = real_start()
        if not started:  # the first worker dies before reading anything
            worker.process.kill()
        started.append(worker)
        return worker

    monkeypatch.setattr(readers, "_start_worker", start_one_dead)
    got = [(task.path, outcome) for task, outcome in read_in_order((Task(str(p), None, None) for p in paths), 2)]
    assert [path for path, _ in got] == [str(p) for p in paths]
    assert [outcome for _, outcome in got] == [read_one(str(p), None) for p in paths]
    assert len(started) == 2


@pytest.mark.parametrize("count", [1, PARALLEL_FROM - 1])
def test_a_few_projects_are_read_in_the_calling_thread(tmp_path, monkeypatch, count):
    paths = _projects(tmp_path, count)
    monkeypatch.setattr(readers, "_start_worker", lambda: pytest.fail("no worker for a few projects"))
    got = list(read_in_order((Task(str(p), None, None) for p in paths), 8))
    assert [outcome.kind for _, outcome in got] == ["read"] * count


def test_unchanged_fingerprint_reads_nothing(tmp_path):
    (project,) = _projects(tmp_path, 1)
    first = read_one(str(project), None)
    assert first.kind == "read"
    assert read_one(str(project), first.disk.fingerprint).kind == "unchanged"
    assert read_one(str(tmp_path / "missing"), None).kind == "gone"


def test_projects_with_a_fingerprint_to_check_are_read_in_the_calling_thread(tmp_path, monkeypatch):
    """An unchanged rescan of a small cache costs a stat walk per project: starting workers
    would cost more."""
    paths = _projects(tmp_path, 3 * LOOK_AHEAD)
    prints = {str(p): read_one(str(p), None).disk.fingerprint for p in paths}
    monkeypatch.setattr(readers, "_start_worker", lambda: pytest.fail("no worker for fingerprint checks"))
    tasks = [Task(str(p), prints[str(p)], None) for p in paths]
    got = list(read_in_order(iter(tasks), 4, checks=CHECKS_FROM - 1))
    assert [outcome.kind for _, outcome in got] == ["unchanged"] * len(paths)


def test_a_rescan_of_a_large_cache_checks_fingerprints_in_the_workers(tmp_path, monkeypatch):
    """From CHECKS_FROM expected checks on, the stat walks outweigh starting the workers:
    they start with the first task, and a changed project among the unchanged is read there."""
    paths = _projects(tmp_path, 40)
    prints = {str(p): read_one(str(p), None).disk.fingerprint for p in paths}
    write_file(paths[7] / ".claude" / "agents" / "new.md", "---\ndescription: new\n---\n")
    real_start = readers._start_worker
    started = []
    monkeypatch.setattr(readers, "_start_worker", lambda: started.append(real_start()) or started[-1])
    here: list[str] = []

    def reader(path: str, fingerprint: str | None) -> readers.Outcome:
        here.append(path)
        return read_one(path, fingerprint)

    tasks = (Task(str(p), prints[str(p)], i) for i, p in enumerate(paths))
    got = list(read_in_order(tasks, 2, reader=reader, checks=CHECKS_FROM))
    assert len(started) == 2 and here == []  # every project walked by a worker
    assert [task.context for task, _ in got] == list(range(len(paths)))
    assert [o.kind for _, o in got] == ["read" if i == 7 else "unchanged" for i in range(len(paths))]
    assert sorted(a.name for a in got[7][1].disk.artifacts) == ["a", "new"]


def test_a_writer_that_stops_early_stops_the_reader_processes(tmp_path, monkeypatch):
    paths = _projects(tmp_path, 40)
    real_start = readers._start_worker
    started = []
    monkeypatch.setattr(readers, "_start_worker", lambda: started.append(real_start()) or started[-1])
    outcomes = read_in_order((Task(str(p), None, None) for p in paths), 2)
    for _ in range(PARALLEL_FROM + 1):
        next(outcomes)
    assert len(started) == 2 and all(w.process.poll() is None for w in started)
    outcomes.close()  # what scan() does when its writer raises
    assert all(w.process.poll() is not None for w in started)


def test_no_processes_to_be_had_reads_in_the_calling_thread(tmp_path, monkeypatch):
    paths = _projects(tmp_path, PARALLEL_FROM + 2)

    def refuse() -> readers._Worker:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(readers, "_start_worker", refuse)
    got = list(read_in_order((Task(str(p), None, None) for p in paths), 2))
    assert [outcome.kind for _, outcome in got] == ["read"] * len(paths)


def test_a_project_refused_inside_a_batch_leaves_every_other_project_whole(sqlite_url, tmp_path, monkeypatch):
    """The batch's one unit of work is rolled back and each project is written alone: the
    refused one becomes an error with nothing of it kept, the others are complete."""
    import secrets
    import sqlite3

    from sqlalchemy import event

    import skillmeat_cache.services as services

    tree = tmp_path / "tree"
    for name in ("a", "b", "c-huge", "d", "e"):
        for skill in ("one", "two", "three"):
            about = secrets.token_hex(3000) if (name, skill) == ("c-huge", "two") else skill
            write_file(tree / name / ".claude" / "skills" / skill / "SKILL.md", f"---\ndescription: {about}\n---\n")
    engine, uow = factory_for(sqlite_url)

    @event.listens_for(engine, "connect")
    def _limit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 5000)

    batches: list[tuple[int, str]] = []
    real_batch = services.sync_batch

    def recording(u, batch, now):
        try:
            return real_batch(u, batch, now)
        except Exception as exc:
            batches.append((len(batch), type(exc).__name__))
            raise

    monkeypatch.setattr(services, "sync_batch", recording)
    summary = scan(uow, [tree], jobs=1)
    assert batches == [(5, "ValueTooLargeError")]  # one batch of five, refused whole
    assert (summary.projects_added, summary.projects_error, summary.artifacts_added) == (4, 1, 12)
    with uow(read_only=True) as u:
        for project in u.projects.list():
            count = len(u.artifacts.list_for_project(project.id))
            assert (project.status, count) == (("error", 0) if project.name == "c-huge" else ("active", 3))
        assert u.session.execute(text("SELECT count(*) FROM artifact_metadata")).scalar_one() == 12
    engine.dispose()


@pytest.mark.parametrize(("checks_from", "workers"), [(10, 2), (11, 0)])
def test_a_rescan_starts_workers_for_as_many_cached_projects_as_it_checks(tmp_path, monkeypatch, checks_from, workers):
    """scan() tells the readers how many cached projects it will check against their
    fingerprints: 10 here."""
    paths = _projects(tmp_path / "tree", 10)
    container = Container()
    container.config.from_dict({"database_url": str(tmp_path / "cache.db"), "auto_migrate": True})
    try:
        assert scan(container.unit_of_work, [tmp_path / "tree"], jobs=1, now=NOW).projects_added == len(paths)
        real_start = readers._start_worker
        started = []
        monkeypatch.setattr(readers, "_start_worker", lambda: started.append(real_start()) or started[-1])
        monkeypatch.setattr(readers, "CHECKS_FROM", checks_from)
        summary = scan(container.unit_of_work, [tmp_path / "tree"], jobs=2, now=NOW)
        assert summary.projects_unchanged == len(paths)
        assert len(started) == workers
        started.clear()
        summary = scan(container.unit_of_work, [tmp_path / "tree"], jobs=2, now=NOW, full=True)
        assert (summary.projects_updated + summary.projects_unchanged, started) == (len(paths), [])  # full: no checks
    finally:
        container.shutdown_resources()


def test_a_workers_end_is_seen_when_it_happens_and_a_stuck_one_times_out():
    quick = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    started = time.perf_counter()
    assert readers._exited_within(quick, 5)
    assert quick.returncode == 0 and time.perf_counter() - started < 2
    assert readers._exited_within(quick, 5)  # already reaped: still ended
    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    started = time.perf_counter()
    try:
        assert not readers._exited_within(stuck, 0.3)
        assert 0.3 <= time.perf_counter() - started < 2 and stuck.poll() is None
    finally:
        stuck.kill()
        stuck.wait()

"""The reliability trials of ``benchmarks/reliability.py`` (issue 5, items 1-3) with
reduced counts; ``python -m benchmarks.reliability`` runs the full ones. Also the
trials' own checks, on files doctored to fail them.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from benchmarks import reliability
from benchmarks.reliability import (
    Counts,
    ItemResult,
    batch_counts,
    concurrent_writers_trial,
    crash_problems,
    crash_trial,
    migration_kill_trial,
    pg_deadlock_scenario,
    pg_lock_timeout_scenario,
    pg_serialization_scenario,
    schema_problems,
    sqlite_busy_scenario,
)
from skillmeat_cache import HEAD_REVISION, migrate

BATCH = 20


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reliability") / "template.db"
    migrate(str(path))
    return path


# --------------------------------------------------------------------------- 1. concurrent writers


@pytest.mark.slow
def test_concurrent_writers_on_a_new_file_lose_nothing_and_readers_never_see_half_a_unit_of_work(tmp_path):
    counts = Counts(writers=8, readers=2, rows_per_writer=10 * BATCH, batch=BATCH)
    for _trial in range(2):
        problems, lost, reads, longest = concurrent_writers_trial(tmp_path, counts)
        assert problems == []
        assert lost == 0
        assert reads > 0
        assert 0 < longest < 10  # no unit of work came near the busy timeout


# --------------------------------------------------------------------------- 2. crashes


@pytest.mark.slow
@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
def test_writer_killed_at_random_moments_keeps_every_committed_batch(tmp_path, template, synchronous):
    logged = []
    for _trial in range(2):
        problems, lost, batches, _pending = crash_trial(
            tmp_path, template, synchronous=synchronous, batch=BATCH, max_delay=0.4
        )
        assert problems == []
        assert lost == 0
        logged.append(batches)
    assert sum(logged) > 0  # the writer did commit before it was killed


def _write_batches(db: Path, sizes: dict[int, int]) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "INSERT INTO projects (id, name, path, created_at, updated_at, status)"
            " VALUES ('p', 'p', '/p', '2026-01-01', '2026-01-01', 'active')"
        )
        for number, size in sizes.items():
            conn.executemany(
                "INSERT INTO artifacts (id, project_id, name, type, path, source, is_outdated, local_modified,"
                " created_at, updated_at) VALUES (?, 'p', ?, 'skill', ?, ?, 0, 0, '2026-01-01', '2026-01-01')",
                [(f"b{number}-{i}", f"b{number}-{i}", f"s/b{number}-{i}", f"b{number}") for i in range(size)],
            )
    conn.close()


def test_crash_check_passes_a_committed_but_unlogged_last_batch(tmp_path, template):
    db, log = tmp_path / "ok.db", tmp_path / "ok.log"
    shutil.copyfile(template, db)
    _write_batches(db, {0: BATCH, 1: BATCH, 2: BATCH})
    log.write_text("0\n1\n")
    assert crash_problems(db, log, BATCH) == ([], 0, 2, True)


def test_crash_check_flags_lost_partial_and_unlogged_batches(tmp_path, template):
    db, log = tmp_path / "bad.db", tmp_path / "bad.log"
    shutil.copyfile(template, db)
    _write_batches(db, {0: BATCH, 1: BATCH - 1, 4: BATCH})
    log.write_text("0\n1\n2\n")
    problems, lost, logged, _pending = crash_problems(db, log, BATCH)
    assert lost == 1 + BATCH  # one row of batch 1, all of batch 2
    assert logged == 3
    assert any("partial batches {1: 19}" in p for p in problems)
    assert any("never logged: [4]" in p for p in problems)
    assert batch_counts(db) == {"b0": BATCH, "b1": BATCH - 1, "b4": BATCH}


@pytest.mark.slow
@pytest.mark.parametrize(("start", "fraction"), [(None, 0.3), (None, 0.7), ("0001", 0.5)])
def test_kill_during_migration_leaves_the_old_or_new_revision_and_migrates_cleanly(tmp_path, start, fraction):
    db = tmp_path / "mkill.db"
    if start:
        migrate(str(db), start)
        reliability._seed("sqlite:///" + str(db))
    # From an empty file the slowed migration takes about 0.7 s, from 0001 about 0.3 s.
    delay = fraction * (0.6 if start is None else 0.25)
    problems, outcome = migration_kill_trial(tmp_path, "sqlite:///" + str(db), start, delay, 0.02)
    assert problems == []
    assert outcome in ("old", "new", "after")
    assert schema_problems("sqlite:///" + str(db)) == (HEAD_REVISION, [])


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_during_migration_on_postgres(tmp_path, fresh_pg_url):
    problems, outcome = migration_kill_trial(tmp_path, fresh_pg_url, None, 0.3, 0.01)
    assert problems == []
    assert outcome in ("old", "new", "after")


def test_schema_check_flags_a_revision_that_does_not_match_the_tables(tmp_path):
    db = tmp_path / "mixed.db"
    migrate(str(db), "0002")
    url = "sqlite:///" + str(db)
    assert schema_problems(url) == ("0002", [])
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    revision, problems = schema_problems(url)
    assert revision == "0001"
    assert problems == ["revision 0001 but projects.fingerprint present=True"]
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = '0003'")
    assert schema_problems(url)[1] == ["revision 0003 but idx_artifacts_project_id is ['project_id']"]
    with conn:
        conn.execute("DROP TABLE alembic_version")
    assert schema_problems(url)[1][0].startswith("no revision but tables")
    conn.close()


# --------------------------------------------------------------------------- 3. busy


@pytest.mark.slow
@pytest.mark.parametrize("repeat", [0, 1], ids=["holder-rolls-back", "holder-killed"])
def test_write_lock_held_past_the_busy_timeout(tmp_path, template, repeat):
    assert sqlite_busy_scenario(tmp_path, template, repeat, busy_timeout=0.5) == ([], 0)


@pytest.mark.postgres
@pytest.mark.parametrize("scenario", [pg_lock_timeout_scenario, pg_serialization_scenario, pg_deadlock_scenario])
def test_postgres_lock_conflicts_are_busy_errors_and_retry_succeeds(db_url_pg, scenario):
    assert scenario(db_url_pg) == ([], 0)


# --------------------------------------------------------------------------- the report


def test_report_prints_a_row_per_item_and_fails_when_one_fails(monkeypatch, capsys):
    def good(counts, workdir, **_):
        return ItemResult("good", 3, 0, 0)

    def bad(counts, workdir, **_):
        return ItemResult("bad", 2, 1, 20, "batch b7 missing")

    def skipped(counts, workdir, **_):
        return ItemResult("pg", 0, 0, 0, "skipped: not reachable (refused)", skipped=True)

    monkeypatch.setattr(reliability, "ITEMS", [good, skipped])
    assert reliability.main(["--quick"]) == 0
    monkeypatch.setattr(reliability, "ITEMS", [good, bad, skipped])
    assert reliability.main(["--quick", "--postgres-url", "postgresql+psycopg://nobody@127.0.0.1:1/x"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| item | trials | failures | rows lost |"
    assert any(line.startswith("| bad | 2 | 1 | 20 |") for line in out)
    assert "    batch b7 missing" in out
    assert any(line.startswith("| pg | - | - | - |") for line in out)
    assert "    skipped: not reachable (refused)" in out


def test_postgres_rows_are_skipped_when_the_server_is_unreachable(tmp_path):
    url = "postgresql+psycopg://nobody@127.0.0.1:1/x"
    for runner in (reliability.run_busy_postgres, reliability.run_pg_migration_kill):
        result = runner(Counts.quick(), tmp_path, pg_url=url)
        assert result.skipped and result.ok
        assert result.detail.startswith("skipped: not reachable")


def test_pytest_items_count_tests_failures_and_lost_rows(tmp_path):
    tests = tmp_path / "test_sample.py"
    tests.write_text(
        "import pytest\n"
        "def test_ok():\n    assert True\n"
        "def test_broken():\n    assert False, 'some other failure'\n"
        "def test_lost():\n    assert False, 'rows lost from projects'\n"
        "def test_skipped():\n    pytest.skip('not here')\n"
    )
    result = reliability.pytest_item("n sample", [str(tests)], tmp_path)
    assert (result.trials, result.failures, result.rows_lost) == (4, 2, 1)
    assert "1 passed, 1 skipped" in result.detail and "test_broken" in result.detail and not result.ok

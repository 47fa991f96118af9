"""``skillmeat-cache serve`` as a process, faulted (issue 13): PostgreSQL cut off while
clients read and a refresh writes, SIGKILLs during refreshes, a storm of file changes, a
short soak. The trial functions are ``benchmarks/server_faults.py``'s, with small counts;
``python -m benchmarks.reliability`` runs them in full. Also the trials' own checks, on
a cache doctored to fail them.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from benchmarks.server_faults import (
    Tree,
    consistency,
    kill_trial,
    pg_outage_trial,
    refresh_seconds,
    serving,
    soak_trial,
    sqlite_checks,
    storm_trial,
)
from skillmeat_cache import migrate
from skillmeat_cache.container import Container
from skillmeat_cache.services import scan

pytestmark = pytest.mark.slow


@pytest.mark.postgres
def test_postgres_cut_off_during_a_refresh_is_503_then_the_refresh_runs_again(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    migrate(fresh_pg_url)
    tree = Tree.create(tmp_path / "projects", projects=60, artifacts=10)
    with serving(fresh_pg_url, [str(tree.root)], "--no-watch", work=tmp_path) as server:
        assert server.job("r1")["state"] == "done"
        result = pg_outage_trial(server, fresh_pg_url, tree, clients=16, outage_s=1.5)
    assert result.problems == []
    assert result.rows_lost == 0
    assert result.attempts >= 2  # the refresh was cut off and ran again
    assert result.unavailable > 0  # the clients did meet the outage


def test_the_server_killed_during_refreshes_leaves_whole_projects(tmp_path: Path) -> None:
    tree = Tree.create(tmp_path / "projects", projects=40, artifacts=10)
    db = tmp_path / "cache.db"
    refresh_s = refresh_seconds(db, tmp_path, tree)
    rng = random.Random(7)
    for _trial in range(3):
        result = kill_trial(db, tmp_path, tree, refresh_s, rng)
        assert result.problems == []


def test_a_storm_of_file_changes_is_coalesced_and_the_server_keeps_answering(tmp_path: Path) -> None:
    tree = Tree.create(tmp_path / "projects", projects=20, artifacts=50, vary=False)
    result = storm_trial(tmp_path, tree, tmp_path / "cache.db")
    assert result.problems == []
    assert result.files == 1000
    assert result.jobs < result.projects  # changes were coalesced, not one job per project
    assert result.reads > 0


def test_a_short_soak_has_no_errors_and_every_change_arrives(tmp_path: Path) -> None:
    tree = Tree.create(tmp_path / "projects", projects=20, artifacts=5)
    result = soak_trial(tmp_path, tree, tmp_path / "cache.db", clients=8, seconds=15, warmup=3, change_every=0.5)
    assert result.errors == 0 and result.requests > 0
    growth = [p for p in result.problems if "grew" not in p]  # a 15 s soak is too short to judge growth
    assert growth == []
    assert result.changes >= 20


def test_the_checks_flag_a_half_written_project_and_a_damaged_file(tmp_path: Path) -> None:
    tree = Tree.create(tmp_path / "projects", projects=4, artifacts=3)
    db = tmp_path / "cache.db"
    url = f"sqlite:///{db}"
    migrate(url)
    container = Container()
    container.config.from_dict({"database_url": url})
    scan(container.unit_of_work, [tree.root])
    container.shutdown_resources()
    assert consistency(url, tree, current=True)[0] == [] and sqlite_checks(db) == []
    first, second, third = tree.paths[:3]
    conn = sqlite3.connect(db)
    with conn:
        ids = lambda path: [r[0] for r in conn.execute(  # noqa: E731
            "SELECT a.id FROM artifacts a JOIN projects p ON p.id = a.project_id WHERE p.path = ?", (path,))]
        conn.execute("DELETE FROM artifacts WHERE id = ?", (ids(first)[0],))
        conn.execute("UPDATE artifact_metadata SET description = 'gen 9' WHERE artifact_id = ?", (ids(second)[0],))
        conn.execute("UPDATE projects SET fingerprint = 'other' WHERE path = ?", (third,))
    conn.execute("PRAGMA foreign_keys = OFF")
    with conn:
        conn.execute("INSERT INTO artifact_metadata (artifact_id) VALUES ('no-such-artifact')")
    conn.close()
    problems, _gens = consistency(url, tree)
    assert [p.split(":")[0] for p in problems] == [first, second, third]
    assert "3 artifacts of generation 1, which has 4" in problems[0]
    assert "several scans" in problems[1] and "fingerprint" in problems[2]
    assert {p.split(":")[0] for p in sqlite_checks(db)} == {"foreign_key_check"}

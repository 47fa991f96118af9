"""The command line: status, migrate, downgrade, and its one-line errors."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner

from skillmeat_cache import HEAD_REVISION
from skillmeat_cache.cli import main


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SKILLMEAT_CACHE_URL", raising=False)
    monkeypatch.delenv("SKILLMEAT_CACHE_ENV", raising=False)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_status_creates_and_migrates_the_default_cache(run, tmp_path):
    result = run("status")
    assert result.exit_code == 0, result.output
    db = tmp_path / "home" / ".skillmeat" / "cache" / "cache.db"
    assert f"database: sqlite:///{db}" in result.output
    assert f"revision: {HEAD_REVISION} (head {HEAD_REVISION})" in result.output
    assert "projects:          0" in result.output
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    info = json.loads(run("status", "--json").stdout)
    assert info["revision"] == HEAD_REVISION and info["counts"]["artifacts"] == 0 and info["size_bytes"] > 0


def test_migrate_and_downgrade_a_file_given_by_path(run, tmp_path):
    path = tmp_path / "x.db"
    assert run("--db", str(path), "migrate").exit_code == 0
    down = run("--db", str(path), "downgrade", "base")
    assert down.exit_code == 0 and "downgraded to base" in down.output
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "projects" not in tables
    up = run("--db", str(path), "migrate", "--to", HEAD_REVISION)
    assert up.exit_code == 0 and f"is at revision {HEAD_REVISION}" in up.output


def test_env_variable_selects_the_database(run, tmp_path, monkeypatch):
    path = tmp_path / "env.db"
    monkeypatch.setenv("SKILLMEAT_CACHE_URL", str(path))
    assert str(path) in run("status").output


def test_a_file_that_is_not_a_database_is_an_error_and_is_not_modified(run, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    before = path.read_bytes()
    result = run("--db", str(path), "status")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "not a database" in result.stderr
    assert path.read_bytes() == before
    assert not (tmp_path / "notes.txt-wal").exists()


def test_a_database_from_newer_code_is_refused_and_kept(run, tmp_path):
    path = tmp_path / "new.db"
    run("--db", str(path), "migrate")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    result = run("--db", str(path), "status")
    assert result.exit_code == 1
    assert "newer skillmeat-cache" in result.stderr and result.stderr.count("\n") == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("9999",)


def test_password_never_appears_in_errors(run):
    result = run("--db", "postgresql://alice:s3cr3t-pw@127.0.0.1:1/nowhere", "status")
    assert result.exit_code == 1
    assert "s3cr3t-pw" not in result.output + result.stderr
    assert result.stderr.startswith("error: ")


def test_missing_folder_for_an_explicit_path_is_a_clear_error(run, tmp_path):
    result = run("--db", str(tmp_path / "no" / "such" / "dir" / "x.db"), "status")
    assert result.exit_code == 1
    assert "does not exist" in result.stderr
    assert not (tmp_path / "no").exists()


def test_usage_errors_keep_exit_code_2(run):
    assert run("--env", "staging", "status").exit_code == 2
    assert run("no-such-command").exit_code == 2


def test_debug_shows_the_traceback(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"x" * 4096)
    env = {**os.environ, "HOME": str(tmp_path)}
    plain = subprocess.run(
        [sys.executable, "-m", "skillmeat_cache", "--db", str(path), "status"], env=env, capture_output=True, text=True
    )
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "skillmeat_cache", "--debug", "--db", str(path), "status"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr

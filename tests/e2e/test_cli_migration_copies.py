"""``skillmeat-cache migrate`` / ``downgrade`` / any command that auto-migrates: the copy of
the file before the migration (``cache.db.pre-<revision>``) and the one error line when a
migration fails or the copy cannot be written (docs/durability.md, docs/errors.md 75-77).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ESCAPE_TRANSACTION, failing_migrations, succeeded, without_dac_override

from skillmeat_cache import HEAD_REVISION, migration


def _held(path: Path) -> tuple[list, list]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return (
            conn.execute("SELECT version_num FROM alembic_version").fetchall(),
            conn.execute("SELECT id, name FROM projects").fetchall(),
        )
    finally:
        conn.close()


@pytest.fixture
def old_cache(run, tmp_path: Path) -> Path:
    """A cache at revision 0004 holding one project, made through the CLI."""
    db = tmp_path / "cache.db"
    succeeded(run("--db", str(db), "migrate", "--to", "0004"))
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "INSERT INTO projects (id, name, path, created_at, updated_at)"
            " VALUES ('p', 'kept', '/srv/p', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )
    conn.close()
    return db


def test_migrate_keeps_a_copy_of_the_file_as_it_was(run, old_cache: Path) -> None:
    result = succeeded(run("--db", str(old_cache), "migrate"))
    assert result.stdout.strip().endswith(f"is at revision {HEAD_REVISION}")
    assert _held(Path(f"{old_cache}.pre-{HEAD_REVISION}")) == ([("0004",)], [("p", "kept")])
    assert _held(old_cache) == ([(HEAD_REVISION,)], [("p", "kept")])


def test_a_command_that_auto_migrates_keeps_the_copy_too(run, old_cache: Path) -> None:
    result = succeeded(run("--db", str(old_cache), "projects"))
    assert "kept" in result.stdout
    assert _held(Path(f"{old_cache}.pre-{HEAD_REVISION}")) == ([("0004",)], [("p", "kept")])


def test_downgrade_keeps_a_copy_named_after_its_target(run, old_cache: Path) -> None:
    succeeded(run("--db", str(old_cache), "downgrade", "0003"))
    assert _held(Path(f"{old_cache}.pre-0003")) == ([("0004",)], [("p", "kept")])


def test_a_failing_migration_is_one_error_line_and_the_file_is_restored(
    run, old_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    succeeded(run("--db", str(old_cache), "migrate"))
    scripts = failing_migrations(tmp_path, escape=ESCAPE_TRANSACTION)  # only the copy can undo it
    monkeypatch.setattr(migration, "migrations_path", lambda: scripts)

    result = run("--db", str(old_cache), "migrate")

    assert result.exit_code == 1
    assert result.stderr == (
        f"error: the migration of {old_cache} to 0008 failed (boom: revision 0008 failed half-way); the file was "
        f"restored from the copy {old_cache}.pre-0008 and is at revision {HEAD_REVISION}, as before\n"
    )
    assert _held(old_cache) == ([(HEAD_REVISION,)], [("p", "kept")])
    monkeypatch.undo()
    assert "kept" in succeeded(run("--db", str(old_cache), "projects")).stdout


def test_a_copy_that_cannot_be_written_is_one_error_line_and_nothing_runs(run, old_cache: Path) -> None:
    Path(f"{old_cache}.pre-{HEAD_REVISION}").mkdir()  # the copy's name is taken by a folder
    for command in (["migrate"], ["projects"]):
        result = run("--db", str(old_cache), *command)
        assert result.exit_code == 1
        assert result.stderr.startswith(
            f"error: cannot write the copy {old_cache}.pre-{HEAD_REVISION} before the migration of {old_cache} "
            f"to {HEAD_REVISION} ("
        )
        assert result.stderr.endswith(
            f"): the migration did not run and nothing changed; free some space or make {old_cache.parent} writable\n"
        )
        assert result.stderr.count("\n") == 1
        assert _held(old_cache) == ([("0004",)], [("p", "kept")])


def test_a_folder_where_nothing_can_be_written_refuses_the_migration(old_cache: Path, tmp_path: Path) -> None:
    # SQLite can write a WAL cache in a read-only folder only while its -wal and -shm
    # exist: another process holds it open. The copy (and the lock) cannot be made there.
    prefix = without_dac_override()
    folder = old_cache.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLMEAT_CACHE_")}
    env["HOME"] = str(tmp_path / "home")
    command = [*prefix, sys.executable, "-m", "skillmeat_cache", "--db", str(old_cache), "migrate"]
    holder = sqlite3.connect(old_cache)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("SELECT count(*) FROM projects").fetchall()
    results = []
    try:
        folder.chmod(0o555)
        if subprocess.run([*prefix, "touch", str(folder / "probe")], capture_output=True).returncode == 0:
            pytest.skip("the folder stayed writable for this user")
        results.append(subprocess.run(command, env=env, capture_output=True, text=True))
        folder.chmod(0o755)
        lock = Path(f"{old_cache}.lock")
        lock.touch()
        lock.chmod(0o666)
        folder.chmod(0o555)
        results.append(subprocess.run(command, env=env, capture_output=True, text=True))
    finally:
        folder.chmod(0o755)
        holder.close()
    no_lock, no_copy = results
    assert no_lock.returncode == 1 and no_lock.stdout == ""
    assert no_lock.stderr == (
        f"error: cannot create the lock file {old_cache}.lock (Permission denied): the migration did not run and "
        f"nothing changed; make {folder} writable\n"
    )
    assert no_copy.returncode == 1 and no_copy.stdout == ""
    assert no_copy.stderr == (
        f"error: cannot write the copy {old_cache}.pre-{HEAD_REVISION} before the migration of {old_cache} to "
        f"{HEAD_REVISION} (Permission denied): the migration did not run and nothing changed; free some space or "
        f"make {folder} writable\n"
    )
    assert _held(old_cache) == ([("0004",)], [("p", "kept")])
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        "cache.db",
        "cache.db.lock",
    ]

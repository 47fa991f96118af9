"""The copy of a SQLite file before every migration (``cache.db.pre-<revision>``), and its
restore when the migration fails: real files under tmp_path, real failing revisions.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import ESCAPE_TRANSACTION, failing_migrations, race_migrations
from sqlalchemy.pool import NullPool

import skillmeat_cache
from skillmeat_cache import migration
from skillmeat_cache.engine import MEMORY_URL, create_engine_for_url
from skillmeat_cache.errors import MigrationBackupError, MigrationFailedError, MigrationRestoreError
from skillmeat_cache.migration import current_revision, downgrade, migrate, prepare
from skillmeat_cache.migration_copies import copies, copy_path

HEAD = skillmeat_cache.HEAD_REVISION


# --------------------------------------------------------------------------- helpers


def _seed(db: Path, rows: int = 5) -> None:
    """A cache at revision 0004 holding one project and ``rows`` artifacts."""
    migrate(str(db), "0004")
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(
                "INSERT INTO projects (id, name, path, created_at, updated_at, fingerprint)"
                " VALUES ('p', 'kept', '/srv/p', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'fp')"
            )
            conn.executemany(
                "INSERT INTO artifacts (id, project_id, name, type, source, created_at, updated_at)"
                " VALUES (?, 'p', ?, 'skill', ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                [(f"a{i}", f"skill-{i}", "x" * 200) for i in range(rows)],
            )
    finally:
        conn.close()


def _state(path: Path) -> dict[str, object]:
    """What a file holds, read through a read-only connection."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {
            "revision": conn.execute("SELECT version_num FROM alembic_version").fetchall(),
            "projects": conn.execute("SELECT id, name, path FROM projects ORDER BY id").fetchall(),
            "artifacts": conn.execute("SELECT id, name, source FROM artifacts ORDER BY id").fetchall(),
            "half_done": "half_done" in tables,
            "integrity": conn.execute("PRAGMA integrity_check").fetchall(),
        }
    finally:
        conn.close()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# Spoils the copy before failing, so that the restore fails too.
SPOIL_COPY = (
    "import pathlib; "
    "main = [r[2] for r in op.get_bind().exec_driver_sql('PRAGMA database_list') if r[1] == 'main'][0]; "
    "pathlib.Path(main + '.pre-0008').write_bytes(b'not a database' * 512)"
)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """A cache at the head revision holding rows, in a folder of its own."""
    folder = tmp_path / "db"
    folder.mkdir()
    db = folder / "cache.db"
    _seed(db)
    migrate(str(db))
    for leftover in copies(db):  # the copy of that first migration: tests start from none
        leftover.unlink()
    return db


# --------------------------------------------------------------------------- the copy


def test_migrating_an_older_file_leaves_a_complete_copy_of_it(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    _seed(db)
    before = _state(db)
    assert before["revision"] == [("0004",)] and len(before["artifacts"]) == 5

    migrate(str(db))

    assert current_revision(str(db)) == HEAD
    copy = tmp_path / "cache.db.pre-0007"
    assert copies(db) == [copy] == [copy_path(db, HEAD)]
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    # A single rollback-journal file: it opens read-only with no -wal / -shm beside it.
    assert not Path(f"{copy}-wal").exists() and not Path(f"{copy}-shm").exists()
    assert copy.read_bytes()[18:20] == b"\x01\x01", "header says rollback journal, not WAL"
    assert _state(copy) == before
    assert not Path(f"{copy}-wal").exists(), "reading it created no -wal"


def test_prepare_and_migrate_engine_make_the_copy_too(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    _seed(db)
    engine = create_engine_for_url(str(db), poolclass=NullPool)
    try:
        prepare(engine, auto_migrate=True)  # what the container does with auto_migrate
    finally:
        engine.dispose()
    assert current_revision(str(db)) == HEAD
    assert [p.name for p in copies(db)] == ["cache.db.pre-0007"]
    assert _state(copies(db)[0])["revision"] == [("0004",)]


def test_only_the_two_newest_copies_are_kept_and_only_ours_are_touched(cache: Path) -> None:
    folder = cache.parent
    # Look like ours but are not: another file's copy, other suffixes, a folder.
    strangers = ["other.db.pre-0003", "cache.db.pre-0003.txt", "cache.db.pre-", "cache.db.previous"]
    for name in strangers:
        (folder / name).write_text("not ours")
    (folder / "cache.db.pre-0001").mkdir()

    downgrade(str(cache), "0005")  # 1: cache.db.pre-0005 holds 0007
    migrate(str(cache))  # 2: cache.db.pre-0007 holds 0005
    assert [p.name for p in copies(cache)] == ["cache.db.pre-0007", "cache.db.pre-0005"]
    downgrade(str(cache), "0006")  # 3: cache.db.pre-0006 holds 0007; pre-0005 goes

    assert [p.name for p in copies(cache)] == ["cache.db.pre-0006", "cache.db.pre-0007"]
    assert not (folder / "cache.db.pre-0005").exists()
    assert _state(folder / "cache.db.pre-0006")["revision"] == [(HEAD,)]
    assert _state(folder / "cache.db.pre-0007")["revision"] == [("0005",)]
    for name in strangers:
        assert (folder / name).read_text() == "not ours"
    assert (folder / "cache.db.pre-0001").is_dir()


def test_a_downgrade_makes_a_copy_named_after_its_target(cache: Path) -> None:
    before = _state(cache)
    downgrade(str(cache), "0006")
    assert _state(cache.parent / "cache.db.pre-0006") == before
    downgrade(str(cache), "base")
    held = _state(cache.parent / "cache.db.pre-base")
    assert held["revision"] == [("0006",)] and held["artifacts"] == before["artifacts"]


def test_a_new_file_and_a_no_op_get_no_copy_and_no_lock(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    migrate(str(db))  # no schema: nothing to keep
    migrate(str(db))  # at head already: nothing changes
    migrate(str(db), "0003")  # Alembic does not upgrade downwards: nothing changes
    assert _names(tmp_path) == ["new.db"]
    downgrade(str(db), "base")  # a schema without rows is kept as well
    assert _names(tmp_path) == ["new.db", "new.db.lock", "new.db.pre-base"]


def test_an_in_memory_database_gets_no_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    engine = create_engine_for_url(MEMORY_URL)
    try:
        prepare(engine)
        migration.downgrade_engine(engine, "0006")
        migration.migrate_engine(engine)
        assert migration.revision_of(engine) == HEAD
    finally:
        engine.dispose()
    assert _names(tmp_path) == []


@pytest.mark.postgres
def test_postgres_migrations_make_no_copy(fresh_pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    migrate(fresh_pg_url)
    downgrade(fresh_pg_url, "0006")
    migrate(fresh_pg_url)
    assert current_revision(fresh_pg_url) == HEAD
    assert _names(tmp_path) == []


# --------------------------------------------------------------------------- a failing migration


@pytest.mark.parametrize("escape", ["pass", ESCAPE_TRANSACTION], ids=["inside-the-transaction", "committed-half-way"])
def test_a_failing_migration_leaves_the_file_exactly_as_before(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, escape: str
) -> None:
    scripts = failing_migrations(tmp_path, escape=escape)
    monkeypatch.setattr(migration, "migrations_path", lambda: scripts)
    before = _state(cache)

    with pytest.raises(MigrationFailedError) as raised:
        migrate(str(cache))

    copy = cache.parent / "cache.db.pre-0008"
    message = str(raised.value)
    assert "\n" not in message
    assert f"the migration of {cache} to 0008 failed (boom: revision 0008 failed half-way)" in message
    assert f"the file was restored from the copy {copy} and is at revision {HEAD}" in message
    assert raised.value.copy_path == copy and not isinstance(raised.value, MigrationRestoreError)
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert _state(cache) == before, "same revision, same rows, no half-done table, integrity ok"
    assert before["integrity"] == [("ok",)]
    assert _state(copy) == before
    # The restored file works: a unit of work reads it at head.
    monkeypatch.undo()
    engine = create_engine_for_url(str(cache), poolclass=NullPool)
    try:
        prepare(engine, auto_migrate=True)
        assert migration.revision_of(engine) == HEAD
    finally:
        engine.dispose()


def test_without_the_restore_the_half_way_commit_would_stay(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control for the test above: the escaping revision does leave its half behind
    # when nothing puts the copy back, so the restore is what undid it there.
    scripts = failing_migrations(tmp_path, escape=ESCAPE_TRANSACTION)
    monkeypatch.setattr(migration, "migrations_path", lambda: scripts)
    monkeypatch.setattr(migration, "restore_after_failure", lambda *args: None)
    with pytest.raises(RuntimeError, match="boom"):
        migrate(str(cache))
    after = _state(cache)
    assert after["half_done"] and after["projects"] == [("p", "clobbered", "/srv/p")]


def test_when_the_restore_fails_too_the_error_names_the_copy(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = failing_migrations(tmp_path, before_raise=SPOIL_COPY)
    monkeypatch.setattr(migration, "migrations_path", lambda: scripts)
    before = _state(cache)

    with pytest.raises(MigrationRestoreError) as raised:
        migrate(str(cache))

    message = str(raised.value)
    assert "\n" not in message
    assert f"the migration of {cache} to 0008 failed (boom: revision 0008 failed half-way)" in message
    assert "and restoring the copy failed too (file is not a database)" in message
    assert f"the file as it was before is {cache}.pre-0008" in message
    assert f"delete cache.db-wal and cache.db-shm, and copy it over {cache}" in message
    assert isinstance(raised.value, MigrationFailedError)
    # SQLite's own rollback still undid what stayed inside the transaction.
    assert _state(cache) == before


def test_an_interrupted_migration_is_restored_and_the_interruption_goes_on(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = failing_migrations(tmp_path, escape=ESCAPE_TRANSACTION, before_raise="raise KeyboardInterrupt")
    monkeypatch.setattr(migration, "migrations_path", lambda: scripts)
    before = _state(cache)
    with pytest.raises(KeyboardInterrupt):
        migrate(str(cache))
    assert _state(cache) == before


# --------------------------------------------------------------------------- a copy that cannot be written


def test_a_copy_name_taken_by_a_folder_refuses_the_migration(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    _seed(db)
    before, names = _state(db), _names(tmp_path)
    (tmp_path / "cache.db.pre-0007").mkdir()

    with pytest.raises(MigrationBackupError) as raised:
        migrate(str(db))

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write the copy {db}.pre-0007 before the migration of {db} to 0007 (")
    assert "the migration did not run and nothing changed" in message
    assert _state(db) == before
    assert (tmp_path / "cache.db.pre-0007").is_dir(), "never removed"
    assert _names(tmp_path) == sorted([*names, "cache.db.pre-0007", "cache.db.lock"])


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    """A 768 KiB tmpfs (needs root and mount): the disk-full case for real."""
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root and mount(8) to make a small file system")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=768k,mode=0700", "tmpfs", str(mount)], check=False)
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_refuses_the_migration_and_changes_nothing(tmp_path: Path, small_disk: Path) -> None:
    built = tmp_path / "built.db"
    _seed(built, rows=1000)  # about 500 KiB: fits once on the small disk, not twice
    size = built.stat().st_size
    assert 350 * 1024 < size < 600 * 1024, size
    db = small_disk / "cache.db"
    shutil.copyfile(built, db)
    before = _state(db)

    with pytest.raises(MigrationBackupError) as raised:
        migrate(str(db))

    assert "(database or disk is full)" in str(raised.value) or "No space left" in str(raised.value)
    assert "the migration did not run and nothing changed" in str(raised.value)
    assert _state(db) == before
    # (-wal / -shm: left by the read-only connection of _state, which may not remove them)
    assert [n for n in _names(small_disk) if not n.endswith(("-wal", "-shm"))] == [
        "cache.db",
        "cache.db.lock",
    ], "the partial copy is removed"


# --------------------------------------------------------------------------- concurrency


# Waiting for the lock (threads, another process): tests/integration/test_file_lock.py.

@pytest.mark.slow
def test_processes_migrating_at_once_make_one_copy_of_the_old_file(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    _seed(db)
    before = _state(db)
    assert race_migrations(str(db), 4, tmp_path) == ["done"] * 4
    assert current_revision(str(db)) == HEAD
    assert [p.name for p in copies(db)] == ["cache.db.pre-0007"]
    assert _state(copies(db)[0]) == before, "the file before any migration, not a half-migrated one"


@pytest.mark.slow
def test_processes_failing_at_once_never_copy_or_restore_a_half_migrated_file(tmp_path: Path, cache: Path) -> None:
    # Each run commits half of the failing revision, then pauses with the write lock free,
    # before it fails: without the file's lock another process would copy that half
    # state (and, failing in turn, put it back).
    scripts = failing_migrations(tmp_path, escape=ESCAPE_TRANSACTION + "; import time; time.sleep(0.3)")
    before = _state(cache)
    assert race_migrations(str(cache), 4, tmp_path, scripts) == ["MigrationFailedError"] * 4
    assert _state(cache) == before
    assert _state(cache.parent / "cache.db.pre-0008") == before

"""The one lock of a cache file (``cache.db.lock``, skillmeat_cache/file_lock.py): a heal,
a repair and a migration that takes a copy wait for each other, across processes and
threads; one thread may take it again; it is never moved aside with the file.

Waiting is observed, not timed: the lock logs once when it starts to wait, and while
the holder keeps it the file is checked to be untouched.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import skillmeat_cache
from skillmeat_cache.file_lock import cache_file_lock, lock_path
from skillmeat_cache.migration import current_revision, migrate
from skillmeat_cache.migration_copies import copies
from skillmeat_cache.repair import heal, repair

HEAD = skillmeat_cache.HEAD_REVISION

HOLDER = """
import sys
from pathlib import Path

from skillmeat_cache.file_lock import cache_file_lock

with cache_file_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.readline()
"""


@contextmanager
def held_by_another_process(db: Path) -> Iterator[None]:
    """Another process holds the lock of ``db`` until the block ends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLMEAT_CACHE_")}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
        holder.communicate("release\n", timeout=60)
        assert holder.returncode == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


class _Waits(logging.Handler):
    """Sets ``seen`` when someone starts waiting for the lock file ``path``."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path, self.seen = str(path), threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "lock_file", None) == self.path:
            self.seen.set()


@pytest.fixture
def waits_for() -> Iterator[Callable[[Path], threading.Event]]:
    """``waits_for(db)``: an event set once a thread starts waiting for ``db``'s lock."""
    logger = logging.getLogger("skillmeat_cache.file_lock")
    level, handlers = logger.level, []
    logger.setLevel(logging.INFO)

    def watch(db: Path) -> threading.Event:
        handler = _Waits(lock_path(db))
        logger.addHandler(handler)
        handlers.append(handler)
        return handler.seen

    yield watch
    for handler in handlers:
        logger.removeHandler(handler)
    logger.setLevel(level)


class _InThread:
    """Run ``work`` in a thread; ``done`` is set when it returns or raises."""

    def __init__(self, work: Callable[[], object]) -> None:
        self.done, self.error, self.result = threading.Event(), None, None
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self.thread.start()

    def _run(self, work: Callable[[], object]) -> None:
        try:
            self.result = work()
        except BaseException as exc:  # handed to the test
            self.error = exc
        finally:
            self.done.set()

    def finish(self) -> object:
        assert self.done.wait(timeout=120), "it finishes once the lock is free"
        if self.error is not None:
            raise self.error
        return self.result


def _old_cache(tmp_path: Path) -> Path:
    db = tmp_path / "cache.db"
    migrate(str(db), "0004")  # a schema: migrating it to head takes a copy, and the lock
    return db


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm")))


def test_a_migration_that_takes_a_copy_waits_for_another_process(tmp_path: Path, waits_for) -> None:
    db = _old_cache(tmp_path)
    waiting = waits_for(db)
    with held_by_another_process(db):
        migrating = _InThread(lambda: migrate(str(db)))
        assert waiting.wait(timeout=120), "the migration starts to wait for the lock"
        assert not migrating.done.is_set()
        assert current_revision(str(db)) == "0004" and copies(db) == []
    migrating.finish()
    assert current_revision(str(db)) == HEAD and [p.name for p in copies(db)] == [f"cache.db.pre-{HEAD}"]


@pytest.mark.parametrize("how", ["repair", "heal"])
def test_a_repair_or_heal_waits_for_another_process(tmp_path: Path, waits_for, how: str) -> None:
    db = tmp_path / "cache.db"
    migrate(str(db))
    if how == "heal":
        db.write_bytes(b"not a database" * 512)
    before = db.read_bytes()
    waiting = waits_for(db)
    with held_by_another_process(db):
        rebuilding = _InThread(lambda: (heal if how == "heal" else repair)(str(db)))
        assert waiting.wait(timeout=120), "the rebuild starts to wait for the lock"
        assert not rebuilding.done.is_set()
        assert db.read_bytes() == before and _names(tmp_path) == ["cache.db", "cache.db.lock"], "nothing moved yet"
    report = rebuilding.finish()
    assert report is not None and report.was_damaged == (how == "heal")
    assert Path(report.moved_to).read_bytes() == before
    assert current_revision(str(db)) == HEAD


def test_another_thread_waits_and_the_holding_thread_may_take_it_again(tmp_path: Path, waits_for) -> None:
    db = _old_cache(tmp_path)
    waiting = waits_for(db)
    with cache_file_lock(db):
        with cache_file_lock(db):  # re-entrant: no deadlock on itself
            pass
        migrating = _InThread(lambda: migrate(str(db)))
        assert waiting.wait(timeout=120), "another thread waits while this one holds the lock"
        assert not migrating.done.is_set() and current_revision(str(db)) == "0004"
        # The holder itself migrates the file, needing the lock it holds: no deadlock
        # (as repair does with the file it builds).
        migrate(str(db), "0005")
        assert current_revision(str(db)) == "0005" and [p.name for p in copies(db)] == ["cache.db.pre-0005"]
    migrating.finish()
    assert current_revision(str(db)) == HEAD


def test_a_repair_in_the_thread_holding_the_lock_does_not_deadlock(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    migrate(str(db))
    with cache_file_lock(db):
        report = repair(str(db))
    assert report is not None and current_revision(str(db)) == HEAD


def test_the_lock_file_is_never_moved_aside(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    migrate(str(db))
    with cache_file_lock(db) as lock:
        assert lock == tmp_path / "cache.db.lock"
    inode = lock.stat().st_ino
    db.write_bytes(b"not a database" * 512)
    Path(f"{db}-wal").write_bytes(b"wal")
    healed = heal(str(db))
    assert healed is not None
    moved = Path(healed.moved_to)
    assert moved.name.startswith("cache.db.corrupt-")
    assert _names(tmp_path) == sorted(["cache.db", "cache.db.lock", moved.name])
    assert Path(f"{moved}-wal").read_bytes() == b"wal", "the side files go with the file; the lock stays"
    assert lock.stat().st_ino == inode and lock.stat().st_size == 0
    repaired = repair(str(db))
    assert repaired is not None and not repaired.was_damaged
    assert _names(tmp_path) == sorted(["cache.db", "cache.db.lock", moved.name, Path(repaired.moved_to).name])


def test_a_symbolic_link_to_the_file_shares_its_lock(tmp_path: Path) -> None:
    db = _old_cache(tmp_path)
    link_folder = tmp_path / "elsewhere"
    link_folder.mkdir()
    (link_folder / "linked.db").symlink_to(db)
    assert lock_path(link_folder / "linked.db") == lock_path(db) == tmp_path / "cache.db.lock"

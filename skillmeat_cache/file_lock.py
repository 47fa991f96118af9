"""The one lock of a SQLite cache file, held by whatever replaces or restores the file as
a whole: a heal or ``repair`` (which moves the file aside and builds a new one) and a
migration that takes a copy (which may write the copy back).

It is a ``filelock`` lock on ``<file>.lock`` beside the file (``cache.db.lock``; 0600;
it stays, empty, after the first use), one instance per file in a process
(``is_singleton``): re-entrant within a thread (``repair`` holds it and then migrates
the file it builds), exclusive against other threads and other processes. The wait has
no limit; the system releases the lock of a killed process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOCK_SUFFIX", "cache_file_lock", "lock_path"]

LOCK_SUFFIX = ".lock"

log = logging.getLogger(__name__)


def lock_path(database: Path) -> Path:
    """``cache.db.lock``: the lock file of ``database``, beside the file it names (a
    symbolic link resolved, so that every spelling of one file gets one lock).
    """
    real = Path(os.path.realpath(database))
    return real.with_name(real.name + LOCK_SUFFIX)


@contextmanager
def cache_file_lock(database: Path) -> Iterator[Path]:
    """Hold the lock of the cache file ``database`` (waiting as long as another thread
    or process holds it); yields the lock file. OSError when the lock file can be
    neither created nor opened (a folder that cannot be written).
    """
    from filelock import FileLock, Timeout

    path = lock_path(database)
    lock = FileLock(path, mode=0o600, is_singleton=True)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        # Once, before the wait: a log that shows a stalled heal or migration says why.
        log.info("waiting for %s: another process or thread is healing, repairing or migrating %s",
                 path, database, extra={"lock_file": str(path)})
        lock.acquire()
    try:
        yield path
    finally:
        lock.release()

"""A copy of a SQLite cache before every migration, put back when the migration fails.

Before a migration changes a SQLite file that has a schema, the file is copied beside
itself as ``<name>.pre-<revision>`` (``cache.db.pre-0007``: the file as it was before it
went to 0007; a downgrade to 0005 makes ``cache.db.pre-0005``, to base
``cache.db.pre-base``). The copy is taken with SQLite's backup API from a second,
read-only connection while the migration's connection holds the write lock and has
written nothing, so it is exactly the committed state the migration starts from; it is
a single file in rollback-journal mode (no ``-wal`` needed). The two newest copies are
kept. When the migration fails, the copy is written back into the file through the
backup API (through SQLite's locks and WAL, with readers open).

A migration that makes a copy also holds the file's lock (``<name>.lock``, the one a heal
or ``repair`` holds: :mod:`.file_lock`) from before it reads the revision until after any
restore: the write lock alone is released by the rollback, before the restore, and
another process must neither migrate, restore nor move the file aside in between. The
lock is taken only when a copy is needed (see :class:`CopyNeedsLock`), so a new file
never gets one.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from .errors import MigrationBackupError, MigrationFailedError, MigrationRestoreError
from .file_lock import cache_file_lock, lock_path
from .revision import read_revision

__all__ = [
    "KEPT_COPIES",
    "CopyNeedsLock",
    "MigrationCopy",
    "copies",
    "copy_before_migration",
    "copy_path",
    "migration_lock",
    "restore_after_failure",
    "sqlite_file",
]

KEPT_COPIES = 2
_COPY = re.compile(r"\.pre-([A-Za-z0-9_]+)")
_PARTIAL = ".partial"


class CopyNeedsLock(Exception):
    """Raised inside the migration's transaction when a copy is needed and the migration
    lock is not held: the caller rolls back, takes the lock and runs again.
    """


@dataclass(frozen=True)
class MigrationCopy:
    """A copy taken before a migration: where, of which revision, towards which one."""

    database: Path
    path: Path
    revision: str
    target: str
    direction: str


def sqlite_file(connection: Connection) -> Path | None:
    """The file behind a SQLite connection; None for PostgreSQL and in-memory databases."""
    if connection.dialect.name != "sqlite":
        return None
    raw = connection.connection.dbapi_connection
    for _seq, name, file in raw.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return Path(file) if file else None
    return None


def copy_path(database: Path, revision: str) -> Path:
    """``cache.db.pre-0007``: the copy of ``database`` taken before it went to ``revision``."""
    return database.with_name(f"{database.name}.pre-{revision}")


def copies(database: Path) -> list[Path]:
    """The copies of ``database`` (our naming only, regular files), newest first."""
    pattern = re.compile(re.escape(database.name) + _COPY.pattern)
    found = [p for p in database.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file() and not p.is_symlink()]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


@contextmanager
def migration_lock(database: Path) -> Iterator[None]:
    """Hold the lock of ``database`` (:func:`.file_lock.cache_file_lock`) for a migration
    that makes a copy; MigrationBackupError when the lock file cannot be made.
    """
    with ExitStack() as stack:
        try:
            stack.enter_context(cache_file_lock(database))
        except OSError as exc:
            raise MigrationBackupError(
                f"cannot create the lock file {lock_path(database)} ({exc.strerror or exc}): the migration did not "
                f"run and nothing changed; make {database.parent} writable"
            ) from exc
        yield


def copy_before_migration(
    connection: Connection, config: Any, database: Path, direction: str, revision: str, *, locked: bool
) -> MigrationCopy | None:
    """Inside the migration's transaction, before anything is written: copy ``database``
    when the migration will change a file that has a schema. None when there is nothing
    to keep (no schema yet) or nothing to do (already at the target, or a target Alembic
    will refuse). Raises :class:`CopyNeedsLock` when a copy is needed and ``locked`` is
    false, :class:`MigrationBackupError` when it cannot be written.
    """
    current = read_revision(connection)  # the first statement: BEGIN IMMEDIATE
    if current is None:
        return None
    target = _target_revision(config, direction, revision, current)
    if target is None:
        return None
    if not locked:
        raise CopyNeedsLock
    copy = MigrationCopy(database, copy_path(database, target), current, target, direction)
    _write_copy(copy)
    _prune(database)
    return copy


def _target_revision(config: Any, direction: str, spec: str, current: str) -> str | None:
    """The revision ``spec`` names from ``current`` (``head``, ``0005``, ``+1``, ``base``),
    or None when the run would change nothing or Alembic will refuse it.
    """
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    history = [rev.revision for rev in reversed(list(script.walk_revisions("base", "heads")))]
    position = {rev: index for index, rev in enumerate(history)}
    if current not in position:
        return None
    relative = re.fullmatch(r"(.*?)([+-][0-9]+)", spec)
    if relative:
        anchor = relative[1]
        start = position[current] if not anchor else _position(script, position, anchor)
        index = None if start is None else start + int(relative[2])
    else:
        index = _position(script, position, spec)  # an unknown revision: CommandError, as Alembic
    if index is None or not -1 <= index < len(history):
        return None
    forward = index > position[current]
    if index == position[current] or forward != (direction == "upgrade"):
        return None
    return history[index] if index >= 0 else "base"


def _position(script: Any, position: dict[str, int], spec: str) -> int | None:
    revisions = script.get_revisions(spec)
    if not revisions:
        return -1  # base
    if len(revisions) != 1 or revisions[0].revision not in position:
        return None
    return position[revisions[0].revision]


def _write_copy(copy: MigrationCopy) -> None:
    """Write the copy under a temporary name, make it a rollback-journal file, sync it
    and rename it into place.
    """
    partial = copy.path.with_name(copy.path.name + _PARTIAL)
    try:
        partial.unlink(missing_ok=True)  # left by a process killed while copying
        os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        source = sqlite3.connect(f"{copy.database.as_uri()}?mode=ro", uri=True)
        try:
            target = sqlite3.connect(partial)
            try:
                source.backup(target)
                # The backup copies the header's WAL flag: make it one file that needs no -wal.
                target.execute("PRAGMA journal_mode = DELETE")
                held = target.execute("SELECT version_num FROM alembic_version").fetchone()
            finally:
                target.close()
        finally:
            source.close()
        if held != (copy.revision,):
            raise sqlite3.DatabaseError(f"the copy holds revision {held}, not {copy.revision}")
        _fsync(partial)
        os.replace(partial, copy.path)
        _fsync(copy.path.parent)
    except (OSError, sqlite3.Error) as exc:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise MigrationBackupError(
            f"cannot write the copy {copy.path} before the {_verb(copy)} of {copy.database} to {copy.target} "
            f"({reason}): the {_verb(copy)} did not run and nothing changed; free some space or make "
            f"{copy.database.parent} writable"
        ) from exc


def _fsync(path: Path) -> None:
    if os.name != "posix" and path.is_dir():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(database: Path) -> None:
    """Keep the newest ``KEPT_COPIES`` copies; remove older ones and stray partial copies."""
    stale = copies(database)[KEPT_COPIES:]
    pattern = re.compile(re.escape(database.name) + _COPY.pattern + re.escape(_PARTIAL))
    stale += [p for p in database.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
    for path in stale:
        with suppress(OSError):
            path.unlink()


def _verb(copy: MigrationCopy) -> str:
    return "migration" if copy.direction == "upgrade" else "downgrade"


def restore_after_failure(copy: MigrationCopy, connection: Connection, error: BaseException, reason: str) -> None:
    """Write ``copy`` back into its database after the migration's transaction was rolled
    back, through the migration's own connection (its busy timeout, its open mode), and
    raise :class:`MigrationFailedError`; :class:`MigrationRestoreError` when the restore
    fails too. An interruption (``KeyboardInterrupt``) is raised again once restored.
    """
    try:
        raw = connection.connection.dbapi_connection
        source = sqlite3.connect(f"{copy.path.as_uri()}?mode=ro", uri=True)
        try:
            source.backup(raw)
        finally:
            source.close()
        now = raw.execute("SELECT version_num FROM alembic_version").fetchone()
        if now != (copy.revision,):
            raise sqlite3.DatabaseError(f"the file is at {now} after the restore, not {copy.revision}")
    except Exception as exc:
        raise MigrationRestoreError(
            f"the {_verb(copy)} of {copy.database} to {copy.target} failed ({reason}) and restoring the copy "
            f"failed too ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); the file as it was "
            f"before is {copy.path}: stop every process using the cache, delete {copy.database.name}-wal and "
            f"{copy.database.name}-shm, and copy it over {copy.database}"
        ) from error
    if not isinstance(error, Exception):
        raise error
    raise MigrationFailedError(
        f"the {_verb(copy)} of {copy.database} to {copy.target} failed ({reason}); the file was restored "
        f"from the copy {copy.path} and is at revision {copy.revision}, as before",
        copy_path=copy.path,
    ) from error

"""Exceptions raised by skillmeat-cache.

Driver errors become these in :mod:`.db_errors` (``map_db_error``), which is the only
part that knows SQLAlchemy: this module imports nothing, so the filesystem scanner can
raise and catch our errors without loading the database layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "CacheError",
    "CacheRebuildingError",
    "ConcurrentUseError",
    "ConstraintViolationError",
    "DatabaseBusyError",
    "DatabaseCorruptError",
    "DatabaseError",
    "DatabaseFullError",
    "DatabaseReadOnlyError",
    "DatabaseUnavailableError",
    "DuplicateError",
    "ForeignDatabaseError",
    "ForeignKeyViolationError",
    "MigrationBackupError",
    "MigrationFailedError",
    "MigrationRestoreError",
    "NotFoundError",
    "ReadOnlyError",
    "SchemaVersionError",
    "UnitOfWorkActiveError",
    "ValidationError",
    "ValueTooLargeError",
]


class CacheError(Exception):
    """Base class of every error skillmeat-cache raises on purpose."""

    retryable: bool = False


class NotFoundError(CacheError):
    """The entity asked for does not exist."""


class ValidationError(CacheError, ValueError):
    """A value given to a model or repository is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class ConstraintViolationError(CacheError):
    """The database refused a write because it breaks a constraint.

    ``table`` and ``constraint`` name what was violated when the driver tells us.
    """

    def __init__(self, message: str, *, table: str | None = None, constraint: str | None = None) -> None:
        self.table = table
        self.constraint = constraint
        super().__init__(message)


class DuplicateError(ConstraintViolationError):
    """A unique or primary-key constraint was violated."""


class ForeignKeyViolationError(ConstraintViolationError):
    """A row refers to a parent that does not exist (or is still referenced)."""


class DatabaseBusyError(CacheError):
    """The database stayed locked past the busy timeout, or the server aborted the
    transaction for a lock conflict. Re-running the whole unit of work may succeed.
    """

    retryable = True


class DatabaseError(CacheError):
    """Any other database failure (unreachable server, corrupt file, ...)."""


class DatabaseFullError(DatabaseError):
    """The disk (or the database's size limit) is full: SQLite ``SQLITE_FULL``,
    PostgreSQL ``53100``. The unit of work was rolled back; what was committed before
    is intact.
    """


class DatabaseCorruptError(DatabaseError):
    """The database file is damaged or is not a SQLite database at all
    (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``). Nothing is written to it.
    """


class ForeignDatabaseError(DatabaseError):
    """The SQLite file holds another program's tables (SkillMeat's own cache, say), not
    a skillmeat-cache database. Refused before anything is written to it: no table, no
    ``alembic_version``, not even the switch to WAL.
    """


class DatabaseReadOnlyError(DatabaseError):
    """The database cannot be written: a read-only file or folder (``SQLITE_READONLY``)
    or a read-only PostgreSQL server/transaction (``25006``).
    """


class DatabaseUnavailableError(DatabaseError):
    """The database cannot be reached or opened: a refused or lost server connection
    (PostgreSQL connection errors, ``08xxx``, ``57P01``-``57P03``, ``28xxx``, ``3D000``) or
    a SQLite file that cannot be opened (``SQLITE_CANTOPEN``).
    """


class CacheRebuildingError(DatabaseUnavailableError):
    """The server found its cache damaged while running and is rebuilding it: the
    request was not served; try again in a few seconds (HTTP 503 with ``Retry-After``).
    """


class ValueTooLargeError(DatabaseError):
    """A value is too large for the database: SQLite ``SQLITE_TOOBIG``, PostgreSQL
    ``54000`` (e.g. a text of a few kB in an indexed column exceeds the btree row limit).
    """


class MigrationBackupError(DatabaseError):
    """The copy a SQLite migration takes of the file first (``cache.db.pre-<revision>``)
    could not be written (disk full, folder not writable): the migration did not run and
    nothing changed.
    """


class MigrationFailedError(DatabaseError):
    """A SQLite migration failed and the file was restored from the copy taken before it;
    ``copy_path`` is that copy. The driver's or the script's error is the ``__cause__``.
    """

    def __init__(self, message: str, *, copy_path: Path | None = None) -> None:
        self.copy_path = copy_path
        super().__init__(message)


class MigrationRestoreError(MigrationFailedError):
    """A SQLite migration failed and writing the copy back failed too: ``copy_path`` holds
    the file as it was before the migration, to put back by hand.
    """


class SchemaVersionError(CacheError):
    """The database schema is not at the revision this code expects."""


class UnitOfWorkActiveError(CacheError):
    """A unit of work was entered while it was already active."""


class ReadOnlyError(CacheError):
    """A read-only unit of work was asked to write."""


class ConcurrentUseError(CacheError):
    """A single-connection database (the in-memory ``test`` one) was used by two
    units of work at once.
    """

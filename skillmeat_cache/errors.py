"""Exceptions raised by skillmeat-cache, and the mapping from database driver errors.

Driver errors are classified by their codes (SQLite ``sqlite_errorcode``, psycopg
``sqlstate``), never by message text; the message is read only to name a table or
column where SQLite gives no other source.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "CacheError",
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
    "NotFoundError",
    "ReadOnlyError",
    "SchemaVersionError",
    "UnitOfWorkActiveError",
    "ValidationError",
    "ValueTooLargeError",
    "map_db_error",
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


class ValueTooLargeError(DatabaseError):
    """A value is too large for the database: SQLite ``SQLITE_TOOBIG``, PostgreSQL
    ``54000`` (e.g. a text of a few kB in an indexed column exceeds the btree row limit).
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


_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_READONLY_DIRECTORY = 1544  # SQLITE_READONLY | (6 << 8): cannot create a file in the folder
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_TOOBIG = 18
_SQLITE_NOTADB = 26
# Errors after which SQLite may roll back the whole transaction on its own, so that the
# savepoint release or rollback that follows fails ("no such savepoint"): the earlier
# error in the exception chain is the one to report.
_SQLITE_TRANSACTION_KILLERS = {_SQLITE_FULL, _SQLITE_CORRUPT, _SQLITE_NOTADB, _SQLITE_READONLY, 7, 10}
_SQLITE_CONSTRAINT_UNIQUE = 2067
_SQLITE_CONSTRAINT_PRIMARYKEY = 1555
_SQLITE_CONSTRAINT_FOREIGNKEY = 787

_PG_DUPLICATE = {"23505"}
_PG_FOREIGN_KEY = {"23503"}
_PG_BUSY = {"40001", "40P01", "55P03"}
_PG_FULL = {"53100"}
_PG_READ_ONLY = {"25006"}
_PG_TOO_BIG = {"54000"}
_PG_UNAVAILABLE = {"57P01", "57P02", "57P03", "3D000", "53300"}
_PG_UNAVAILABLE_CLASSES = ("08", "28")

# SQLite names no constraint; its message names the columns ("UNIQUE constraint failed: t.c").
_SQLITE_COLUMNS = re.compile(r"constraint failed: ([\w.]+(?:, [\w.]+)*)")
_SQLITE_CHECK = re.compile(r"CHECK constraint failed: (\w+)")


def _sqlite_details(message: str) -> tuple[str | None, str | None]:
    match = _SQLITE_CHECK.search(message)
    if match:
        return None, match.group(1)
    match = _SQLITE_COLUMNS.search(message)
    if match:
        columns = match.group(1).split(", ")
        table = columns[0].split(".")[0] if "." in columns[0] else None
        return table, ", ".join(columns)
    return None, None


def _describe(kind: str, table: str | None, constraint: str | None) -> str:
    where = ""
    if table:
        where += f" on table {table}"
    if constraint:
        where += f" ({constraint})"
    return f"{kind}{where}"


def _driver_errors(exc: BaseException) -> list[BaseException]:
    """The SQLAlchemy-wrapped driver errors in ``exc``'s chain, latest first."""
    found: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 20:
        seen.add(id(current))
        if getattr(current, "orig", None) is not None:
            found.append(current)
        current = current.__cause__ or current.__context__
    return found


def map_db_error(exc: BaseException) -> BaseException:
    """Return our exception for a SQLAlchemy/driver error, or ``exc`` itself when it is
    not a database error. The caller raises the result ``from exc``.

    When SQLite rolled the whole transaction back on its own (disk full, I/O error,
    corrupt file...), the savepoint rollback that follows fails too; the earlier error,
    found in the exception chain, is the one reported.
    """
    if isinstance(exc, CacheError) or getattr(exc, "orig", None) is None:
        return exc
    chain = _driver_errors(exc)
    mapped = _map_one(chain[0])
    if type(mapped) is DatabaseError:
        for earlier in chain[1:]:
            code = getattr(getattr(earlier, "orig", None), "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _SQLITE_TRANSACTION_KILLERS:
                return _map_one(earlier)
    return mapped


def _map_one(exc: BaseException) -> BaseException:
    orig: Any = getattr(exc, "orig", None)
    message = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if sqlite_code is not None:
        primary = sqlite_code & 0xFF
        name = getattr(orig, "sqlite_errorname", sqlite_code)
        table, constraint = _sqlite_details(message)
        if sqlite_code in (_SQLITE_CONSTRAINT_UNIQUE, _SQLITE_CONSTRAINT_PRIMARYKEY):
            return DuplicateError(_describe("duplicate", table, constraint), table=table, constraint=constraint)
        if sqlite_code == _SQLITE_CONSTRAINT_FOREIGNKEY:
            return ForeignKeyViolationError(
                _describe("foreign key violation", table, constraint), table=table, constraint=constraint
            )
        if primary == 19:  # SQLITE_CONSTRAINT: NOT NULL, CHECK, ...
            return ConstraintViolationError(
                _describe(f"constraint violation: {message}", None, None), table=table, constraint=constraint
            )
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return DatabaseBusyError(f"database is busy ({name})")
        if primary == _SQLITE_FULL:
            return DatabaseFullError(f"database or disk is full ({name}): free some space and run again")
        if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return DatabaseCorruptError(
                f"database file is damaged or not a database ({name}: {message}); "
                "restore it from a backup, or move it away and scan again to rebuild the cache"
            )
        if sqlite_code == _SQLITE_READONLY_DIRECTORY:
            return DatabaseReadOnlyError(
                f"database is read-only ({name}: {message}): SQLite cannot create the -wal/-shm files in "
                "its folder, even for mode=ro; make the folder writable, or read a copy no process is "
                "writing with a URL like sqlite:///file:/path/cache.db?immutable=1&uri=true"
            )
        if primary == _SQLITE_READONLY:
            return DatabaseReadOnlyError(
                f"database is read-only ({name}: {message}); check the permissions of the file and its folder"
            )
        if primary == _SQLITE_CANTOPEN:
            return DatabaseUnavailableError(f"cannot open the database file ({name}: {message})")
        if primary == _SQLITE_TOOBIG:
            return ValueTooLargeError(f"value too large for the database ({name}: {message})")
        return DatabaseError(f"database error ({name}): {message}")
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        diag = getattr(orig, "diag", None)
        table = getattr(diag, "table_name", None)
        constraint = getattr(diag, "constraint_name", None)
        if sqlstate in _PG_DUPLICATE:
            return DuplicateError(_describe("duplicate", table, constraint), table=table, constraint=constraint)
        if sqlstate in _PG_FOREIGN_KEY:
            return ForeignKeyViolationError(
                _describe("foreign key violation", table, constraint), table=table, constraint=constraint
            )
        if sqlstate.startswith("23"):
            return ConstraintViolationError(
                _describe("constraint violation", table, constraint), table=table, constraint=constraint
            )
        if sqlstate in _PG_BUSY:
            return DatabaseBusyError(f"database is busy (SQLSTATE {sqlstate})")
        if sqlstate in _PG_FULL:
            return DatabaseFullError(f"database server's disk is full (SQLSTATE {sqlstate}): {message}")
        if sqlstate in _PG_READ_ONLY:
            return DatabaseReadOnlyError(f"database is read-only (SQLSTATE {sqlstate}): {message}")
        if sqlstate in _PG_TOO_BIG:
            return ValueTooLargeError(f"value too large for the database (SQLSTATE {sqlstate}): {message}")
        if sqlstate in _PG_UNAVAILABLE or sqlstate.startswith(_PG_UNAVAILABLE_CLASSES):
            return DatabaseUnavailableError(f"database connection failed or was lost (SQLSTATE {sqlstate}): {message}")
        return DatabaseError(f"database error (SQLSTATE {sqlstate}): {message}")
    from sqlalchemy import exc as sa_exc  # here: the scanner imports these errors without SQLAlchemy

    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) or getattr(
        exc, "connection_invalidated", False
    ):
        # A driver error without a server code: the connection could not be made or broke.
        return DatabaseUnavailableError(f"cannot connect to the database: {message}")
    if isinstance(exc, sa_exc.DBAPIError):
        return DatabaseError(f"database error: {message}")
    return exc

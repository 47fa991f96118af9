"""Exceptions raised by skillmeat-cache, and the mapping from database driver errors.

Driver errors are classified by their codes (SQLite ``sqlite_errorcode``, psycopg
``sqlstate``), never by message text; the message is read only to name a table or
column where SQLite gives no other source.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import exc as sa_exc

__all__ = [
    "CacheError",
    "ConcurrentUseError",
    "ConstraintViolationError",
    "DatabaseBusyError",
    "DatabaseError",
    "DuplicateError",
    "ForeignKeyViolationError",
    "NotFoundError",
    "ReadOnlyError",
    "SchemaVersionError",
    "UnitOfWorkActiveError",
    "ValidationError",
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
_SQLITE_CONSTRAINT_UNIQUE = 2067
_SQLITE_CONSTRAINT_PRIMARYKEY = 1555
_SQLITE_CONSTRAINT_FOREIGNKEY = 787

_PG_DUPLICATE = {"23505"}
_PG_FOREIGN_KEY = {"23503"}
_PG_BUSY = {"40001", "40P01", "55P03"}

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


def map_db_error(exc: BaseException) -> BaseException:
    """Return our exception for a SQLAlchemy/driver error, or ``exc`` itself when it is
    not a database error. The caller raises the result ``from exc``.
    """
    if isinstance(exc, CacheError):
        return exc
    orig: Any = getattr(exc, "orig", None)
    if orig is None:
        return exc
    message = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if sqlite_code is not None:
        primary = sqlite_code & 0xFF
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
            return DatabaseBusyError(f"database is busy ({getattr(orig, 'sqlite_errorname', primary)})")
        return DatabaseError(f"database error ({getattr(orig, 'sqlite_errorname', sqlite_code)}): {message}")
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
        return DatabaseError(f"database error (SQLSTATE {sqlstate}): {message}")
    if isinstance(exc, sa_exc.DBAPIError):
        return DatabaseError(f"database error: {message}")
    return exc

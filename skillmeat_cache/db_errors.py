"""The mapping from database driver errors to ours.

Driver errors are classified by their codes (SQLite ``sqlite_errorcode``, psycopg
``sqlstate``), never by message text; the message is read only to name a table or
column where SQLite gives no other source.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import (
    CacheError,
    ConstraintViolationError,
    DatabaseBusyError,
    DatabaseCorruptError,
    DatabaseError,
    DatabaseFullError,
    DatabaseReadOnlyError,
    DatabaseUnavailableError,
    DuplicateError,
    ForeignKeyViolationError,
    ValueTooLargeError,
)

__all__ = ["describe_error", "is_read_only_refusal", "map_db_error", "sqlite_error_name"]


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

_PG_LOST = "database connection failed or was lost"
_PG_READ_ONLY_TRANSACTION = "25006"

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


def sqlite_error_name(exc: BaseException) -> str | None:
    """The SQLite error name (``SQLITE_CORRUPT``...) of the latest driver error in
    ``exc``'s chain; None when there is none.
    """
    for found in _driver_errors(exc):
        name = getattr(found.orig, "sqlite_errorname", None)  # type: ignore[attr-defined]
        if name:
            return str(name)
    return None


def _code_name(exc: BaseException) -> str | None:
    return getattr(exc, "sqlite_errorname", None) or getattr(exc, "sqlstate", None)


def describe_error(exc: BaseException) -> str:
    """One line that names an error: ``Name: first line of its message`` (just ``Name``
    when it has none). Name is the SQLite error name (``SQLITE_CORRUPT``) or PostgreSQL
    SQLSTATE (``42P01``) the exception carries, or else the driver error a SQLAlchemy
    error wraps (whose message is then the one shown); otherwise the type's name.
    """
    orig = getattr(exc, "orig", None)
    source = orig if isinstance(orig, BaseException) and _code_name(orig) else exc
    name = _code_name(source) or type(exc).__name__
    lines = str(source).splitlines()
    return f"{name}: {lines[0]}" if lines and lines[0] else name


def is_read_only_refusal(orig: Any) -> bool:
    """Whether a driver error is the database refusing a write because the connection or
    transaction is read-only: SQLite's plain ``SQLITE_READONLY`` (what ``PRAGMA
    query_only`` raises; a read-only file raises it too, while its extended codes name
    other causes: a folder, a moved file, recovery) or PostgreSQL's ``25006``
    (read_only_sql_transaction). Whether that read-only mode was ours (a read-only unit of
    work: ``ReadOnlyError``) or the database's (``DatabaseReadOnlyError``), only the
    connection knows; see :mod:`skillmeat_cache.read_only`.
    """
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return bool(code == _SQLITE_READONLY)
    return getattr(orig, "sqlstate", None) == _PG_READ_ONLY_TRANSACTION


def _map_one(exc: BaseException) -> BaseException:
    orig: Any = getattr(exc, "orig", None)
    message = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    if getattr(orig, "sqlite_errorcode", None) is not None:
        return _map_sqlite(orig, message)
    if getattr(orig, "sqlstate", None) is not None:
        return _map_postgres(orig, message)
    from sqlalchemy import exc as sa_exc  # here: importing the errors never loads SQLAlchemy

    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) or getattr(
        exc, "connection_invalidated", False
    ):
        # A driver error without a server code: the connection could not be made or broke.
        return DatabaseUnavailableError(f"cannot connect to the database: {message}")
    if isinstance(exc, sa_exc.DBAPIError):
        return DatabaseError(f"database error: {message}")
    return exc


def _constraint_error(kind: str, table: str | None, constraint: str | None) -> CacheError | None:
    """Ours for a constraint kind (duplicate, foreign key, other), the same on both engines."""
    if kind == "duplicate":
        return DuplicateError(_describe("duplicate", table, constraint), table=table, constraint=constraint)
    if kind == "foreign":
        return ForeignKeyViolationError(
            _describe("foreign key violation", table, constraint), table=table, constraint=constraint
        )
    return None


def _map_sqlite(orig: Any, message: str) -> BaseException:
    code = orig.sqlite_errorcode
    primary = code & 0xFF
    name = getattr(orig, "sqlite_errorname", code)
    table, constraint = _sqlite_details(message)
    if code in (_SQLITE_CONSTRAINT_UNIQUE, _SQLITE_CONSTRAINT_PRIMARYKEY):
        return _constraint_error("duplicate", table, constraint)  # type: ignore[return-value]
    if code == _SQLITE_CONSTRAINT_FOREIGNKEY:
        return _constraint_error("foreign", table, constraint)  # type: ignore[return-value]
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
            "run `skillmeat-cache repair` (with the same --db) to rebuild it from the remembered scan roots, "
            "keeping every row that can still be read"
        )
    if code == _SQLITE_READONLY_DIRECTORY:
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


# SQLSTATE -> (our exception, message head); checked in order, classes by their prefix.
_PG_MAPPING: tuple[tuple[frozenset[str] | str, type[CacheError], str], ...] = (
    (frozenset({"40001", "40P01", "55P03"}), DatabaseBusyError, "database is busy"),
    (frozenset({"53100"}), DatabaseFullError, "database server's disk is full"),
    (frozenset({_PG_READ_ONLY_TRANSACTION}), DatabaseReadOnlyError, "database is read-only"),
    (frozenset({"54000"}), ValueTooLargeError, "value too large for the database"),
    (frozenset({"57P01", "57P02", "57P03", "3D000", "53300"}), DatabaseUnavailableError, _PG_LOST),
    ("08", DatabaseUnavailableError, _PG_LOST),
    ("28", DatabaseUnavailableError, _PG_LOST),
)


def _map_postgres(orig: Any, message: str) -> BaseException:
    sqlstate: str = orig.sqlstate
    diag = getattr(orig, "diag", None)
    table = getattr(diag, "table_name", None)
    constraint = getattr(diag, "constraint_name", None)
    if sqlstate.startswith("23"):
        kind = {"23505": "duplicate", "23503": "foreign"}.get(sqlstate, "other")
        return _constraint_error(kind, table, constraint) or ConstraintViolationError(
            _describe("constraint violation", table, constraint), table=table, constraint=constraint
        )
    for codes, error, head in _PG_MAPPING:
        if (sqlstate in codes) if isinstance(codes, frozenset) else sqlstate.startswith(codes):
            if error is DatabaseBusyError:
                return error(f"{head} (SQLSTATE {sqlstate})")
            return error(f"{head} (SQLSTATE {sqlstate}): {message}")
    return DatabaseError(f"database error (SQLSTATE {sqlstate}): {message}")

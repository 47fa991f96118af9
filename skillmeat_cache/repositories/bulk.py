"""The driver-level bulk paths: plain SQL handed to the driver (``exec_driver_sql``) for
the hot writes (``upsert_many``, ``update_many``, ``metadata.set_many``, ``keys_for_project``,
``projects.delete``).

``INSERT ... VALUES (...), (...) ON CONFLICT DO UPDATE`` in batches sized to the
parameter limit, or one ``executemany``, with the values converted once per call exactly
as the column types would convert them. A call that runs more than one statement (or any
call on PostgreSQL, where a failed statement aborts the transaction) runs inside a
``SAVEPOINT``, so a failed call changes nothing.

``BATCH_ROWS`` and ``CHUNK_SIZE`` are read at every call: tests shrink them to make a
few rows take several statements.
"""

from __future__ import annotations

import functools
import itertools
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, CursorResult
from sqlalchemy.orm import Session

from ..column_types import JSONDocument
from ..models import Artifact, ArtifactMetadata
from ..values import aware_utc, sqlite_timestamp
from .common import check_writable
from .rows import ARTIFACT_KEY, MetadataParams

__all__ = [
    "ARTIFACT_COLUMNS",
    "METADATA_COLUMNS",
    "BATCH_ROWS",
    "CHUNK_SIZE",
    "Sql",
    "artifact_update_sql",
    "artifact_upsert_sql",
    "atomic",
    "chunks",
    "insert_values",
    "returned_values",
    "metadata_differs",
    "metadata_upsert_sql",
    "rows_per_statement",
    "sql_for",
    "statement_count",
    "write_connection",
]

# Ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits.
CHUNK_SIZE = 500

_SAVEPOINT = "skillmeat_bulk"

BATCH_ROWS = 1000  # rows per multi-row VALUES statement, at most

_PG_MAX_PARAMS = 65535

_SQLITE_OLD_MAX_PARAMS = 999

# Every artifacts column a bulk row may carry, in table order.
ARTIFACT_COLUMNS = tuple(c.name for c in Artifact.__table__.columns)

_NOT_COMPARED = frozenset({"id", "created_at", "updated_at", *ARTIFACT_KEY})

# Every artifact_metadata column, in table order, and those holding JSON documents.
_METADATA = ArtifactMetadata.__table__
METADATA_COLUMNS: tuple[str, ...] = tuple(column.name for column in _METADATA.columns)
_METADATA_JSON = frozenset(column.name for column in _METADATA.columns if isinstance(column.type, JSONDocument))


class Sql:
    """What the driver SQL of the bulk paths needs to know about a dialect."""

    def __init__(self, postgresql: bool) -> None:
        self.pg = postgresql
        self.p = "%s" if postgresql else "?"
        self.json = "CAST(%s AS JSONB)" if postgresql else "?"
        self.distinct = "IS DISTINCT FROM" if postgresql else "IS NOT"
        # A timestamp as the column type would bind it (UTCDateTime's processors).
        self.timestamp: Callable[[datetime], Any] = aware_utc if postgresql else sqlite_timestamp

    def marks(self, count: int) -> str:
        """``count`` placeholders, comma-separated."""
        return ", ".join([self.p] * count)


_SQL = {"sqlite": Sql(False), "postgresql": Sql(True)}


def sql_for(conn: Connection) -> Sql:
    """The dialect SQL for ``conn``."""
    return _SQL[conn.dialect.name]


def write_connection(session: Session) -> tuple[Connection, Sql]:
    """The connection and dialect SQL for a driver-level write: refuse in a read-only unit
    of work, and flush pending ORM objects first so the database sees them.
    """
    check_writable(session)
    session.flush()
    conn = session.connection()
    return conn, sql_for(conn)


def rows_per_statement(conn: Connection, sql: Sql, per_row: int) -> int:
    """Rows per multi-row VALUES statement under the driver's parameter limit."""
    if sql.pg:
        limit = _PG_MAX_PARAMS
    else:
        getlimit = getattr(conn.connection.dbapi_connection, "getlimit", None)
        limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit else _SQLITE_OLD_MAX_PARAMS
    return max(1, min(BATCH_ROWS, limit // per_row))


@functools.lru_cache(maxsize=512)
def _values_sql(head: str, row: str, count: int, tail: str) -> str:
    return f"{head} VALUES {', '.join([row] * count)}{tail}"


def _executed(
    conn: Connection, head: str, row: str, tail: str, rows: Sequence[tuple[Any, ...]], size: int
) -> Iterator[CursorResult[Any]]:
    """Each multi-row VALUES statement of at most ``size`` of ``rows``, executed."""
    for start in range(0, len(rows), size):
        batch = rows[start : start + size]
        params = tuple(itertools.chain.from_iterable(batch))
        yield conn.exec_driver_sql(_values_sql(head, row, len(batch), tail), params)


def insert_values(conn: Connection, head: str, row: str, tail: str, rows: Sequence[tuple[Any, ...]], size: int) -> int:
    """Insert ``rows`` with multi-row VALUES statements of at most ``size`` rows; returns
    the summed row counts.
    """
    return sum(max(result.rowcount, 0) for result in _executed(conn, head, row, tail, rows, size))


def returned_values(
    conn: Connection, head: str, row: str, tail: str, rows: Sequence[tuple[Any, ...]], size: int
) -> list[tuple[Any, ...]]:
    """Like :func:`insert_values` for statements ending in ``RETURNING``: the rows they
    return, all statements together (SQLite 3.35+ and PostgreSQL).
    """
    return [found for result in _executed(conn, head, row, tail, rows, size) for found in result.fetchall()]


def statement_count(count: int, size: int) -> int:
    """Statements needed for ``count`` rows at ``size`` rows each."""
    return -(-count // size)


@contextmanager
def atomic(conn: Connection, needed: bool) -> Iterator[None]:
    """A savepoint around a call's statements when they need one: more than one
    statement (SQLite keeps a single failed statement atomic on its own), or any
    statement on PostgreSQL (a failed one would abort the whole transaction).
    """
    if not needed:
        yield
        return
    conn.exec_driver_sql(f"SAVEPOINT {_SAVEPOINT}")
    try:
        yield
    except BaseException:
        try:
            conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            conn.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        except Exception:
            pass
        raise
    conn.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")


@functools.lru_cache(maxsize=64)
def artifact_upsert_sql(pg: bool, columns: tuple[str, ...]) -> tuple[str, str, str]:
    """(head, one row's placeholders, ON CONFLICT tail) of an artifacts upsert."""
    sql = _SQL["postgresql" if pg else "sqlite"]
    compared = [c for c in columns if c not in _NOT_COMPARED]
    head = f"INSERT INTO artifacts ({', '.join(columns)})"
    row = f"({sql.marks(len(columns))})"
    key = ", ".join(ARTIFACT_KEY)
    if not compared:
        return head, row, f" ON CONFLICT ({key}) DO NOTHING"
    assignments = ", ".join(f"{c} = excluded.{c}" for c in [*compared, "updated_at"])
    differs = " OR ".join(f"artifacts.{c} {sql.distinct} excluded.{c}" for c in compared)
    return head, row, f" ON CONFLICT ({key}) DO UPDATE SET {assignments} WHERE {differs}"


@functools.lru_cache(maxsize=64)
def artifact_update_sql(pg: bool, columns: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """An ``UPDATE ... WHERE id = ? AND <something differs>`` and the keys of its parameters."""
    sql = _SQL["postgresql" if pg else "sqlite"]
    compared = [c for c in columns if c not in ("id", "updated_at")]
    assigned = [*compared, "updated_at"]
    stmt = f"UPDATE artifacts SET {', '.join(f'{c} = {sql.p}' for c in assigned)} WHERE id = {sql.p}"
    if compared:
        stmt += f" AND ({' OR '.join(f'{c} {sql.distinct} {sql.p}' for c in compared)})"
    return stmt, (*assigned, "id", *compared)


@functools.lru_cache(maxsize=2)
def metadata_upsert_sql(pg: bool) -> tuple[str, str, str]:
    """(head, one row's placeholders, ON CONFLICT tail) of an artifact_metadata upsert of
    every column (:data:`METADATA_COLUMNS`); JSON columns take their documents as text.
    """
    sql = _SQL["postgresql" if pg else "sqlite"]
    key = [column.name for column in _METADATA.primary_key]
    head = f"INSERT INTO {_METADATA.name} ({', '.join(METADATA_COLUMNS)})"
    row = f"({', '.join(sql.json if c in _METADATA_JSON else sql.p for c in METADATA_COLUMNS)})"
    assignments = ", ".join(f"{c} = excluded.{c}" for c in METADATA_COLUMNS if c not in key)
    return head, row, f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {assignments}"


def metadata_differs(stored: tuple[Any, ...], row: MetadataParams, pg: bool) -> bool:
    """Whether a stored metadata row (metadata, description, tags, aliases) differs from
    a prepared one as documents, the way Python compares them.
    """
    data, description, tags, aliases = stored
    if description != row[2]:
        return True
    if pg:  # psycopg hands back JSONB decoded
        if tags != row[3] or aliases != row[5]:
            return True
        return data != (None if row[1] is None else json.loads(row[1]))
    # SQLite hands back the JSON text: the same text is the same document; a different
    # text may still be an equal one (another key order, 1 and 1.0), so compare those.
    for text, ours, value in ((tags, row[4], row[3]), (aliases, row[6], row[5])):
        if text != ours and (text is None or json.loads(text) != value):
            return True
    if data == row[1]:
        return False
    if data is None or row[1] is None:
        return True
    return bool(json.loads(data) != json.loads(row[1]))


def chunks(items: Sequence[Any], size: int | None = None) -> Iterator[Sequence[Any]]:
    """``items`` in slices of ``size`` (default ``CHUNK_SIZE``)."""
    size = size or CHUNK_SIZE
    for start in range(0, len(items), size):
        yield items[start : start + size]

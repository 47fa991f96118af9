"""A damaged SQLite cache file: moving it aside, and reading what can still be read.

Plain ``sqlite3``, opened read-only: the file kept aside is never written. A table is
read in rowid order; where the scan fails half-way (a damaged page), the reading goes on
row by row past the damage, so one bad page costs the rows on it, not the table.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .db_errors import describe_error
from .values import utcnow

__all__ = [
    "SIDE_FILES",
    "TableRead",
    "aside_path",
    "is_healthy",
    "move_aside",
    "open_for_salvage",
    "open_read_only",
    "read_table",
]

SIDE_FILES = ("-wal", "-shm")
_MIN_ROWID = -(2**63)


def aside_path(path: Path, kind: str, now: datetime | None = None) -> Path:
    """``cache.db.<kind>-<UTC timestamp>`` beside ``path``, with ``-1``, ``-2``... when
    that name (or its -wal/-shm) is taken.
    """
    stamp = (now or utcnow()).strftime("%Y%m%dT%H%M%SZ")
    base = f"{path.name}.{kind}-{stamp}"
    candidate, n = path.with_name(base), 0
    while any(Path(f"{candidate}{s}").exists() for s in ("", *SIDE_FILES)):
        n += 1
        candidate = path.with_name(f"{base}-{n}")
    return candidate


def move_aside(path: Path, kind: str) -> Path:
    """Rename ``path`` and its -wal/-shm files to :func:`aside_path` (never deleted);
    the new name. The side files go first, so that the three stay a set. The lock file
    (``cache.db.lock``, held while this runs) stays: it belongs to the name, not the file.
    """
    target = aside_path(path, kind)
    for suffix in reversed(SIDE_FILES):
        side = Path(f"{path}{suffix}")
        if side.exists():
            os.rename(side, f"{target}{suffix}")
    os.rename(path, target)
    return target


def open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to ``path`` (its WAL read too); nothing is written."""
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, isolation_level=None)


def open_for_salvage(path: Path) -> sqlite3.Connection:
    """:func:`open_read_only` that also reads a truncated file: SQLite refuses a file
    shorter than its header says unless ``writable_schema`` is on (nothing is written:
    the connection is read-only), and then reads the pages that are there.
    """
    conn = open_read_only(path)
    conn.execute("PRAGMA writable_schema = ON")
    return conn


def is_healthy(path: Path) -> bool:
    """Whether SQLite's ``quick_check`` passes on ``path`` (False when it cannot run)."""
    try:
        with closing(open_read_only(path)) as conn:
            return conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    except sqlite3.DatabaseError:
        return False


@dataclass
class TableRead:
    """The rows of one table that could be read, and the first error met (None: all read)."""

    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def _try_scalar(conn: sqlite3.Connection, sql: str) -> int | None:
    try:
        value = conn.execute(sql).fetchone()
    except sqlite3.DatabaseError:
        return None
    return value[0] if value and isinstance(value[0], int) else None


def _rowid_bounds(conn: sqlite3.Connection, table: str) -> tuple[int | None, int | None]:
    """The lowest and highest rowid the table or any of its indexes still tells."""
    lows, highs = [], []
    indexes: list[str] = []
    with suppress(sqlite3.DatabaseError):
        indexes = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
                                              (table,))]
    for source in [f'"{table}"', *(f'"{table}" INDEXED BY "{i}"' for i in indexes)]:
        lows.append(_try_scalar(conn, f"SELECT min(rowid) FROM {source}"))
        highs.append(_try_scalar(conn, f"SELECT max(rowid) FROM {source}"))
    found_low = [v for v in lows if v is not None]
    found_high = [v for v in highs if v is not None]
    return (min(found_low) if found_low else None), (max(found_high) if found_high else None)


def read_table(conn: sqlite3.Connection, table: str) -> TableRead:
    """Every row of ``table`` that can be read, as dicts (rowid order)."""
    result = TableRead()
    scan = f'SELECT rowid, * FROM "{table}" WHERE rowid > ? ORDER BY rowid'
    point = f'SELECT rowid, * FROM "{table}" WHERE rowid = ?'
    after, bounds = _MIN_ROWID, None
    while True:
        try:
            cursor = conn.execute(scan, (after,))
            result.columns = [d[0] for d in cursor.description][1:]
            for row in cursor:
                result.rows.append(dict(zip(result.columns, row[1:], strict=True)))
                after = row[0]
            return result
        except sqlite3.DatabaseError as exc:
            result.error = result.error or describe_error(exc)
            if bounds is None:
                bounds = _rowid_bounds(conn, table)
            low, high = bounds
            if high is None or (not result.columns and _columns(conn, table, result) is None):
                return result
            found = _step_past(conn, point, result, max(after + 1, low if low is not None else 1), high)
            if found is None:
                return result
            after = found


def _columns(conn: sqlite3.Connection, table: str, result: TableRead) -> list[str] | None:
    try:
        result.columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
    except sqlite3.DatabaseError:
        return None
    return result.columns or None


def _step_past(conn: sqlite3.Connection, point: str, result: TableRead, start: int, high: int) -> int | None:
    """Read rowids ``start``..``high`` one at a time until one row is read: its rowid
    (the scan goes on from there), or None when none is left.
    """
    for rowid in range(start, high + 1):
        try:
            row = conn.execute(point, (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row is not None:
            result.rows.append(dict(zip(result.columns, row[1:], strict=True)))
            return rowid
    return None

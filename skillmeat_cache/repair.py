"""Rebuilding a SQLite cache: ``skillmeat-cache repair``, and the heal of a damaged
default cache (:func:`heal`).

The old file (with its -wal/-shm) is moved aside, never deleted: ``cache.db.corrupt-<UTC
timestamp>`` when SQLite's ``quick_check`` fails on it, ``cache.db.repaired-<UTC
timestamp>`` when it passes. A fresh file is built at the same path by the migrations,
every row that can still be read from the old one and keeps the model's rules is copied
into it (projects, artifacts with their upstream versions, metadata, marketplace entries,
cache settings and the remembered scan roots; the search index and the tag rows are
rebuilt from those), and the remembered roots are rescanned (in full when a row was lost),
so that what the disk holds is read again and what the damage took under the roots comes
back. What neither the old file nor the disk can give back is lost: the rows on damaged
pages that the scan does not recompute (marketplace entries, upstream versions).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from .errors import CacheError, DatabaseError, NotFoundError
from .file_lock import cache_file_lock
from .locations import is_memory_url, parse_url, redact_url, to_url
from .roots import ROOTS_KEY, decode_roots
from .rules import check_row, tag_rows
from .salvage import TableRead, is_healthy, move_aside, open_for_salvage, read_table
from .values import utcnow

__all__ = ["COPIED_TABLES", "COPY_AT", "RepairReport", "heal", "repair", "sqlite_file"]

#: What is copied from the old file, parents first. The search index and its full-text
#: index are built from these by revision 0007, ``artifact_tags`` from the tags.
COPIED_TABLES = ("projects", "artifacts", "artifact_metadata", "marketplace", "cache_metadata")

Row = dict[str, Any]

#: The rows are copied into a fresh file at this revision, the one before the search
#: index (0007), which the last migration then builds from them in one pass: its
#: triggers, row by row, made the copy of 15,000 artifacts take 5 s instead of 1. A
#: later revision that adds columns to the copied tables means moving this on to it:
#: tests/integration/test_repair.py fails until the columns here equal those at head.
COPY_AT = "0006"


@dataclass
class RepairReport:
    """What a repair (or a heal) did."""

    database: str
    moved_to: str
    was_damaged: bool
    at: datetime
    read: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    damaged_tables: dict[str, str] = field(default_factory=dict)
    roots: list[str] | None = None  # None: the remembered roots could not be read
    projects_rescanned: int = 0
    scan_warnings: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        data = dict(self.__dict__)
        data["at"] = self.at.isoformat()
        return data

    def summary(self, *, moved: bool = True) -> str:
        """One line: rows kept per table, projects rescanned (and where the old file went)."""
        kept = ", ".join(f"{t} {self.kept.get(t, 0)}/{self.read.get(t, 0)}" for t in COPIED_TABLES)
        if self.roots is None:
            scanned = "the remembered scan roots are lost: scan your folders again"
        else:
            scanned = (
                f"{_plural(self.projects_rescanned, 'project')} rescanned from "
                f"{_plural(len(self.roots), 'remembered root')}"
            )
        line = f"rows kept (of those read): {kept}; {scanned}"
        return f"{line}; the old file is kept as {self.moved_to}" if moved else line


    def heal_message(self, cause: str) -> str:
        """The one line that tells a user their damaged cache was rebuilt."""
        return (
            f"the cache {self.database} was damaged ({cause}); it is rebuilt and the damaged file is kept as "
            f"{self.moved_to}: {self.summary(moved=False)}"
        )


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun if n == 1 else noun + 's'}"


def sqlite_file(url: str) -> Path:
    """The file a SQLite URL (or bare path) names; CacheError for anything that cannot
    be rebuilt in place (PostgreSQL, in memory, a read-only URI).
    """
    from .connections import sqlite_url_file

    parsed = parse_url(to_url(url))
    if parsed.get_backend_name() != "sqlite":
        raise CacheError(
            f"repair rebuilds SQLite files; {redact_url(parsed)} is {parsed.get_backend_name()}, whose files "
            "are the server's to keep (restore it from the server's backups, then run `skillmeat-cache scan`)"
        )
    if is_memory_url(parsed):
        raise CacheError("the in-memory database has no file to repair")
    path, writable, _creates = sqlite_url_file(parsed)
    if not writable:
        raise CacheError("repair writes the database: give it a URL or path it may write (not mode=ro)")
    if path is None:
        raise CacheError("repair needs a SQLite file")
    return path


def heal(url: str, **engine_options: Any) -> RepairReport | None:
    """Repair the file at ``url`` if (under the file's lock) SQLite's ``quick_check``
    still finds it damaged; None when it is healthy (another process healed it first)
    or gone. The caller decides that the file may be moved (the default cache only).
    """
    return repair(url, only_if_damaged=True, **engine_options)


def repair(
    url: str,
    *,
    only_if_damaged: bool = False,
    busy_timeout: float = 10.0,
    synchronous: str = "NORMAL",
    progress: Callable[[str], None] | None = None,
) -> RepairReport | None:
    """Move the SQLite file at ``url`` aside and rebuild it (see the module's text)."""
    path = sqlite_file(url)
    if not path.parent.is_dir():
        if only_if_damaged:
            return None
        raise NotFoundError(f"no database file at {path}")
    try:
        return _repair_locked(url, path, only_if_damaged, busy_timeout, synchronous, progress)
    except OSError as exc:
        raise DatabaseError(f"cannot repair {path}: {exc.strerror or exc}") from exc


def _repair_locked(
    url: str,
    path: Path,
    only_if_damaged: bool,
    busy_timeout: float,
    synchronous: str,
    progress: Callable[[str], None] | None,
) -> RepairReport | None:
    from .migration import migrate_engine

    with cache_file_lock(path):
        if not path.exists():
            if only_if_damaged:
                return None
            raise NotFoundError(f"no database file at {path}")
        damaged = not is_healthy(path)
        if only_if_damaged and not damaged:
            return None
        try:
            aside = move_aside(path, "corrupt" if damaged else "repaired")
        except OSError as exc:
            raise DatabaseError(f"cannot move {path} aside to rebuild it: {exc.strerror or exc}") from exc
        report = RepairReport(database=str(path), moved_to=str(aside), was_damaged=damaged, at=utcnow())
        reads = _salvage(aside)
        engine = _fresh_engine(url, busy_timeout, synchronous)
        try:
            _copy(engine, reads, report)
            # To head: the search index is built from the copied rows. No copy of a file
            # being built (the old one is kept aside already).
            migrate_engine(engine, copy=False)
            _rescan(engine, report, progress)
        finally:
            engine.dispose()
    return report


def _fresh_engine(url: str, busy_timeout: float, synchronous: str) -> Engine:
    """An engine on a new file at ``url``, migrated to :data:`COPY_AT` by the migrations,
    as every cache is built.
    """
    from .engine import create_engine_for_url
    from .migration import migrate_engine

    engine = create_engine_for_url(url, busy_timeout=busy_timeout, synchronous=synchronous)
    try:
        migrate_engine(engine, COPY_AT)
    except Exception:
        engine.dispose()
        raise
    return engine


def _salvage(path: Path) -> dict[str, TableRead]:
    with closing(open_for_salvage(path)) as conn:
        return {table: read_table(conn, table) for table in COPIED_TABLES}


def _keep(table: str, rows: list[Row], parents: dict[str, set[str]]) -> list[Row]:
    """The rows of ``table`` that keep the rules (a wrong ``is_outdated`` is put right),
    whose parent was kept, and whose unique keys are not taken by an earlier row.
    """
    kept, seen = [], set()
    for raw in rows:
        row, problems = check_row(table, raw)
        if any(not p.startswith("is_outdated:") for p in problems):
            continue
        if table == "artifacts" and row["project_id"] not in parents["projects"]:
            continue
        if table == "artifact_metadata" and row["artifact_id"] not in parents["artifacts"]:
            continue
        keys = _unique_keys(table, row)
        if keys & seen:
            continue
        seen |= keys
        kept.append(row)
    return kept


def _unique_keys(table: str, row: Row) -> set[tuple[Any, ...]]:
    if table == "projects":
        return {("id", row["id"]), ("path", row["path"])}
    if table == "artifacts":
        return {("id", row["id"]), ("key", row["project_id"], row["type"], row["name"], row["path"])}
    key = {"artifact_metadata": "artifact_id", "cache_metadata": "key"}.get(table, "id")
    return {(key, row[key])}


def _copy(engine: Engine, reads: dict[str, TableRead], report: RepairReport) -> None:
    """Copy the readable rows that keep the rules into the fresh file, in one transaction."""
    parents: dict[str, set[str]] = {}
    with engine.connect() as conn, conn.begin():
        for table in COPIED_TABLES:
            read = reads[table]
            report.read[table] = len(read.rows)
            if read.error:
                report.damaged_tables[table] = read.error
            rows = _keep(table, read.rows, parents)
            report.kept[table] = _insert(conn, table, rows)
            key = "artifact_id" if table == "artifact_metadata" else "id"
            if table in ("projects", "artifacts"):
                parents[table] = {r[key] for r in rows}
            if table == "artifact_metadata":
                tags = [{"artifact_id": a, "tag": t} for a, t in sorted(tag_rows(rows))]
                _insert(conn, "artifact_tags", tags)
            if table == "cache_metadata":
                report.roots = _roots(read, rows)


def _roots(read: TableRead, rows: list[Row]) -> list[str] | None:
    for row in rows:
        if row["key"] == ROOTS_KEY:
            return decode_roots(row["value"])
    return None if read.error else []  # damaged: they may have been on a lost page


def _insert(conn: Connection, table: str, rows: list[Row]) -> int:
    """Insert ``rows`` (the columns the fresh table has); how many went in. A batch the
    database refuses is retried row by row, each in a savepoint, and the refused rows left out.
    """
    if not rows:
        return 0
    columns = [r[1] for r in conn.exec_driver_sql(f'PRAGMA table_info("{table}")')]
    columns = [c for c in columns if c in rows[0]]
    sql = f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({", ".join("?" for _ in columns)})'
    values = [tuple(row.get(c) for c in columns) for row in rows]
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(sql, values)
        return len(values)
    except IntegrityError:
        pass
    count = 0
    for value in values:
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(sql, value)
            count += 1
        except IntegrityError:
            continue
    return count


def _rescan(engine: Engine, report: RepairReport, progress: Callable[[str], None] | None) -> None:
    """Scan the remembered roots again: in full when a row was lost or left out (a
    project copied whole from the old file may have lost artifacts on a damaged page,
    and its unchanged fingerprint would skip it), else as an ordinary scan.
    """
    if not report.roots:
        return
    from sqlalchemy.orm import sessionmaker

    from .services import scan
    from .uow import UnitOfWork

    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    summary = scan(
        lambda read_only=False: UnitOfWork(sessions, read_only=read_only),
        report.roots,
        full=bool(report.damaged_tables) or report.kept != report.read,
        progress=progress,
    )
    report.projects_rescanned = summary.projects_seen
    report.scan_warnings = len(summary.warnings)

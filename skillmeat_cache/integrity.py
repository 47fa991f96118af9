"""``skillmeat-cache check``: whether the cache is sound.

SQLite: the file's integrity (``PRAGMA quick_check``, or ``integrity_check`` when
thorough), its foreign keys (``PRAGMA foreign_key_check``), the schema revision, the
rows against the model's rules (:mod:`.rules`), ``artifact_tags`` against the metadata's
tags, the search index ``artifact_search`` against its tables, and the full-text index
(FTS5 ``integrity-check``) where it exists. The file is read through a read-only
connection; the full-text check alone needs a writable one, in a transaction that is
rolled back. PostgreSQL: the revision, the rules, the tags and the search index; the
integrity of its files and its foreign keys are the server's job (said in the notes).
Nothing is changed either way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .db_errors import describe_error
from .errors import NotFoundError
from .locations import parse_url, redact_url, to_url
from .revision import HEAD_REVISION, KNOWN_REVISIONS
from .rules import KEYS, RULE_TABLES, check_row, search_row, tag_rows
from .salvage import open_read_only

__all__ = ["CHECKS", "CheckReport", "Problem", "check_database"]

CHECKS = ("integrity", "foreign keys", "revision", "rules", "tags", "search index", "full-text index")
_SQLITE_NOTADB = 26
_SQLITE_CORRUPT_VTAB = 267  # FTS5 integrity-check: the index does not match its content
Fetch = Callable[[str], list[dict[str, Any]]]


@dataclass(frozen=True)
class Problem:
    """One thing wrong: which check found it, and what."""

    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"


@dataclass
class CheckReport:
    """What ``check`` found: per check ``ok``, ``problems`` or ``skipped: <why>``."""

    database: str
    engine: str
    checks: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when no check found a problem."""
        return not self.problems

    def add(self, check: str, problems: list[str]) -> None:
        """Record the outcome of ``check``."""
        self.checks[check] = "problems" if problems else "ok"
        self.problems.extend(Problem(check, p) for p in problems)

    def skip(self, check: str, why: str) -> None:
        """Record that ``check`` did not run."""
        self.checks[check] = f"skipped: {why}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "database": self.database,
            "engine": self.engine,
            "clean": self.clean,
            "checks": self.checks,
            "problems": [{"check": p.check, "message": p.message} for p in self.problems],
            "notes": self.notes,
        }


def check_database(url: str, *, thorough: bool = False) -> CheckReport:
    """Check the cache at ``url`` (a URL or a SQLite path); it is not changed."""
    parsed = parse_url(to_url(url))
    if parsed.get_backend_name() == "sqlite":
        return _check_sqlite(url, thorough)
    return _check_postgres(url)


def _sqlite_target(url: str) -> tuple[Path, bool]:
    """The file and whether the URL lets us open it for writing (the full-text check)."""
    from .connections import sqlite_url_file

    path, writable, _creates = sqlite_url_file(parse_url(to_url(url)))
    if path is None:
        raise NotFoundError("the in-memory database has no file to check")
    if not path.is_file():
        raise NotFoundError(f"no database file at {path}")
    return path, writable


def _check_sqlite(url: str, thorough: bool) -> CheckReport:
    path, writable = _sqlite_target(url)
    report = CheckReport(database=redact_url(to_url(url)), engine="sqlite")
    with closing(open_read_only(path)) as conn:
        pragma = "integrity_check" if thorough else "quick_check"
        try:
            rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}")]
            report.add("integrity", [f"{pragma}: {r}" for r in rows if r != "ok"])
        except sqlite3.DatabaseError as exc:  # damaged: the checks below say what can still be read
            report.add("integrity", [f"{pragma}: {describe_error(exc)}"])
            if exc.sqlite_errorcode & 0xFF == _SQLITE_NOTADB:
                for check in CHECKS[1:]:
                    report.skip(check, "the file is not a database")
                return report
        try:
            found = conn.execute("PRAGMA foreign_key_check").fetchall()
            report.add("foreign keys", [f"{t} row {rowid} refers to a missing {parent} row" for t, rowid, parent, _
                                        in found])
        except sqlite3.DatabaseError as exc:
            report.add("foreign keys", [f"foreign_key_check: {describe_error(exc)}"])

        def fetch(sql: str) -> list[dict[str, Any]]:
            cursor = conn.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]

        if _common(report, fetch, sqlite3.DatabaseError):
            _check_full_text(report, conn, path, writable)
    return report


def _check_full_text(report: CheckReport, conn: sqlite3.Connection, path: Path, writable: bool) -> None:
    """FTS5's own ``integrity-check`` against ``artifact_search``: it is an INSERT, so it
    runs on a writable connection in a transaction that is rolled back.
    """
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'artifact_search_fts'").fetchone()
    if not found:
        report.skip("full-text index", "this file has none (SQLite without FTS5 when it was migrated)")
        return
    if not writable:
        report.skip("full-text index", "it needs a writable connection; the URL is read-only")
        return
    with closing(sqlite3.connect(str(path), isolation_level=None, timeout=10)) as rw:
        try:
            rw.execute("BEGIN")
            rw.execute("INSERT INTO artifact_search_fts (artifact_search_fts, rank) VALUES ('integrity-check', 1)")
            report.add("full-text index", [])
        except sqlite3.DatabaseError as exc:
            differs = exc.sqlite_errorcode == _SQLITE_CORRUPT_VTAB
            what = "differs from artifact_search" if differs else "integrity-check failed"
            report.add("full-text index", [f"artifact_search_fts {what} ({describe_error(exc)})"])
        finally:
            if rw.in_transaction:
                rw.execute("ROLLBACK")


def _check_postgres(url: str) -> CheckReport:
    from .engine import READ_ONLY_OPTION, create_engine_for_url

    report = CheckReport(database=redact_url(to_url(url)), engine="postgresql")
    note = "the integrity of the files and the foreign keys are the PostgreSQL server's job"
    report.notes.append(f"{note} (see amcheck, pg_checksums); not checked here")
    report.skip("integrity", "PostgreSQL keeps its own files")
    report.skip("foreign keys", "PostgreSQL enforces them")
    report.skip("full-text index", "SQLite only")
    engine = create_engine_for_url(to_url(url))
    try:
        with engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as conn:

            def fetch(sql: str) -> list[dict[str, Any]]:
                return [dict(row) for row in conn.exec_driver_sql(sql).mappings()]

            from sqlalchemy.exc import DBAPIError

            _common(report, fetch, DBAPIError)
    finally:
        engine.dispose()
    return report


def _common(report: CheckReport, fetch: Fetch, errors: type[Exception] | tuple[type[Exception], ...]) -> bool:
    """The checks both engines run; False when the schema is not at head (the rest skipped)."""
    try:
        revision = _revision(fetch, report.engine)
    except errors as exc:
        report.add("revision", [f"cannot be read: {describe_error(exc)}"])
        revision = None
    if revision != HEAD_REVISION:
        if "revision" not in report.checks:
            report.add("revision", [_revision_problem(revision)])
        for check in ("rules", "tags", "search index", "full-text index"):
            report.skip(check, "the schema is not at head")
        return False
    report.add("revision", [])
    for check, run in (("rules", _rules), ("tags", _tags), ("search index", _search)):
        try:
            report.add(check, run(fetch))
        except errors as exc:
            report.add(check, [f"cannot be read: {describe_error(exc)}"])
    return True


# Whether alembic_version exists, per engine.
_HAS_VERSION_TABLE = {
    "sqlite": "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'",
    "postgresql": "SELECT count(*) AS n FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
    " AND tablename = 'alembic_version'",
}


def _revision(fetch: Fetch, engine: str) -> str | None:
    if not fetch(_HAS_VERSION_TABLE[engine])[0]["n"]:
        return None
    rows = fetch("SELECT version_num FROM alembic_version")
    return rows[0]["version_num"] if rows else None


def _revision_problem(revision: str | None) -> str:
    if revision is None:
        return f"the database has no cache schema (head is {HEAD_REVISION}): run `skillmeat-cache migrate`"
    if revision in KNOWN_REVISIONS:
        return f"at {revision}, behind head {HEAD_REVISION}: run `skillmeat-cache migrate`"
    return f"at {revision}, which this code does not know (head {HEAD_REVISION}): written by a newer skillmeat-cache"


def _rules(fetch: Fetch) -> list[str]:
    problems = []
    for table in RULE_TABLES:
        key = KEYS.get(table, "id")
        for row in fetch(f"SELECT * FROM {table}"):
            _, broken = check_row(table, row)
            problems.extend(f"{table} {row.get(key)!r}: {p}" for p in broken)
    return problems


def _differences(what: str, expected: dict[Any, Any], actual: dict[Any, Any], names: tuple[str, str]) -> list[str]:
    """Lines for rows missing from ``actual``, rows that differ, and rows of nothing."""
    missing = sorted(k for k in expected if k not in actual)
    extra = sorted(k for k in actual if k not in expected)
    differ = sorted(k for k in expected if k in actual and expected[k] != actual[k])
    out = []
    for keys, text in ((missing, f"missing from {what}"), (differ, f"in {what} differ from {names[0]}"),
                       (extra, f"in {what} match no {names[1]}")):
        if keys:
            shown = ", ".join(repr(k) for k in keys[:3]) + (", ..." if len(keys) > 3 else "")
            out.append(f"{len(keys)} {'row' if len(keys) == 1 else 'rows'} {text}: {shown}")
    return out


def _tags(fetch: Fetch) -> list[str]:
    expected = {k: True for k in tag_rows(fetch("SELECT artifact_id, tags FROM artifact_metadata"))}
    actual = {(r["artifact_id"], r["tag"]): True for r in fetch("SELECT artifact_id, tag FROM artifact_tags")}
    return _differences("artifact_tags", expected, actual, ("their metadata", "metadata tag"))


def _search(fetch: Fetch) -> list[str]:
    paths = {r["id"]: r["path"] for r in fetch("SELECT id, path FROM projects")}
    metas = {r["artifact_id"]: r for r in fetch("SELECT artifact_id, description, tags FROM artifact_metadata")}
    expected = {
        a["id"]: search_row(a, paths[a["project_id"]], metas.get(a["id"]))
        for a in fetch("SELECT id, project_id, type, name, path FROM artifacts")
        if a["project_id"] in paths
    }
    columns = "artifact_id, project_id, project_path, type, name, path, name_l, description_l, tags_l"
    actual = {next(iter(r.values())): tuple(r.values()) for r in fetch(f"SELECT {columns} FROM artifact_search")}
    return _differences("artifact_search", expected, actual, ("their artifacts", "artifact"))

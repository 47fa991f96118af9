"""The raw baselines: hand-written SQL through the bare driver (``sqlite3`` / psycopg),
on the very same schema and connection settings as our engine, doing the same work as
our side of each workload.

What "the same work" means here: every step runs in its own transaction (``BEGIN
IMMEDIATE`` for writes on SQLite, deferred ``BEGIN`` for reads); versions are compared
with the library's :func:`skillmeat_cache.derive_outdated`; ids are
:func:`skillmeat_cache.models.new_id`; timestamps are UTC, stored the way SQLAlchemy
stores them; what our path has to read (ids after an insert, the stored versions for an
update), the baseline reads too; results come back in the same order. A baseline never
validates input and never compares metadata before writing it: that is what it is a
baseline for.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from skillmeat_cache.models import derive_outdated, new_id, utcnow
from skillmeat_cache.views import PROJECT_COLUMNS

__all__ = ["RawPostgres", "RawSqlite", "sqlite_connect"]

ARTIFACT_COLUMNS = (
    "id",
    "project_id",
    "name",
    "type",
    "source",
    "deployed_version",
    "upstream_version",
    "is_outdated",
    "local_modified",
    "created_at",
    "updated_at",
    "content_hash",
)
# Carried by an upsert row besides the key; compared to skip identical rows.
_CARRIED = ("source", "deployed_version", "upstream_version", "is_outdated", "local_modified", "content_hash")
_CHUNK = 500
_COLS = ", ".join(ARTIFACT_COLUMNS)
_PCOLS = ", ".join(f"p.{c}" for c in PROJECT_COLUMNS)


def sqlite_connect(path: str, busy_timeout: float = 10.0) -> sqlite3.Connection:
    """A connection set up like our engine's: autocommit driver, WAL, synchronous=NORMAL,
    foreign keys on, temp_store=MEMORY, busy_timeout.
    """
    conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


def _sqlite_ts(value: datetime) -> str:
    # What SQLAlchemy's SQLite DateTime writes for our naive-UTC timestamps.
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class _Raw:
    """SQL shared by both dialects; subclasses fill in placeholders and transactions."""

    P = "?"
    DISTINCT = "IS NOT"
    JSON_PARAM = "?"

    def __init__(self) -> None:
        p, j = self.P, self.JSON_PARAM
        carried_set = ", ".join(f"{c} = excluded.{c}" for c in _CARRIED)
        carried_where = " OR ".join(f"artifacts.{c} {self.DISTINCT} excluded.{c}" for c in _CARRIED)
        self.sql_insert_project = (
            f"INSERT INTO projects (id, name, path, description, created_at, updated_at, last_fetched, status) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, 'active')"
        )
        self.sql_upsert_artifact = (
            "INSERT INTO artifacts (id, project_id, type, name, path, source, deployed_version, upstream_version, "
            f"is_outdated, local_modified, content_hash, created_at, updated_at) VALUES ({', '.join([p] * 13)}) "
            f"ON CONFLICT (project_id, type, path, name) DO UPDATE SET {carried_set}, updated_at = excluded.updated_at "
            f"WHERE {carried_where}"
        )
        self.sql_keys = f"SELECT type, path, name, id FROM artifacts WHERE project_id = {p}"
        self.sql_upsert_metadata = (
            "INSERT INTO artifact_metadata (artifact_id, metadata, description, tags, aliases) "
            f"VALUES ({p}, {j}, {p}, {j}, {j}) ON CONFLICT (artifact_id) DO UPDATE SET "
            "metadata = excluded.metadata, description = excluded.description, tags = excluded.tags, "
            "aliases = excluded.aliases"
        )
        self.sql_delete_tags = f"DELETE FROM artifact_tags WHERE artifact_id = {p}"
        self.sql_insert_tag = f"INSERT INTO artifact_tags (artifact_id, tag) VALUES ({p}, {p})"
        # The same query shape as ours (two correlated counts), so that the comparison is
        # about the code around the query, not about two ways of writing it.
        self.sql_summaries = (
            f"SELECT {_PCOLS}, (SELECT count(*) FROM artifacts a WHERE a.project_id = p.id), "
            f"(SELECT count(*) FROM artifacts a WHERE a.project_id = p.id AND a.{self.outdated_true}) "
            "FROM projects p ORDER BY p.name, p.path"
        )
        self.sql_outdated = f"SELECT {_COLS} FROM artifacts WHERE {self.outdated_true} ORDER BY project_id, type, name"
        self.sql_list = (
            f"SELECT {_COLS} FROM artifacts WHERE project_id = {p} AND type = {p} ORDER BY project_id, type, name"
        )
        self.sql_update_upstream = (
            f"UPDATE artifacts SET upstream_version = {p}, is_outdated = {p}, updated_at = {p} WHERE id = {p}"
        )
        self.sql_delete_project = f"DELETE FROM projects WHERE id = {p}"

    outdated_true = "is_outdated = 1"

    # -- driver specifics ----------------------------------------------------------

    def begin_write(self) -> None:
        raise NotImplementedError

    def begin_read(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def ts(self, value: datetime) -> Any:
        return value

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def select_versions(self, ids: Sequence[str]) -> list[Any]:
        raise NotImplementedError

    # -- the workloads -------------------------------------------------------------

    def _artifact_params(self, rows: Iterable[dict[str, Any]], ts: Any) -> list[tuple[Any, ...]]:
        return [
            (
                new_id(),
                r["project_id"],
                r["type"],
                r["name"],
                r["path"],
                r["source"],
                r["deployed_version"],
                r["upstream_version"],
                derive_outdated(r["deployed_version"], r["upstream_version"]),
                r["local_modified"],
                r["content_hash"],
                ts,
                ts,
            )
            for r in rows
        ]

    def _write_metadata(self, params: list[tuple[Any, ...]], tags: list[tuple[str, str]]) -> None:
        self.executemany(self.sql_upsert_metadata, params)
        self.executemany(self.sql_delete_tags, [(p[0],) for p in params])
        if tags:
            self.executemany(self.sql_insert_tag, tags)

    def ingest_project(self, project: dict[str, Any], rows: list[dict[str, Any]], metas: list[dict[str, Any]]) -> None:
        """W1, one project: insert it, upsert its artifacts, read their ids, set metadata."""
        dumps = json.dumps
        ts = self.ts(utcnow())
        pid = project["id"]
        self.begin_write()
        try:
            self.execute(
                self.sql_insert_project, (pid, project["name"], project["path"], project["description"], ts, ts, ts)
            )
            self.executemany(self.sql_upsert_artifact, self._artifact_params(rows, ts))
            ids = {(t, path, n): i for t, path, n, i in self.fetchall(self.sql_keys, (pid,))}
            params = []
            tags = []
            for r, m in zip(rows, metas, strict=True):
                aid = ids[(r["type"], r["path"], r["name"])]
                params.append((aid, dumps(m["data"]), m["description"], dumps(m["tags"]), dumps(m["aliases"])))
                tags.extend((aid, t) for t in m["tags"])
            self._write_metadata(params, tags)
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def summaries(self) -> list[Any]:
        """W2: every project with its artifact and outdated counts."""
        self.begin_read()
        try:
            return self.fetchall(self.sql_summaries)
        finally:
            self.commit()

    def outdated(self) -> list[Any]:
        """W3: the outdated artifacts, ordered by project_id, type, name."""
        self.begin_read()
        try:
            return self.fetchall(self.sql_outdated)
        finally:
            self.commit()

    def update_upstream(self, changes: list[dict[str, Any]]) -> int:
        """W4: read the stored versions, re-derive is_outdated, update what changes."""
        ts = self.ts(utcnow())
        self.begin_write()
        try:
            ids = [c["id"] for c in changes]
            stored: dict[str, tuple[Any, Any]] = {}
            for start in range(0, len(ids), _CHUNK):
                for id_, deployed, upstream in self.select_versions(ids[start : start + _CHUNK]):
                    stored[id_] = (deployed, upstream)
            params = []
            for c in changes:
                old = stored.get(c["id"])
                if old is None or old[1] == c["upstream_version"]:
                    continue
                params.append((c["upstream_version"], derive_outdated(old[0], c["upstream_version"]), ts, c["id"]))
            self.executemany(self.sql_update_upstream, params)
            self.commit()
            return len(params)
        except BaseException:
            self.rollback()
            raise

    def delete_project(self, project_id: str) -> None:
        """W5: delete one project; the database cascades to artifacts, metadata, tags."""
        self.begin_write()
        try:
            if self.execute(self.sql_delete_project, (project_id,)) != 1:
                raise LookupError(project_id)
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def list_for_project(self, project_id: str, type_: str) -> list[Any]:
        """W6: one project's artifacts of one type."""
        self.begin_read()
        try:
            return self.fetchall(self.sql_list, (project_id, type_))
        finally:
            self.commit()

    def set_metadata(self, rows: list[dict[str, Any]]) -> int:
        """W7: insert or replace metadata rows and their tags."""
        dumps = json.dumps
        self.begin_write()
        try:
            params = []
            tags = []
            for m in rows:
                aid = m["artifact_id"]
                params.append((aid, dumps(m["data"]), m["description"], dumps(m["tags"]), dumps(m["aliases"])))
                tags.extend((aid, t) for t in m["tags"])
            self._write_metadata(params, tags)
            self.commit()
            return len(params)
        except BaseException:
            self.rollback()
            raise

    def rescan_project(self, rows: list[dict[str, Any]]) -> None:
        """W8, one project: the same upsert as W1 (identical rows change nothing)."""
        ts = self.ts(utcnow())
        self.begin_write()
        try:
            self.executemany(self.sql_upsert_artifact, self._artifact_params(rows, ts))
            self.commit()
        except BaseException:
            self.rollback()
            raise


class RawSqlite(_Raw):
    """The plain ``sqlite3`` baseline."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.connect()

    def connect(self) -> None:
        """(Re)open the connection."""
        self.conn = sqlite_connect(self.path)

    def close(self) -> None:  # noqa: D102
        self.conn.close()

    def begin_write(self) -> None:  # noqa: D102
        self.conn.execute("BEGIN IMMEDIATE")

    def begin_read(self) -> None:  # noqa: D102
        self.conn.execute("BEGIN")

    def commit(self) -> None:  # noqa: D102
        self.conn.execute("COMMIT")

    def rollback(self) -> None:  # noqa: D102
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def ts(self, value: datetime) -> Any:  # noqa: D102
        return _sqlite_ts(value)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:  # noqa: D102
        self.conn.executemany(sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:  # noqa: D102
        return self.conn.execute(sql, params).rowcount

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:  # noqa: D102
        return self.conn.execute(sql, params).fetchall()

    def select_versions(self, ids: Sequence[str]) -> list[Any]:  # noqa: D102
        marks = ", ".join("?" * len(ids))
        sql = f"SELECT id, deployed_version, upstream_version FROM artifacts WHERE id IN ({marks})"
        return self.conn.execute(sql, ids).fetchall()


class RawPostgres(_Raw):
    """The plain psycopg 3 baseline (``executemany``: pipelined by psycopg)."""

    P = "%s"
    DISTINCT = "IS DISTINCT FROM"
    JSON_PARAM = "%s::jsonb"
    outdated_true = "is_outdated"

    def __init__(self, conninfo: str) -> None:
        import psycopg

        super().__init__()
        # The session settings our engine uses (UTC sessions, see engine.py).
        self.conn = psycopg.connect(conninfo, options="-c timezone=UTC")
        self.cur = self.conn.cursor()

    def close(self) -> None:  # noqa: D102
        self.conn.close()

    def begin_write(self) -> None:  # noqa: D102
        pass  # psycopg opens the transaction with the first statement

    def begin_read(self) -> None:  # noqa: D102
        pass

    def commit(self) -> None:  # noqa: D102
        self.conn.commit()

    def rollback(self) -> None:  # noqa: D102
        self.conn.rollback()

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:  # noqa: D102
        self.cur.executemany(sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:  # noqa: D102
        return self.cur.execute(sql, params).rowcount

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:  # noqa: D102
        return self.cur.execute(sql, params).fetchall()

    def select_versions(self, ids: Sequence[str]) -> list[Any]:  # noqa: D102
        sql = "SELECT id, deployed_version, upstream_version FROM artifacts WHERE id = ANY(%s)"
        return self.cur.execute(sql, (list(ids),)).fetchall()

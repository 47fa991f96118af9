"""Read models: what the CLI's list commands (and the HTTP API) answer, straight from SQL.

A read that only prints has no use for entities or a unit of work: this module runs one
Core statement on a connection and returns plain dicts, and imports neither the ORM
models nor the repositories (a whole ``skillmeat-cache projects --json`` process then
costs little more than importing SQLAlchemy). A test proves each view returns what the
repository method it mirrors returns (``ProjectRepository.summaries``), on both
databases.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

from .engine import READ_ONLY_OPTION, redact_url
from .errors import NotFoundError, ValidationError
from .revision import HEAD_REVISION, check_schema, read_revision
from .values import (
    ARTIFACT_TYPES,
    PROJECT_STATUSES,
    ascii_lower,
    aware_utc,
    check_choice,
    check_text,
    ensure_utc,
    sqlite_timestamp,
    timestamp_from_sqlite,
    utc_from_driver,
    utcnow,
)

__all__ = [
    "ARTIFACT_COLUMNS",
    "COUNTED_TABLES",
    "PROJECT_COLUMNS",
    "PROJECT_SELECT",
    "Reader",
    "artifact_listing",
    "cache_status",
    "project_summaries",
    "resolve_project",
]

# The projects columns, in table order: the keys of Project.to_dict().
PROJECT_COLUMNS = (
    "id",
    "name",
    "path",
    "description",
    "created_at",
    "updated_at",
    "last_fetched",
    "status",
    "error_message",
    "fingerprint",
    "warnings",
)
PROJECT_SELECT = ", ".join(f"p.{c}" for c in PROJECT_COLUMNS)
_TIMESTAMPS = ("created_at", "updated_at", "last_fetched")
# The artifacts columns, in model order: the keys of Artifact.to_dict() (a test compares
# both lists with the tables, so a new column cannot be forgotten here).
ARTIFACT_COLUMNS = (
    "id",
    "project_id",
    "name",
    "type",
    "path",
    "source",
    "deployed_version",
    "upstream_version",
    "is_outdated",
    "local_modified",
    "created_at",
    "updated_at",
    "content_hash",
)
_ARTIFACT_BOOLEANS = ("is_outdated", "local_modified")
COUNTED_TABLES = ("projects", "artifacts", "artifact_metadata", "marketplace", "cache_metadata")

# The same statement as ProjectRepository.summaries: two correlated counts per project,
# each answered from the (project_id, is_outdated) index alone.
SUMMARIES = """
SELECT {columns},
  (SELECT count(*) FROM artifacts AS a WHERE a.project_id = p.id) AS artifact_count,
  (SELECT count(*) FROM artifacts AS a WHERE a.project_id = p.id AND a.is_outdated = :yes) AS outdated_count{extra}
FROM projects AS p
{where}
ORDER BY p.name{collate}, p.path{collate}
"""


def summary_filter(
    connection: Connection,
    status: str | None = None,
    older_than: timedelta | None = None,
    now: datetime | None = None,
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (``""`` for none) and parameters that pick projects of one
    ``status``, or not fetched within ``older_than`` of ``now``.
    """
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if status is not None:
        params["status"] = check_choice("status", status, PROJECT_STATUSES)
        conditions.append("p.status = :status")
    if older_than is not None:
        cutoff = (ensure_utc(now, "now") if now is not None else utcnow()) - older_than
        conditions.append("(p.last_fetched IS NULL OR p.last_fetched < :cutoff)")
        # Bound and read back as the column type (models.UTCDateTime) binds and reads.
        params["cutoff"] = aware_utc(cutoff) if connection.dialect.name == "postgresql" else sqlite_timestamp(cutoff)
    return (f"WHERE {' AND '.join(conditions)}" if conditions else ""), params


def collate(connection: Connection) -> str:
    """Code point order, as the repositories sort (models.by_code_point), whatever the
    PostgreSQL database's collation: the clause to append to a text sort key.
    """
    return ' COLLATE "C"' if connection.dialect.name == "postgresql" else ""


def summary_item(row: Sequence[Any], read_timestamp: Callable[[Any], datetime | None]) -> dict[str, Any]:
    """A row of ``PROJECT_COLUMNS`` then ``artifact_count``, ``outdated_count`` as a dict."""
    item = dict(zip(PROJECT_COLUMNS, row, strict=False))
    for key in _TIMESTAMPS:
        value = read_timestamp(item[key])
        item[key] = None if value is None else value.isoformat()
    if isinstance(item["warnings"], str):  # SQLite hands JSON back as text
        item["warnings"] = json.loads(item["warnings"])
    n = len(PROJECT_COLUMNS)
    item["artifact_count"] = int(row[n])
    item["outdated_count"] = int(row[n + 1])
    return item


def project_summaries(
    connection: Connection,
    status: str | None = None,
    older_than: timedelta | None = None,
    now: datetime | None = None,
    within: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Every project (optionally of one ``status``, or not fetched within ``older_than``,
    or at or below one of the folders ``within``) as ``Project.to_dict()`` plus
    ``artifact_count`` and ``outdated_count``, ordered by name, then path: what
    ``ProjectRepository.summaries`` returns, without entities.

    ``within`` may also give projects whose path differs only in ASCII case (SQLite's
    LIKE ignores it): callers that compare must take the rows as they come.
    """
    where, params = summary_filter(connection, status, older_than, now)
    if within is not None:
        folders = sorted({f.rstrip(os.sep) or os.sep for f in within})
        tests = [f"p.path = :within_{i} OR p.path LIKE :below_{i} ESCAPE '!'" for i in range(len(folders))]
        where = f"{where} AND " if where else "WHERE "
        where += f"({' OR '.join(tests) or 'false'})"
        for i, folder in enumerate(folders):
            params[f"within_{i}"] = folder
            params[f"below_{i}"] = escape_like(folder.rstrip(os.sep), "!") + os.sep + "%"
    sql = SUMMARIES.format(
        columns=PROJECT_SELECT, where=where, collate=collate(connection), extra=""
    )
    read_timestamp = timestamp_reader(connection)
    return [summary_item(row, read_timestamp) for row in connection.execute(text(sql), {**params, "yes": True})]


def timestamp_reader(connection: Connection) -> Callable[[Any], datetime | None]:
    """How to read a timestamp column's value from this connection's driver as aware UTC."""
    return utc_from_driver if connection.dialect.name == "postgresql" else timestamp_from_sqlite


def resolve_project(connection: Connection, id_or_path: str) -> tuple[str, str]:
    """The ``(id, path)`` of a cached project named by id, or by path (made absolute,
    then as given); NotFoundError otherwise.

    The folder is not read: it may be gone since the last scan. ``services.find_project``
    answers the same through a unit of work.
    """
    check_text("project", id_or_path, required=True)
    candidates = [id_or_path, str(Path(id_or_path).expanduser().resolve()), id_or_path]
    by_id = text("SELECT id, path FROM projects WHERE id = :key")
    by_path = text("SELECT id, path FROM projects WHERE path = :key")
    for statement, key in zip((by_id, by_path, by_path), candidates, strict=True):
        row = connection.execute(statement, {"key": key}).first()
        if row is not None:
            return str(row[0]), str(row[1])
    raise NotFoundError(f"no cached project with id or path {id_or_path!r}")


LISTING = """
SELECT {columns}, m.description, m.tags, p.path{extra}
FROM artifacts AS a
JOIN projects AS p ON p.id = a.project_id
LEFT JOIN artifact_metadata AS m ON m.artifact_id = a.id
{where}
ORDER BY {order}
"""
ARTIFACT_SELECT = ", ".join(f"a.{c}" for c in ARTIFACT_COLUMNS)


def escape_like(value: str, mark: str) -> str:
    """``value`` as literal text inside a LIKE pattern whose escape character is ``mark``."""
    return value.replace(mark, mark + mark).replace("%", mark + "%").replace("_", mark + "_")


def like_pattern(value: str) -> str:
    """A LIKE pattern (escape character ``/``) matching text that contains ``value`` in
    any ASCII case.
    """
    return f"%{escape_like(ascii_lower(value), '/')}%"


# The columns of ``artifact_search`` a search looks in (revision 0007): all three for
# GET /search; name and description for GET /artifacts?q= and the CLI's --text, as
# ArtifactRepository.search.
SEARCH_EVERYWHERE = ("name_l", "description_l", "tags_l")
SEARCH_NAME_OR_DESCRIPTION = ("name_l", "description_l")
_FTS = "artifact_search_fts"


def search_query(field: str, value: Any, *, required: bool = False) -> str:
    """The text a search looks for: validated (see :func:`check_text`; no control
    characters, which mark fields in the index) and with ASCII letters lowered, as the
    index holds it. ValidationError names ``field``.
    """
    if isinstance(value, str) and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError(field, "contains a control character")
    check_text(field, value, required=required)
    return ascii_lower(value)


def has_search_index(connection: Connection) -> bool:
    """Whether SQLite's full-text index exists (revision 0007 leaves it out where SQLite
    lacks FTS5's trigram tokenizer); PostgreSQL's trigram index needs no such test. Asked
    once per database connection: only a migration adds or drops it.
    """
    found = connection.info.get(_FTS)
    if found is None:
        found = connection.execute(text("SELECT 1 FROM sqlite_master WHERE name = :n"), {"n": _FTS}).first() is not None
        connection.info[_FTS] = found
    return found


def count_search(where: str, join: str = "") -> str:
    """A statement counting the rows of ``artifact_search AS s`` (``join``: more tables)
    that meet ``where``.
    """
    return f"SELECT count(*) FROM artifact_search AS s{join} WHERE {where}"


@dataclass(frozen=True)
class SearchMatch:
    """A condition on ``artifact_search AS s`` (with its parameters): the rows whose
    searched text contains a query. ``fts`` when it reads SQLite's full-text index.
    """

    sql: str
    params: dict[str, Any]
    fts: bool

    def count_sql(self, join: str = "", also: str = "") -> str:
        """A statement counting the matching rows that meet ``also`` (`` AND ...``) over
        ``join``: from the full-text index alone when there is neither.
        """
        if self.fts and not join and not also:
            return f"SELECT count(*) FROM {_FTS} WHERE {_FTS} MATCH :match"
        return count_search(self.sql + also, join)


def search_match(
    connection: Connection,
    query: str,
    columns: Sequence[str] = SEARCH_EVERYWHERE,
    *,
    exclude: Sequence[str] = (),
    walk: bool = False,
) -> SearchMatch:
    """The rows of ``artifact_search AS s`` with ``query`` (from :func:`search_query`) inside
    one of ``columns`` and inside none of ``exclude``. On SQLite a query of three
    characters or more is a phrase of the trigram index (``walk``: written so that the
    planner may read ``s`` in an index's order and test each row); shorter ones, and
    PostgreSQL (whose trigram index serves it), use ``LIKE``.
    """
    if len(query) >= 3 and connection.dialect.name == "sqlite" and has_search_index(connection):
        phrase = '"' + query.replace('"', '""') + '"'
        expression = f"{{{' '.join(columns)}}} : {phrase}"
        if exclude:
            expression += f" NOT {{{' '.join(exclude)}}} : {phrase}"
        key = "+s.id" if walk else "s.id"
        sql = f"{key} IN (SELECT rowid FROM {_FTS} WHERE {_FTS} MATCH :match)"
        return SearchMatch(sql, {"match": expression}, True)
    inside = " OR ".join(f"s.{c} LIKE :pattern ESCAPE '/'" for c in columns)
    sql = f"({inside})"
    if exclude:
        sql += " AND NOT (" + " OR ".join(f"s.{c} LIKE :pattern ESCAPE '/'" for c in exclude) + ")"
    return SearchMatch(sql, {"pattern": like_pattern(query)}, False)


def artifact_filter(
    connection: Connection,
    project: str | None = None,
    type: str | None = None,
    outdated: bool = False,
    tag: str | None = None,
    text_: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (``""`` for none) and parameters of :func:`artifact_listing`'s
    filters, over ``artifacts AS a`` joined to ``artifact_metadata AS m``.
    """
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if project is not None:
        params["project_id"] = resolve_project(connection, project)[0]
        conditions.append("a.project_id = :project_id")
    if type is not None:
        params["type"] = check_choice("type", type, ARTIFACT_TYPES)
        conditions.append("a.type = :type")
    if outdated:
        params["yes"] = True
        conditions.append("a.is_outdated = :yes")
    if tag is not None:
        params["tag"] = check_text("tag", tag, required=True, lookup=True)
        conditions.append("EXISTS (SELECT 1 FROM artifact_tags AS t WHERE t.artifact_id = a.id AND t.tag = :tag)")
    if text_:
        match = search_match(connection, search_query("text", text_), SEARCH_NAME_OR_DESCRIPTION)
        params.update(match.params)
        conditions.append(f"a.id IN (SELECT s.artifact_id FROM artifact_search AS s WHERE {match.sql})")
    return (f"WHERE {' AND '.join(conditions)}" if conditions else ""), params


def artifact_item(row: Sequence[Any], read_timestamp: Callable[[Any], datetime | None]) -> dict[str, Any]:
    """A row of ``ARTIFACT_COLUMNS`` then description, tags, project path as a dict."""
    item = dict(zip(ARTIFACT_COLUMNS, row, strict=False))
    for key in ("created_at", "updated_at"):
        value = read_timestamp(item[key])
        item[key] = None if value is None else value.isoformat()
    for key in _ARTIFACT_BOOLEANS:
        item[key] = bool(item[key])
    n = len(ARTIFACT_COLUMNS)
    description, tags, project_path = row[n : n + 3]
    if isinstance(tags, str):  # SQLite hands JSON back as text (a list of text: orjson reads it exactly)
        tags = orjson.loads(tags)
    item["description"] = description
    item["tags"] = list(tags or [])
    item["project_path"] = project_path
    return item


def artifact_listing(
    connection: Connection,
    project: str | None = None,
    type: str | None = None,
    outdated: bool = False,
    tag: str | None = None,
    text_: str | None = None,
) -> list[dict[str, Any]]:
    """Artifacts as ``Artifact.to_dict()`` plus ``description``, ``tags`` (the metadata's,
    ``[]`` without) and ``project_path``, ordered by project path, type, name, path (code
    point order), every filter in the query: one project (id or path, see
    :func:`resolve_project`), one type, only outdated ones, exactly one tag, and name or
    description containing ``text_`` in any ASCII case (as ``ArtifactRepository.search``).
    """
    where, params = artifact_filter(connection, project, type, outdated, tag, text_)
    c = collate(connection)
    sql = LISTING.format(
        columns=ARTIFACT_SELECT,
        where=where,
        order=f"p.path{c}, a.type, a.name{c}, a.path{c}",
        extra="",
    )
    read_timestamp = timestamp_reader(connection)
    return [artifact_item(row, read_timestamp) for row in connection.execute(text(sql), params)]


def cache_status(connection: Connection) -> dict[str, Any]:
    """Where the cache is, its schema revision (and the code's head) and row counts per
    table; ``size_bytes`` is the SQLite file with its WAL (None on PostgreSQL or in memory).
    A database not at head raises SchemaVersionError (nothing is counted).
    """
    current = read_revision(connection)
    if current != HEAD_REVISION:
        check_schema(connection)
    counts = {name: connection.execute(text(f"SELECT count(*) FROM {name}")).scalar_one() for name in COUNTED_TABLES}
    url = connection.engine.url
    size = None
    if connection.dialect.name == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return {
        "database": redact_url(url),
        "revision": current,
        "head": HEAD_REVISION,
        "counts": counts,
        "size_bytes": size,
    }


class Reader:
    """The read models on one engine: each call runs in one read-only transaction, on a
    database checked to be at the code's schema revision. The container builds one
    (``container.reader()``); the CLI and the HTTP API answer their lists through it.
    """

    def __init__(self, engine: Engine, *, check_every_call: bool = True) -> None:
        self.engine = engine
        # A long-running server checks the revision once, when its engine starts.
        self.check_every_call = check_every_call

    def check(self, connection: Connection) -> None:
        """SchemaVersionError unless the database is at the code's revision (when checking)."""
        if self.check_every_call:
            check_schema(connection)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A read-only connection in one transaction."""
        with self.engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as conn, conn.begin():
            yield conn

    def project_summaries(
        self,
        status: str | None = None,
        older_than: timedelta | None = None,
        now: datetime | None = None,
        within: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """See :func:`project_summaries`."""
        with self.connection() as conn:
            self.check(conn)
            return project_summaries(conn, status=status, older_than=older_than, now=now, within=within)

    def artifacts(
        self,
        project: str | None = None,
        type: str | None = None,
        outdated: bool = False,
        tag: str | None = None,
        text: str | None = None,
    ) -> list[dict[str, Any]]:
        """See :func:`artifact_listing`."""
        with self.connection() as conn:
            self.check(conn)
            return artifact_listing(conn, project=project, type=type, outdated=outdated, tag=tag, text_=text)

    def status(self) -> dict[str, Any]:
        """See :func:`cache_status`."""
        with self.connection() as conn:
            return cache_status(conn)

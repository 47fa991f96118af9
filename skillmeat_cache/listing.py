"""Paged read models: what the HTTP API's lists answer, one page and its total per query.

Each function runs Core SQL on a connection (as :mod:`views`, whose filters and row
shapes it reuses) and returns plain dicts. A page is ``{"items", "total", "skip",
"limit"}``; ``limit`` is required and at most :data:`MAX_LIMIT`, so nothing is ever cut
off silently: a client sees ``total`` and asks for the next page. The total comes from
``count(*) OVER ()`` in the same statement (one pass over the rows, not two).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from .errors import NotFoundError, ValidationError
from .values import ARTIFACT_TYPES, PROJECT_STATUSES, ascii_lower, check_choice, check_text
from .views import (
    ARTIFACT_SELECT,
    LISTING,
    PROJECT_SELECT,
    SUMMARIES,
    artifact_filter,
    artifact_item,
    collate,
    like_pattern,
    lower_sql,
    summary_filter,
    summary_item,
    timestamp_reader,
)

__all__ = [
    "ARTIFACT_SORTS",
    "MAX_LIMIT",
    "MARKETPLACE_COLUMNS",
    "artifact_page",
    "check_page",
    "marketplace_page",
    "project_detail",
    "project_page",
    "project_path",
    "search_page",
    "status_counts",
]

MAX_LIMIT = 1000
_TOTAL = ", count(*) OVER () AS total"
# The documented sorts of GET /artifacts (text keys in code point order).
ARTIFACT_SORTS = ("project", "name", "type", "updated")
MARKETPLACE_COLUMNS = ("id", "name", "type", "url", "description", "version", "source", "cached_at", "data")


def check_page(skip: int, limit: int) -> tuple[int, int]:
    """``(skip, limit)`` when ``skip >= 0`` and ``1 <= limit <= MAX_LIMIT``; ValidationError otherwise."""
    if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
        raise ValidationError("skip", f"must be an integer >= 0, got {skip!r}")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError("limit", f"must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return skip, limit


def _page(
    connection: Connection, sql: str, params: dict[str, Any], skip: int, limit: int, item: Any
) -> dict[str, Any]:
    """Run ``sql`` (whose last column is the window total) for one page; ``item`` shapes a row."""
    skip, limit = check_page(skip, limit)
    rows = connection.execute(text(f"{sql} LIMIT :limit OFFSET :skip"), {**params, "limit": limit, "skip": skip}).all()
    if rows:
        total = int(rows[0][-1])
    elif skip:  # past the end: the window saw no row, count them apart
        total = int(connection.execute(text(f"SELECT count(*) FROM ({sql}) AS listed"), params).scalar_one())
    else:
        total = 0
    return {"items": [item(row) for row in rows], "total": total, "skip": skip, "limit": limit}


def project_page(
    connection: Connection,
    *,
    skip: int = 0,
    limit: int,
    status: str | None = None,
    older_than: timedelta | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One page of :func:`views.project_summaries` (same filters, same order)."""
    where, params = summary_filter(connection, status, older_than, now)
    sql = SUMMARIES.format(
        columns=PROJECT_SELECT, where=where, collate=collate(connection), extra=_TOTAL
    )
    read = timestamp_reader(connection)
    return _page(connection, sql, {**params, "yes": True}, skip, limit, lambda row: summary_item(row, read))


_ARTIFACT_ORDER = {
    "project": "p.path{c}, a.type, a.name{c}, a.path{c}",
    "name": "a.name{c}, p.path{c}, a.type, a.path{c}",
    "type": "a.type, a.name{c}, p.path{c}, a.path{c}",
    "updated": "a.updated_at DESC, a.id",
}


def artifact_page(
    connection: Connection,
    *,
    skip: int = 0,
    limit: int,
    sort: str = "project",
    project: str | None = None,
    type: str | None = None,
    outdated: bool = False,
    tag: str | None = None,
    text_: str | None = None,
) -> dict[str, Any]:
    """One page of :func:`views.artifact_listing`'s filters, in one of :data:`ARTIFACT_SORTS`:
    ``project`` (project path, type, name, path: the CLI's order), ``name``, ``type`` (then
    name), ``updated`` (most recently changed first).
    """
    check_choice("sort", sort, ARTIFACT_SORTS)
    where, params = artifact_filter(connection, project, type, outdated, tag, text_)
    sql = LISTING.format(
        columns=ARTIFACT_SELECT, where=where, order=_ARTIFACT_ORDER[sort].format(c=collate(connection)), extra=_TOTAL
    )
    read = timestamp_reader(connection)
    return _page(connection, sql, params, skip, limit, lambda row: artifact_item(row, read))


def search_page(connection: Connection, query: str, *, skip: int = 0, limit: int) -> dict[str, Any]:
    """Artifacts whose name, description or a tag contains ``query`` (any ASCII case), best
    matches first: name equal to the query, name starting with it, name containing it, a
    tag equal to it, then a match in the description or inside a tag; ties by name,
    project path, path. Each item carries its ``rank`` (0 = best).
    """
    check_text("q", query, required=True)
    if not query.strip():
        raise ValidationError("q", "must not be blank")
    lower = lower_sql(connection)
    name = lower.format("a.name")
    tag_match = "EXISTS (SELECT 1 FROM artifact_tags AS t WHERE t.artifact_id = a.id AND {})"
    rank = (
        f", CASE WHEN {name} LIKE :exact ESCAPE '/' THEN 0 WHEN {name} LIKE :prefix ESCAPE '/' THEN 1"
        f" WHEN {name} LIKE :pattern ESCAPE '/' THEN 2 WHEN {tag_match.format('t.tag = :tag')} THEN 3"
        " ELSE 4 END AS rank"
    )
    tag_like = tag_match.format(lower.format("t.tag") + " LIKE :pattern ESCAPE '/'")
    if connection.dialect.name == "sqlite":
        # The metadata's JSON copy of the tags rules out most rows before the tag lookup.
        tag_like = f"(m.tags LIKE :pattern ESCAPE '/' AND {tag_like})"
    where = (
        f"WHERE {name} LIKE :pattern ESCAPE '/' OR {lower.format('m.description')} LIKE :pattern ESCAPE '/'"
        f" OR {tag_like}"
    )
    c = collate(connection)
    sql = LISTING.format(
        columns=ARTIFACT_SELECT, where=where, order=f"rank, a.name{c}, p.path{c}, a.path{c}", extra=rank + _TOTAL
    )
    pattern = like_pattern(query)
    params = {"exact": pattern[1:-1], "prefix": pattern[1:], "pattern": pattern, "tag": ascii_lower(query)}
    read = timestamp_reader(connection)

    def item(row: Any) -> dict[str, Any]:
        out = artifact_item(row, read)
        out["rank"] = int(row[-2])
        return out

    return _page(connection, sql, params, skip, limit, item)


def project_detail(connection: Connection, project_id: str) -> dict[str, Any]:
    """One project (as in :func:`project_page`) with ``artifacts``: every one of them, in
    the CLI's order, each with its metadata (``description``, ``tags``, ``aliases`` and the
    frontmatter document as ``metadata``). NotFoundError for an unknown id.
    """
    check_text("project_id", project_id, required=True, lookup=True)
    sql = SUMMARIES.format(
        columns=PROJECT_SELECT, where="WHERE p.id = :id", collate="", extra=""
    )
    read = timestamp_reader(connection)
    row = connection.execute(text(sql), {"id": project_id, "yes": True}).first()
    if row is None:
        raise NotFoundError(f"no cached project with id {project_id!r}")
    project = summary_item(row, read)
    c = collate(connection)
    listing = LISTING.format(
        columns=ARTIFACT_SELECT,
        where="WHERE a.project_id = :id",
        order=f"a.type, a.name{c}, a.path{c}",
        extra=", m.aliases, m.metadata",
    )
    artifacts = []
    for arow in connection.execute(text(listing), {"id": project_id}):
        item = artifact_item(arow, read)
        aliases, document = arow[-2:]
        item["aliases"] = list((json.loads(aliases) if isinstance(aliases, str) else aliases) or [])
        item["metadata"] = json.loads(document) if isinstance(document, str) else document
        artifacts.append(item)
    project["artifacts"] = artifacts
    return project


def project_path(connection: Connection, project_id: str) -> str:
    """The folder of the cached project with this id; NotFoundError otherwise."""
    check_text("project_id", project_id, required=True, lookup=True)
    path = connection.execute(text("SELECT path FROM projects WHERE id = :id"), {"id": project_id}).scalar()
    if path is None:
        raise NotFoundError(f"no cached project with id {project_id!r}")
    return str(path)


def marketplace_page(connection: Connection, *, skip: int = 0, limit: int, type: str | None = None) -> dict[str, Any]:
    """One page of marketplace entries (of one artifact ``type``), by type, name and id."""
    params: dict[str, Any] = {}
    where = ""
    if type is not None:
        params["type"] = check_choice("type", type, ARTIFACT_TYPES)
        where = "WHERE type = :type"
    c = collate(connection)
    sql = (
        f"SELECT {', '.join(MARKETPLACE_COLUMNS)}{_TOTAL} FROM marketplace {where} ORDER BY type, name{c}, id{c}"
    )
    read = timestamp_reader(connection)

    def item(row: Any) -> dict[str, Any]:
        out = dict(zip(MARKETPLACE_COLUMNS, row, strict=False))
        cached = read(out["cached_at"])
        out["cached_at"] = None if cached is None else cached.isoformat()
        if isinstance(out["data"], str):
            out["data"] = json.loads(out["data"])
        return out

    return _page(connection, sql, params, skip, limit, item)


def status_counts(connection: Connection) -> dict[str, Any]:
    """Projects by status, artifacts, outdated artifacts, and the newest ``last_fetched``."""
    by_status = dict(connection.execute(text("SELECT status, count(*) FROM projects GROUP BY status")).all())
    artifacts, outdated = connection.execute(
        text("SELECT count(*), count(CASE WHEN is_outdated = :yes THEN 1 END) FROM artifacts"), {"yes": True}
    ).one()
    newest = timestamp_reader(connection)(connection.execute(text("SELECT max(last_fetched) FROM projects")).scalar())
    return {
        "projects": {status: int(by_status.get(status, 0)) for status in PROJECT_STATUSES},
        "artifacts": int(artifacts),
        "outdated": int(outdated),
        "last_fetched": None if newest is None else newest.isoformat(),
    }

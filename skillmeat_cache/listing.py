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

import orjson
from sqlalchemy import Connection, text

from .errors import NotFoundError, ValidationError
from .values import ARTIFACT_TYPES, PROJECT_STATUSES, check_choice, check_text
from .views import (
    ARTIFACT_SELECT,
    LISTING,
    PROJECT_SELECT,
    SEARCH_NAME_OR_DESCRIPTION,
    SUMMARIES,
    artifact_filter,
    artifact_item,
    collate,
    count_search,
    search_match,
    search_query,
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


# Each order over the listing (a, p), the search index (s) or a ranked subquery (r).
_ARTIFACT_ORDER = {
    "project": "{path}{c}, {k}.type, {k}.name{c}, {k}.path{c}",
    "name": "{k}.name{c}, {path}{c}, {k}.type, {k}.path{c}",
    "type": "{k}.type, {k}.name{c}, {path}{c}, {k}.path{c}",
    "updated": "{u}.updated_at DESC, {id}",
}
_ON_LISTING = {"path": "p.path", "k": "a", "u": "a", "id": "a.id"}
_ON_INDEX = {"path": "s.project_path", "k": "s", "u": "a", "id": "s.artifact_id"}
_ON_RANKED = {"path": "r.project_path", "k": "r", "u": "r", "id": "r.artifact_id"}
# The page's artifacts with their project and metadata, in the order of the ranked ids of
# ``{ranked}`` (a subquery on artifact_search AS s with a LIMIT: at most a page of rows).
_RANKED = """
SELECT {columns}, m.description, m.tags, p.path{extra}
FROM ({ranked}) AS r
JOIN artifacts AS a ON a.id = r.artifact_id
JOIN projects AS p ON p.id = a.project_id
LEFT JOIN artifact_metadata AS m ON m.artifact_id = a.id
ORDER BY {order}
"""
_KEYS = "s.artifact_id, s.project_path, s.type, s.name, s.path"
# An index walk pays (skip + limit) x rows / matches; sorting the matches pays for each.
_WALK_FROM = 20


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
    name), ``updated`` (most recently changed first). With ``text_`` the page is chosen
    from the search index (revision 0007), which holds the same keys.
    """
    check_choice("sort", sort, ARTIFACT_SORTS)
    where, params = artifact_filter(connection, project, type, outdated, tag)
    if text_:
        return _text_page(connection, skip, limit, sort, text_, (where, params))
    order = _ARTIFACT_ORDER[sort].format(c=collate(connection), **_ON_LISTING)
    sql = LISTING.format(columns=ARTIFACT_SELECT, where=where, order=order, extra=_TOTAL)
    read = timestamp_reader(connection)
    return _page(connection, sql, params, skip, limit, lambda row: artifact_item(row, read))


def _text_page(
    connection: Connection, skip: int, limit: int, sort: str, text_: str, filters: tuple[str, dict[str, Any]]
) -> dict[str, Any]:
    """:func:`artifact_page` with a text filter: the matches counted, then one statement
    that picks the page's ids from ``artifact_search`` (joined to ``artifacts AS a`` only
    for the other ``filters`` or the ``updated`` order) and joins their rows.
    """
    skip, limit = check_page(skip, limit)
    query = search_query("text", text_)
    where, params = filters
    join = " JOIN artifacts AS a ON a.id = s.artifact_id" if where or sort == "updated" else ""
    match = search_match(connection, query, SEARCH_NAME_OR_DESCRIPTION)
    params = {**params, **match.params}
    also = where.replace("WHERE ", " AND ", 1)
    total = _count(connection, match.count_sql(join, also), params)
    items: list[dict[str, Any]] = []
    if total > skip:
        if match.fts and sort == "project" and total >= _WALK_FROM * (skip + limit):
            match = search_match(connection, query, SEARCH_NAME_OR_DESCRIPTION, walk=True)
        c = collate(connection)
        keys = _KEYS + (", a.updated_at" if sort == "updated" else "")
        ranked = (
            f"SELECT {keys} FROM artifact_search AS s{join} WHERE {match.sql}{also}"
            f" ORDER BY {_ARTIFACT_ORDER[sort].format(c=c, **_ON_INDEX)} LIMIT :limit OFFSET :skip"
        )
        order = _ARTIFACT_ORDER[sort].format(c=c, **_ON_RANKED)
        sql = _RANKED.format(columns=ARTIFACT_SELECT, ranked=ranked, order=order, extra="")
        read = timestamp_reader(connection)
        rows = connection.execute(text(sql), {**params, "limit": limit, "skip": skip})
        items = [artifact_item(row, read) for row in rows]
    return {"items": items, "total": total, "skip": skip, "limit": limit}


def search_page(connection: Connection, query: str, *, skip: int = 0, limit: int) -> dict[str, Any]:
    """Artifacts whose name, description or a tag contains ``query`` (any ASCII case), best
    matches first: name equal to the query, name starting with it, name containing it, a
    tag equal to it, then a match in the description or inside a tag; ties by name in any
    ASCII case, then name, project path, path. Each item carries its ``rank`` (0 = best).

    It reads the search index (revision 0007): the matches are counted, then the page is
    taken tier by tier, each in an index's order where one serves (ranks 0 and 1 are a
    range of the lowered names), so a first page of a common word reads about a page.
    """
    skip, limit = check_page(skip, limit)
    q = search_query("q", query, required=True)
    everywhere = search_match(connection, q)
    total = _count(connection, everywhere.count_sql(), everywhere.params)
    items: list[dict[str, Any]] = []
    offset = skip
    tiers = _tiers(connection, q, walk=total >= _WALK_FROM * (skip + limit)) if total > skip else []
    for tier in tiers:
        if len(items) == limit or skip + len(items) >= total:
            break
        got = _ranked(connection, *tier[:3], offset, limit - len(items), by_rank=tier[4])
        if got:
            items += got
            offset = 0
        elif offset:  # this tier lies wholly before the page
            offset -= _count(connection, tier[3], tier[2])
    return {"items": items, "total": total, "skip": skip, "limit": limit}


def _tiers(connection: Connection, q: str, *, walk: bool) -> list[tuple[str, str, dict[str, Any], str, bool]]:
    """The ranks of :func:`search_page` in order, each as (condition on ``artifact_search
    AS s``, rank expression, parameters, count statement, whether to sort by the rank).
    """
    # Names starting with q are the range [q, q with its last character's successor).
    prefix = "s.name_l >= :q AND s.name_l < :q_end"
    params = {"q": q, "q_end": q[:-1] + chr(ord(q[-1]) + 1)}
    in_name = search_match(connection, q, ("name_l",), walk=walk)
    elsewhere = search_match(connection, q, ("description_l", "tags_l"), exclude=("name_l",))
    position = "instr" if connection.dialect.name == "sqlite" else "strpos"
    rest = {**params, **elsewhere.params, "tag": f"\x1e{q}\x1e"}
    inside = f"{in_name.sql} AND NOT ({prefix})"
    tag_rank = f"CASE WHEN {position}(s.tags_l, :tag) > 0 THEN 3 ELSE 4 END"
    # Within the prefix range the equal name sorts first: the index's order is the rank's.
    return [
        (prefix, "CASE WHEN s.name_l = :q THEN 0 ELSE 1 END", params, count_search(prefix), False),
        (inside, "2", {**params, **in_name.params}, count_search(inside), False),
        (elsewhere.sql, tag_rank, rest, count_search(elsewhere.sql), True),
    ]


def _count(connection: Connection, sql: str, params: dict[str, Any]) -> int:
    return int(connection.execute(text(sql), params).scalar_one())


def _ranked(
    connection: Connection,
    condition: str,
    rank: str,
    params: dict[str, Any],
    skip: int,
    limit: int,
    *,
    by_rank: bool,
) -> list[dict[str, Any]]:
    """The artifacts matching ``condition`` on ``artifact_search AS s`` ordered by ``rank``
    (``by_rank``: else the order below already is the rank's), then the lowered name,
    name, project path, path: ``limit`` of them from ``skip``, each with its ``rank``.
    """
    c = collate(connection)
    keys = f"s.name_l{c}, s.name{c}, s.project_path{c}, s.path{c}"
    ranked = (
        f"SELECT {_KEYS}, s.name_l, {rank} AS rank FROM artifact_search AS s WHERE {condition}"
        f" ORDER BY {'rank, ' if by_rank else ''}{keys} LIMIT :limit OFFSET :skip"
    )
    order = f"r.rank, r.name_l{c}, r.name{c}, r.project_path{c}, r.path{c}"
    sql = _RANKED.format(columns=ARTIFACT_SELECT, ranked=ranked, order=order, extra=", r.rank")
    read = timestamp_reader(connection)
    items = []
    for row in connection.execute(text(sql), {**params, "limit": limit, "skip": skip}):
        item = artifact_item(row, read)
        item["rank"] = int(row[-1])
        items.append(item)
    return items


def project_detail(connection: Connection, project_id: str, *, stored_json: bool = False) -> dict[str, Any]:
    """One project (as in :func:`project_page`) with ``artifacts``: every one of them, in
    the CLI's order, each with its metadata (``description``, ``tags``, ``aliases`` and the
    frontmatter document as ``metadata``). NotFoundError for an unknown id.

    ``stored_json``: each ``metadata`` is the stored JSON text as an ``orjson.Fragment``,
    not parsed (for a response that orjson writes: the HTTP API's).
    """
    check_text("project_id", project_id, required=True, lookup=True)
    pg = connection.dialect.name == "postgresql"
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
        # PostgreSQL hands jsonb back parsed; as text it can be embedded as it is.
        extra=", m.aliases, " + ("CAST(m.metadata AS text)" if stored_json and pg else "m.metadata"),
    )
    artifacts = []
    for arow in connection.execute(text(listing), {"id": project_id}):
        item = artifact_item(arow, read)
        aliases, document = arow[-2:]
        item["aliases"] = list((orjson.loads(aliases) if isinstance(aliases, str) else aliases) or [])
        if isinstance(document, str):
            item["metadata"] = orjson.Fragment(document) if stored_json else json.loads(document)
        else:
            item["metadata"] = document
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

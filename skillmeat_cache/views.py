"""Read models: what the CLI's list commands print, straight from SQL.

A read that only prints has no use for entities or a unit of work: this module runs one
Core statement on a connection and returns plain dicts, and imports neither the ORM
models nor the repositories (a whole ``skillmeat-cache projects --json`` process then
costs little more than importing SQLAlchemy). A test proves each view returns what the
repository method it mirrors returns (``ProjectRepository.summaries``), on both
databases.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from .values import (
    PROJECT_STATUSES,
    aware_utc,
    check_choice,
    ensure_utc,
    sqlite_timestamp,
    timestamp_from_sqlite,
    utc_from_driver,
    utcnow,
)

__all__ = ["PROJECT_COLUMNS", "project_summaries"]

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
_TIMESTAMPS = ("created_at", "updated_at", "last_fetched")

# The same statement as ProjectRepository.summaries: two correlated counts per project,
# each answered from the (project_id, is_outdated) index alone.
_SUMMARIES = """
SELECT {columns},
  (SELECT count(*) FROM artifacts AS a WHERE a.project_id = p.id) AS artifact_count,
  (SELECT count(*) FROM artifacts AS a WHERE a.project_id = p.id AND a.is_outdated = :yes) AS outdated_count
FROM projects AS p
{where}
ORDER BY p.name{collate}, p.path{collate}
"""


def project_summaries(
    connection: Connection,
    status: str | None = None,
    older_than: timedelta | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every project (optionally of one ``status``, or not fetched within ``older_than``)
    as ``Project.to_dict()`` plus ``artifact_count`` and ``outdated_count``, ordered by
    name, then path: what ``ProjectRepository.summaries`` returns, without entities.
    """
    postgresql = connection.dialect.name == "postgresql"
    conditions: list[str] = []
    params: dict[str, Any] = {"yes": True}
    if status is not None:
        params["status"] = check_choice("status", status, PROJECT_STATUSES)
        conditions.append("p.status = :status")
    if older_than is not None:
        cutoff = (ensure_utc(now, "now") if now is not None else utcnow()) - older_than
        conditions.append("(p.last_fetched IS NULL OR p.last_fetched < :cutoff)")
        # Bound and read back as the column type (models.UTCDateTime) binds and reads.
        params["cutoff"] = aware_utc(cutoff) if postgresql else sqlite_timestamp(cutoff)
    sql = _SUMMARIES.format(
        columns=", ".join(f"p.{c}" for c in PROJECT_COLUMNS),
        where=f"WHERE {' AND '.join(conditions)}" if conditions else "",
        # Code point order, as the repositories sort (models.by_code_point), whatever
        # the PostgreSQL database's collation.
        collate=' COLLATE "C"' if postgresql else "",
    )
    read_timestamp = utc_from_driver if postgresql else timestamp_from_sqlite
    out = []
    for row in connection.execute(text(sql), params):
        item = dict(zip(PROJECT_COLUMNS, row, strict=False))
        for key in _TIMESTAMPS:
            value = read_timestamp(item[key])
            item[key] = None if value is None else value.isoformat()
        if isinstance(item["warnings"], str):  # SQLite hands JSON back as text
            item["warnings"] = json.loads(item["warnings"])
        item["artifact_count"] = int(row[-2])
        item["outdated_count"] = int(row[-1])
        out.append(item)
    return out

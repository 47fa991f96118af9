"""Read models: what the CLI's list commands print, straight from SQL.

A read that only prints has no use for entities or a unit of work: this module runs one
Core statement on a connection and returns plain dicts, and imports neither the ORM
models nor the repositories (a whole ``skillmeat-cache projects --json`` process then
costs little more than importing SQLAlchemy). A test proves each view returns what the
repository method it mirrors returns (``ProjectRepository.summaries``), on both
databases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from .errors import ValidationError

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
)
_TIMESTAMPS = ("created_at", "updated_at", "last_fetched")
_STATUSES = ("active", "stale", "error")

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


def _iso(value: Any) -> str | None:
    """A stored timestamp as Project.to_dict() renders it: ISO 8601 in UTC."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite keeps naive UTC text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC).isoformat()
    return value.astimezone(UTC).isoformat()


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
    conditions: list[str] = []
    params: dict[str, Any] = {"yes": True}
    if status is not None:
        if status not in _STATUSES:
            raise ValidationError("status", f"must be one of {', '.join(_STATUSES)}, got {status!r}")
        conditions.append("p.status = :status")
        params["status"] = status
    if older_than is not None:
        if now is None:
            now = datetime.now(UTC)
        elif now.tzinfo is None:
            raise ValidationError("now", "must be timezone-aware (naive datetimes are ambiguous)")
        cutoff = now.astimezone(UTC) - older_than
        conditions.append("(p.last_fetched IS NULL OR p.last_fetched < :cutoff)")
        # Bound as the column type binds it: naive UTC text on SQLite, aware on PostgreSQL.
        params["cutoff"] = cutoff if connection.dialect.name == "postgresql" else _sqlite_text(cutoff)
    sql = _SUMMARIES.format(
        columns=", ".join(f"p.{c}" for c in PROJECT_COLUMNS),
        where=f"WHERE {' AND '.join(conditions)}" if conditions else "",
        # Code point order, as the repositories sort (models.by_code_point), whatever
        # the PostgreSQL database's collation.
        collate=' COLLATE "C"' if connection.dialect.name == "postgresql" else "",
    )
    out = []
    for row in connection.execute(text(sql), params):
        item = dict(zip(PROJECT_COLUMNS, row, strict=False))
        for key in _TIMESTAMPS:
            item[key] = _iso(item[key])
        item["artifact_count"] = int(row[-2])
        item["outdated_count"] = int(row[-1])
        out.append(item)
    return out


def _sqlite_text(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

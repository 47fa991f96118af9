"""Validation and normalisation of the plain rows the bulk paths take.

Shared by the SQLAlchemy repositories and the fakes, so both accept and refuse the
same input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..errors import ValidationError
from ..models import ARTIFACT_TYPES, check_json, check_text, derive_outdated, ensure_utc, normalise_labels
from .base import ARTIFACT_BULK_COLUMNS

__all__ = [
    "ARTIFACT_KEY",
    "MARKETPLACE_COLUMNS",
    "artifact_change",
    "artifact_rows",
    "marketplace_rows",
    "merge_changes",
    "metadata_rows",
    "outdated_for",
]

ARTIFACT_KEY = ("project_id", "type", "name")
MARKETPLACE_COLUMNS = frozenset({"id", "name", "type", "url", "description", "version", "source", "cached_at", "data"})
_TEXT = ("id", "project_id", "name", "source", "deployed_version", "upstream_version", "content_hash")


def _check_columns(row: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(row) - allowed)
    if unknown:
        raise ValidationError(unknown[0], "is not a column that can be written here")


def _check_artifact_values(row: dict[str, Any]) -> None:
    for key in _TEXT:
        if key in row:
            check_text(key, row[key], required=key in ("id", "project_id", "name"))
    if "type" in row and row["type"] not in ARTIFACT_TYPES:
        raise ValidationError("type", f"must be one of {', '.join(ARTIFACT_TYPES)}, got {row['type']!r}")
    if "local_modified" in row and not isinstance(row["local_modified"], bool):
        raise ValidationError("local_modified", "must be true or false")
    for key in ("created_at", "updated_at"):
        if key in row:
            row[key] = ensure_utc(row[key], key)


def artifact_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated copies of upsert rows, one per natural key (the last row wins)."""
    by_key: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        _check_columns(row, ARTIFACT_BULK_COLUMNS)
        out = dict(row)
        out.pop("is_outdated", None)
        for key in ARTIFACT_KEY:
            if out.get(key) is None:
                raise ValidationError(key, "is required")
        _check_artifact_values(out)
        key = (out["project_id"], out["type"], out["name"])
        by_key.pop(key, None)  # keep the position of the winning row
        by_key[key] = out
    return list(by_key.values())


def artifact_change(change: Mapping[str, Any]) -> dict[str, Any]:
    """A validated copy of one update_many change."""
    _check_columns(change, ARTIFACT_BULK_COLUMNS)
    out = dict(change)
    out.pop("is_outdated", None)
    out.pop("created_at", None)
    if out.get("id") is None:
        raise ValidationError("id", "is required")
    for key in ("project_id", "type", "name"):
        if key in out and out[key] is None:
            raise ValidationError(key, "is required")
    _check_artifact_values(out)
    return out


def merge_changes(changes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated update_many changes, one per id: later changes for an id override
    earlier ones column by column, as if applied in order.
    """
    by_id: dict[str, dict[str, Any]] = {}
    for change in changes:
        out = artifact_change(change)
        by_id.setdefault(out["id"], {}).update(out)
    return list(by_id.values())


METADATA_COLUMNS = frozenset({"artifact_id", "data", "description", "tags", "aliases"})


def metadata_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated, complete metadata rows, one per artifact (the last row wins)."""
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        _check_columns(row, METADATA_COLUMNS)
        artifact_id = check_text("artifact_id", row.get("artifact_id"), required=True)
        by_id.pop(artifact_id, None)
        by_id[artifact_id] = {
            "artifact_id": artifact_id,
            "data": check_json("data", row.get("data")),
            "description": check_text("description", row.get("description")),
            "tags": normalise_labels("tags", row.get("tags")),
            "aliases": normalise_labels("aliases", row.get("aliases")),
        }
    return list(by_id.values())


def outdated_for(row: Mapping[str, Any], stored: tuple[str | None, str | None] | None) -> bool:
    """``is_outdated`` for a row, taking versions it does not carry from ``stored``."""
    deployed = row["deployed_version"] if "deployed_version" in row else (stored[0] if stored else None)
    upstream = row["upstream_version"] if "upstream_version" in row else (stored[1] if stored else None)
    return derive_outdated(deployed, upstream)


def marketplace_rows(rows: Iterable[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Validated copies of marketplace rows, one per id (the last row wins)."""
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        _check_columns(row, MARKETPLACE_COLUMNS)
        out = dict(row)
        for key in ("id", "name", "type"):
            if out.get(key) is None:
                raise ValidationError(key, "is required")
        for key in ("id", "name", "url", "description", "version", "source"):
            if key in out:
                check_text(key, out[key], required=key in ("id", "name"))
        if out["type"] not in ARTIFACT_TYPES:
            raise ValidationError("type", f"must be one of {', '.join(ARTIFACT_TYPES)}, got {out['type']!r}")
        out["cached_at"] = ensure_utc(out["cached_at"], "cached_at") if out.get("cached_at") else now
        if "data" in out:
            out["data"] = check_json("data", out["data"])
        by_id.pop(out["id"], None)
        by_id[out["id"]] = out
    return list(by_id.values())

"""Validation and normalisation of the plain rows the bulk paths take.

Shared by the SQLAlchemy repositories and the fakes, so both accept and refuse the
same input.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint

from ..errors import ValidationError
from ..models import (
    TEXT_LIMITS,
    Artifact,
    MarketplaceEntry,
    check_artifact_path,
    check_json,
    check_text,
    derive_outdated,
    normalise_labels,
)
from ..values import ARTIFACT_TYPES, ascii_lower, check_choice, default_artifact_path, ensure_utc
from .base import ARTIFACT_BULK_COLUMNS

__all__ = [
    "ARTIFACT_KEY",
    "MARKETPLACE_COLUMNS",
    "artifact_change",
    "artifact_rows",
    "ascii_lower",
    "artifact_type_filter",
    "lookup_key",
    "lookup_keys",
    "marketplace_rows",
    "merge_changes",
    "metadata_params",
    "metadata_values",
    "metadata_rows",
    "outdated_for",
    "page_bounds",
]

# The artifacts' natural key (the table's unique constraint, in its column order) and the
# columns a marketplace row may carry: read from the tables, not listed again here.
ARTIFACT_KEY: tuple[str, ...] = next(
    tuple(column.name for column in constraint.columns)
    for constraint in Artifact.__table__.constraints
    if isinstance(constraint, UniqueConstraint)
)
MARKETPLACE_COLUMNS = frozenset(column.name for column in MarketplaceEntry.__table__.columns)
_TEXT = ("id", "project_id", "name", "source", "deployed_version", "upstream_version", "content_hash")
_REQUIRED_TEXT = ("id", "project_id", "name")
_OPTIONAL_TEXT = ("source", "deployed_version", "upstream_version", "content_hash")
_TYPES = frozenset(ARTIFACT_TYPES)
_BOOL = frozenset({bool})

# The fast paths below validate a whole batch with a few C-level calls per column and
# answer only "all valid"; on any doubt they return None and the row-by-row checks run,
# which raise exactly the error (field, message, first bad row) they always raised.


def _all_text(values: list[Any], required: bool, limit: int | None = None) -> bool:
    """True when every value is a str without NUL or unpaired surrogate (and, when
    required, not blank; when ``limit`` is given, at most that many UTF-8 bytes): what
    :func:`check_text` accepts.
    """
    try:
        joined = "".join(values)  # TypeError on anything that is not a str (None too)
    except TypeError:
        return False
    if "\x00" in joined:
        return False
    ascii_only = joined.isascii()
    if not ascii_only:
        try:
            joined.encode("utf-8")
        except UnicodeEncodeError:
            return False
    # A character is at most 4 UTF-8 bytes: only long non-ASCII values need encoding.
    if (
        limit is not None
        and values
        and max(map(len, values)) * (1 if ascii_only else 4) > limit
        and any(len(v.encode("utf-8")) > limit for v in values)
    ):
        return False
    return not required or all(map(str.strip, values))


def _optional_text(values: list[Any], limit: int | None = None) -> bool:
    return _all_text([v for v in values if v is not None], False, limit)


def _artifact_values_ok(rows: list[dict[str, Any]], columns: set[str]) -> bool:
    """The batch form of :func:`_check_artifact_values` (timestamps excepted)."""
    for key in _REQUIRED_TEXT:
        if key in columns and not _all_text([r[key] for r in rows if key in r], True, TEXT_LIMITS.get(key)):
            return False
    for key in _OPTIONAL_TEXT:
        if key in columns and not _optional_text([r[key] for r in rows if key in r], TEXT_LIMITS.get(key)):
            return False
    if "type" in columns:
        try:
            if not _TYPES.issuperset([r["type"] for r in rows if "type" in r]):
                return False
        except TypeError:  # unhashable
            return False
    if "local_modified" not in columns:
        return True
    return _BOOL.issuperset(map(type, [r["local_modified"] for r in rows if "local_modified" in r]))


def _columns_of(rows: list[dict[str, Any]]) -> set[str]:
    columns: set[str] = set()
    for shape in {tuple(r) for r in rows}:
        columns.update(shape)
    return columns


def _convert_timestamps(rows: list[dict[str, Any]], columns: set[str]) -> None:
    # Row by row, in the order the row-by-row checks use, so the same row's error wins.
    keys = [key for key in ("created_at", "updated_at") if key in columns]
    if keys:
        for row in rows:
            for key in keys:
                if key in row:
                    row[key] = ensure_utc(row[key], key)


def _artifact_rows_fast(rows: list[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    out = [dict(r) for r in rows]
    if not all(map(ARTIFACT_BULK_COLUMNS.issuperset, out)):
        return None
    for row in out:
        row.pop("is_outdated", None)
    try:
        keys = [(r["project_id"], r["type"], r["path"], r["name"]) for r in out]
    except KeyError:
        return None
    columns = _columns_of(out)
    if not _artifact_values_ok(out, columns) or not _paths_ok([r["path"] for r in out]):
        return None
    if len(set(keys)) != len(keys):
        return None  # repeated keys: the row-by-row path keeps the last of each
    _convert_timestamps(out, columns)
    return out


def page_bounds(limit: Any, offset: Any) -> tuple[int | None, int]:
    """``limit`` (None: no limit) and ``offset`` of a list, checked: whole numbers, not negative."""
    for field, value in (("limit", limit), ("offset", offset)):
        if value is None and field == "limit":
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValidationError(field, f"expected a whole number, got {type(value).__name__}")
        if value < 0:
            raise ValidationError(field, "must not be negative")
    return limit, offset


def lookup_key(field: str, value: Any) -> str:
    """A key to look rows up by (an id, a path, a name): text that could be stored, so a
    bad type, blank text, a NUL byte or an unpaired surrogate raise ValidationError on
    every backend alike; a key over its length limit is allowed and simply matches nothing.
    """
    return check_text(field, value, required=True, lookup=True)  # type: ignore[no-any-return]


def lookup_keys(field: str, values: Iterable[Any]) -> list[str]:
    """:func:`lookup_key` for each of ``values``, duplicates dropped, order kept."""
    if isinstance(values, (str, bytes)):
        raise ValidationError(field, "expected a collection of keys, got a single text")
    return list(dict.fromkeys([lookup_key(field, value) for value in values]))


def artifact_type_filter(value: Any) -> str:
    """An artifact type to filter by: one of ``ARTIFACT_TYPES``, else ValidationError."""
    return check_choice("type", value, ARTIFACT_TYPES)


def search_filters(text: Any, project_id: Any, type: Any) -> None:
    """Check the arguments of ``ArtifactRepository.search`` (every implementation, in the
    same order, so that they raise the same error first).
    """
    check_text("text", text)
    if project_id is not None:
        lookup_key("project_id", project_id)
    if type is not None:
        artifact_type_filter(type)


def _check_columns(row: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(row) - allowed)
    if unknown:
        raise ValidationError(unknown[0], "is not a column that can be written here")


def _check_artifact_values(row: dict[str, Any]) -> None:
    for key in _TEXT:
        if key in row:
            check_text(key, row[key], required=key in ("id", "project_id", "name"))
    if "type" in row:
        check_choice("type", row["type"], ARTIFACT_TYPES)
    if "path" in row:
        check_artifact_path(row["path"])
    if "local_modified" in row and not isinstance(row["local_modified"], bool):
        raise ValidationError("local_modified", "must be true or false")
    for key in ("created_at", "updated_at"):
        if key in row:
            row[key] = ensure_utc(row[key], key)


def _with_paths(rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows without a path get their conventional one (when type and name allow it)."""
    out: list[Mapping[str, Any]] = []
    for row in rows:
        type_ = row.get("type")
        if row.get("path") is None and isinstance(type_, str) and type_ in _TYPES and isinstance(row.get("name"), str):
            row = {**row, "path": default_artifact_path(row["type"], row["name"])}
        out.append(row)
    return out


def _paths_ok(paths: list[Any]) -> bool:
    """The batch form of :func:`check_artifact_path` (answers only "all valid")."""
    if not _all_text(paths, True, TEXT_LIMITS["path"]):
        return False
    if "//" in "\n".join(paths):
        return False
    return not any(p.startswith("/") or p.endswith("/") or "." in p.split("/") or ".." in p.split("/") for p in paths)


def artifact_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated copies of upsert rows, one per natural key (the last row wins); a row
    without ``path`` gets the conventional one of its type and name.
    """
    rows = _with_paths(rows if isinstance(rows, list) else list(rows))
    try:
        fast = _artifact_rows_fast(rows)
    except Exception:  # unhashable values and the like: let the row-by-row path explain
        fast = None
    if fast is not None:
        return fast
    by_key: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row in rows:
        _check_columns(row, ARTIFACT_BULK_COLUMNS)
        out = dict(row)
        out.pop("is_outdated", None)
        for key in ("project_id", "type", "name"):
            if out.get(key) is None:
                raise ValidationError(key, "is required")
        _check_artifact_values(out)
        if out.get("path") is None:
            out["path"] = check_artifact_path(default_artifact_path(out["type"], out["name"]))
        key = (out["project_id"], out["type"], out["path"], out["name"])
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
    for key in ("project_id", "type", "path", "name"):
        if key in out and out[key] is None:
            raise ValidationError(key, "is required")
    _check_artifact_values(out)
    return out


def _merge_changes_fast(changes: list[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    out = [dict(c) for c in changes]
    if not all(map(ARTIFACT_BULK_COLUMNS.issuperset, out)):
        return None
    for change in out:
        change.pop("is_outdated", None)
        change.pop("created_at", None)
    ids = [c.get("id") for c in out]
    if len(set(ids)) != len(ids):
        return None  # repeated ids: merged column by column below
    columns = _columns_of(out)
    for key in ("project_id", "type", "path", "name"):
        if key in columns and any(c[key] is None for c in out if key in c):
            return None
    if "path" in columns and not _paths_ok([c["path"] for c in out if "path" in c]):
        return None
    if not _all_text(ids, True, TEXT_LIMITS["id"]) or not _artifact_values_ok(out, columns):
        return None
    _convert_timestamps(out, columns)
    return out


def merge_changes(changes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated update_many changes, one per id: later changes for an id override
    earlier ones column by column, as if applied in order.
    """
    changes = changes if isinstance(changes, list) else list(changes)
    try:
        fast = _merge_changes_fast(changes)
    except Exception:
        fast = None
    if fast is not None:
        return fast
    by_id: dict[str, dict[str, Any]] = {}
    for change in changes:
        out = artifact_change(change)
        by_id.setdefault(out["id"], {}).update(out)
    return list(by_id.values())


def _label_list(field: str, value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValidationError(field, "expected a list of strings")
    return list(value)


def metadata_values(data: Any, description: Any, tags: Any, aliases: Any) -> dict[str, Any]:
    """The arguments of ``MetadataRepository.set`` as column values, ready for the model
    (which validates them): a mapping copied, any other ``data`` left for the model to
    refuse; tags and aliases as lists (None: empty; a single text: ValidationError).
    """
    return {
        "data": dict(data) if isinstance(data, Mapping) else data,
        "description": description,
        "tags": _label_list("tags", tags),
        "aliases": _label_list("aliases", aliases),
    }


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


# (artifact_id, data as JSON text or None, description, tags, tags as JSON text, aliases,
# aliases as JSON text): a metadata row ready for SQL.
MetadataParams = tuple[str, str | None, str | None, list[str], str, list[str], str]
_strict_json = json.JSONEncoder(allow_nan=False).encode  # json.dumps(value, allow_nan=False)
_dumps = json.dumps


def _labels_fast(value: Any, limit: int | None) -> list[str] | None:
    if value is None:
        return []
    if type(value) is not list and type(value) is not tuple:
        return None
    if not _all_text(list(value), True, limit):
        return None
    return list(dict.fromkeys(value))


def _metadata_params_fast(rows: list[Mapping[str, Any]]) -> list[MetadataParams] | None:
    if not all(map(METADATA_COLUMNS.issuperset, rows)):
        return None
    ids = [r.get("artifact_id") for r in rows]
    if not _all_text(ids, True, TEXT_LIMITS["artifact_id"]) or len(set(ids)) != len(ids):
        return None
    descriptions = [r.get("description") for r in rows]
    if not _optional_text(descriptions):
        return None
    out: list[MetadataParams] = []
    for row, artifact_id, description in zip(rows, ids, descriptions, strict=True):
        data = row.get("data")
        if data is None:
            text = None
        elif isinstance(data, dict):
            try:
                text = _strict_json(data)
            except (TypeError, ValueError):
                return None
        else:
            return None
        tags = _labels_fast(row.get("tags"), TEXT_LIMITS["tags"])
        aliases = _labels_fast(row.get("aliases"), None)
        if tags is None or aliases is None:
            return None
        out.append((artifact_id, text, description, tags, _dumps(tags), aliases, _dumps(aliases)))
    return out


def metadata_params(rows: Iterable[Mapping[str, Any]]) -> list[MetadataParams]:
    """The rows of :func:`metadata_rows` (same checks, same errors, one per artifact, the
    last row wins) with the JSON documents serialised as SQL stores them.
    """
    rows = rows if isinstance(rows, list) else list(rows)
    try:
        fast = _metadata_params_fast(rows)
    except Exception:
        fast = None
    if fast is not None:
        return fast
    return [
        (
            r["artifact_id"],
            None if r["data"] is None else _dumps(r["data"]),
            r["description"],
            r["tags"],
            _dumps(r["tags"]),
            r["aliases"],
            _dumps(r["aliases"]),
        )
        for r in metadata_rows(rows)
    ]


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
        check_choice("type", out["type"], ARTIFACT_TYPES)
        out["cached_at"] = ensure_utc(out["cached_at"], "cached_at") if out.get("cached_at") else now
        if "data" in out:
            out["data"] = check_json("data", out["data"])
        by_id.pop(out["id"], None)
        by_id[out["id"]] = out
    return list(by_id.values())

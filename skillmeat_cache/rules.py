"""The rules a stored row must keep, checked on rows as a driver returns them.

One definition for ``skillmeat-cache check`` (which reports the rows that break them) and
``skillmeat-cache repair`` (which keeps only the rows that keep them, and recomputes what
is derived). Rows come as plain dicts of column values: SQLite's raw values (timestamps
and JSON as text, booleans as 0/1) or psycopg's (aware datetimes, parsed JSON, bools).
The rules are those the models enforce on the way in (``values``): types and statuses
from the one vocabulary, text that can be stored, absolute project paths, relative
artifact paths, JSON columns that parse to the document they must be, timestamps that
are aware (or SQLite's naive UTC text), and ``is_outdated`` derived from the versions.
No ORM, no SQLAlchemy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from .errors import ValidationError
from .values import (
    ARTIFACT_TYPES,
    PROJECT_STATUSES,
    ascii_lower,
    check_artifact_path,
    check_choice,
    check_json,
    check_text,
    check_warnings,
    derive_outdated,
    ensure_utc,
    normalise_labels,
    sqlite_timestamp,
    timestamp_from_sqlite,
)

__all__ = ["KEYS", "RULE_TABLES", "check_row", "search_row", "tag_rows"]

Row = dict[str, Any]
# A column's rule: the value as SQLite would store it (text for JSON and timestamps), or
# ValidationError. ``None`` is handled before: see _nullable.
Rule = Callable[[str, Any], Any]


def _text(required: bool) -> Rule:
    return lambda field, value: check_text(field, value, required=required)


def _absolute(field: str, value: Any) -> Any:
    check_text(field, value, required=True)
    if not os.path.isabs(value):
        raise ValidationError(field, f"must be an absolute path, got {value!r}")
    return value


def _choice(choices: tuple[str, ...]) -> Rule:
    return lambda field, value: check_choice(field, value, choices)


def _timestamp(field: str, value: Any) -> str | None:
    if isinstance(value, datetime):
        return sqlite_timestamp(ensure_utc(value, field))
    if not isinstance(value, str):
        raise ValidationError(field, f"expected a timestamp, got {type(value).__name__}")
    try:
        return sqlite_timestamp(timestamp_from_sqlite(value))
    except (TypeError, ValueError):
        raise ValidationError(field, f"is not a timestamp: {value[:40]!r}") from None


def _parsed(field: str, value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            raise ValidationError(field, "is not valid JSON") from None
    return value


def _document(field: str, value: Any) -> str | None:
    document = check_json(field, _parsed(field, value))
    return None if document is None else json.dumps(document)


def _labels(field: str, value: Any) -> str:
    parsed = _parsed(field, value)
    if parsed is not None and not isinstance(parsed, list):
        raise ValidationError(field, f"expected a JSON list, got {type(parsed).__name__}")
    return json.dumps(normalise_labels(field, parsed))


def _warnings(field: str, value: Any) -> str | None:
    warnings = check_warnings(_parsed(field, value))
    return None if warnings is None else json.dumps(warnings)


def _boolean(field: str, value: Any) -> int:
    if value in (0, 1) and not isinstance(value, float):  # True/False and SQLite's 0/1
        return int(value)
    raise ValidationError(field, f"expected a boolean, got {value!r}")


# (rule, required) per column. Columns not listed (a newer revision's) are kept as read.
_RULES: dict[str, dict[str, tuple[Rule, bool]]] = {
    "projects": {
        "id": (_text(True), True),
        "name": (_text(True), True),
        "path": (_absolute, True),
        "description": (_text(False), False),
        "created_at": (_timestamp, True),
        "updated_at": (_timestamp, True),
        "last_fetched": (_timestamp, False),
        "status": (_choice(PROJECT_STATUSES), True),
        "error_message": (_text(False), False),
        "fingerprint": (_text(False), False),
        "warnings": (_warnings, False),
    },
    "artifacts": {
        "id": (_text(True), True),
        "project_id": (_text(True), True),
        "name": (_text(True), True),
        "type": (_choice(ARTIFACT_TYPES), True),
        "path": (lambda _field, value: check_artifact_path(value), True),
        "source": (_text(False), False),
        "deployed_version": (_text(False), False),
        "upstream_version": (_text(False), False),
        "is_outdated": (_boolean, True),
        "local_modified": (_boolean, True),
        "content_hash": (_text(False), False),
        "created_at": (_timestamp, True),
        "updated_at": (_timestamp, True),
    },
    "artifact_metadata": {
        "artifact_id": (_text(True), True),
        "metadata": (_document, False),
        "description": (_text(False), False),
        "tags": (_labels, False),
        "aliases": (_labels, False),
    },
    "marketplace": {
        "id": (_text(True), True),
        "name": (_text(True), True),
        "type": (_choice(ARTIFACT_TYPES), True),
        "url": (_text(False), False),
        "description": (_text(False), False),
        "version": (_text(False), False),
        "source": (_text(False), False),
        "cached_at": (_timestamp, True),
        "data": (_document, False),
    },
    "cache_metadata": {
        "key": (_text(True), True),
        "value": (_text(False), True),
        "updated_at": (_timestamp, True),
    },
}
RULE_TABLES: tuple[str, ...] = tuple(_RULES)
#: The column(s) that name a row of each table in a report.
KEYS: dict[str, str] = {"artifact_metadata": "artifact_id", "cache_metadata": "key"}


def check_row(table: str, row: Row) -> tuple[Row, list[str]]:
    """``row`` as SQLite stores it (timestamps as naive UTC text, JSON as text, booleans
    as 0/1, ``is_outdated`` derived from the versions), and the rules it breaks, one
    message each (``"type: must be one of ..."``). A derived value that disagrees is a
    problem too, and the returned row holds the right one.
    """
    rules = _RULES[table]
    out = dict(row)
    problems = []
    for column, (rule, required) in rules.items():
        if column not in row:
            continue
        value = row[column]
        if value is None:
            if required:
                problems.append(f"{column}: is required")
            continue
        try:
            out[column] = rule(column, value)
        except ValidationError as exc:
            problems.append(str(exc))
    if table == "artifacts" and not problems:
        derived = derive_outdated(out.get("deployed_version"), out.get("upstream_version"))
        if out.get("is_outdated") != int(derived):
            problems.append(f"is_outdated: is {bool(out.get('is_outdated'))}, its versions say {derived}")
            out["is_outdated"] = int(derived)
    return out, problems


def _tags(value: Any) -> list[str]:
    try:
        parsed = _parsed("tags", value)
    except ValidationError:
        return []
    return [t for t in parsed if isinstance(t, str)] if isinstance(parsed, list) else []


def search_row(artifact: Row, project_path: str, meta: Row | None) -> tuple[Any, ...]:
    """The ``artifact_search`` row (without its id) the triggers of revision 0007 keep
    for ``artifact``: its listing keys, its name, description and tags with ASCII letters
    lowered, each tag between U+001E marks.
    """
    description = (meta or {}).get("description") or ""
    tags = [ascii_lower(t) for t in _tags((meta or {}).get("tags"))]
    return (
        artifact["id"],
        artifact["project_id"],
        project_path,
        artifact["type"],
        artifact["name"],
        artifact["path"],
        ascii_lower(artifact["name"]),
        ascii_lower(description),
        "\x1e" + "\x1e".join(tags) + "\x1e" if tags else "",
    )


def tag_rows(metadata: Iterable[Row]) -> set[tuple[str, str]]:
    """The ``artifact_tags`` rows (artifact_id, tag) that metadata rows' tags make."""
    return {(m["artifact_id"], tag) for m in metadata for tag in dict.fromkeys(_tags(m.get("tags")))}

"""Plain values and checks shared by the ORM models, the repositories, the fakes and the
read models (:mod:`.views`).

Nothing here imports the ORM, so the read path can use the same vocabulary, the same
checks and the same timestamp conversions as the models without configuring a mapper.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .errors import ValidationError

__all__ = [
    "ARTIFACT_TYPES",
    "PROJECT_STATUSES",
    "ascii_lower",
    "aware_utc",
    "TEXT_LIMITS",
    "check_artifact_path",
    "check_json",
    "check_warnings",
    "normalise_labels",
    "check_choice",
    "check_text",
    "is_inside",
    "derive_outdated",
    "new_id",
    "default_artifact_path",
    "ensure_utc",
    "sqlite_timestamp",
    "timestamp_from_sqlite",
    "utc_from_driver",
    "utcnow",
]

ARTIFACT_TYPES: tuple[str, ...] = ("skill", "agent", "command", "mcp", "hook")
PROJECT_STATUSES: tuple[str, ...] = ("active", "stale", "error")


_CONVENTIONAL_PATHS = {
    "skill": ".claude/skills/{}",
    "agent": ".claude/agents/{}.md",
    "command": ".claude/commands/{}.md",
    "hook": ".claude/hooks/{}",
    "mcp": ".claude/mcp/{}",
}


def default_artifact_path(type: str, name: str) -> str:
    """Where an artifact of ``type`` named ``name`` conventionally lives in a project (its
    path when none is given, and what revision 0005 filled in for rows older than paths).
    """
    return _CONVENTIONAL_PATHS[type].format(name)


def check_choice(field: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` when it is one of ``choices``; ValidationError naming ``field`` otherwise."""
    if not isinstance(value, str) or value not in choices:
        raise ValidationError(field, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def ensure_utc(value: datetime, field: str = "timestamp") -> datetime:
    """Return ``value`` converted to UTC; raise ValidationError for a naive datetime."""
    if not isinstance(value, datetime):
        raise ValidationError(field, f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(field, "naive datetime; give a timezone-aware one (e.g. UTC)")
    return value.astimezone(UTC)


def aware_utc(value: datetime | None) -> datetime | None:
    """A timestamp to bind on PostgreSQL: aware UTC (None stays None)."""
    return None if value is None else ensure_utc(value)


def sqlite_timestamp(value: datetime | None) -> str | None:
    """A timestamp as SQLAlchemy's SQLite DATETIME stores it, in UTC without an offset:
    ``YYYY-MM-DD HH:MM:SS.ffffff``.
    """
    if value is None:
        return None
    return ensure_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


_fromisoformat = datetime.fromisoformat


def timestamp_from_sqlite(value: Any) -> datetime | None:
    """What SQLite stored (naive UTC text), as an aware UTC datetime."""
    if value is None:
        return None
    try:
        # One C call for our own format (and for CURRENT_TIMESTAMP's).
        return _fromisoformat(value + "+00:00")
    except (TypeError, ValueError):
        parsed = _fromisoformat(value)  # text written with an offset (or "Z") by someone else
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def utc_from_driver(value: datetime | None) -> datetime | None:
    """A timestamp as a driver returned it (PostgreSQL: aware), as an aware UTC datetime."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def new_id() -> str:
    """A new random text id (32 hex digits)."""
    return uuid.uuid4().hex


def derive_outdated(deployed: str | None, upstream: str | None) -> bool:
    """Whether an artifact at ``deployed`` is behind ``upstream``.

    Unknown (None) on either side: not outdated. Both parse as versions (PEP 440):
    outdated when upstream is newer. Otherwise: outdated when the two differ.
    """
    if deployed is None or upstream is None:
        return False
    from packaging.version import InvalidVersion, Version  # only writers need it: keeps reads light

    try:
        return Version(upstream) > Version(deployed)
    except InvalidVersion:
        return deployed != upstream


# Longest value (UTF-8 bytes) of each field that is, or is part of, an index key.
# PostgreSQL's btree refuses an index row over ~2.7 kB, so without a limit a long name
# would be stored on SQLite (and by the fake) but refused on PostgreSQL. Names and ids
# get the 255 bytes a file name may have; a path gets 2,048 bytes.
TEXT_LIMITS: dict[str, int] = {
    "id": 255,
    "project_id": 255,
    "artifact_id": 255,
    "key": 255,
    "name": 255,
    "tags": 255,
    "tag": 255,
    "path": 2048,
}


def check_text(field: str, value: Any, *, required: bool = False, lookup: bool = False) -> Any:
    """Validate a text value: a str without NUL bytes or unpaired surrogates; non-blank
    when required; no longer than ``TEXT_LIMITS[field]`` UTF-8 bytes for indexed fields
    unless it is only a ``lookup`` key (too long to be stored, so simply not found).
    Returns it unchanged.
    """
    if value is None:
        if required:
            raise ValidationError(field, "is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(field, f"expected text, got {type(value).__name__}")
    if required and not value.strip():
        raise ValidationError(field, "must not be empty")
    if "\x00" in value:
        raise ValidationError(field, "contains a NUL byte")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError(field, "is not valid Unicode (unpaired surrogate)") from None
    limit = None if lookup else TEXT_LIMITS.get(field)
    if limit is not None and size > limit:
        raise ValidationError(field, f"is {size} bytes long; at most {limit} bytes (UTF-8) are allowed")
    return value


def check_artifact_path(value: Any) -> str:
    """Validate an artifact's path: text (see :func:`check_text`, at most
    ``TEXT_LIMITS["path"]`` bytes), relative to its project folder, POSIX, with no empty,
    ``.`` or ``..`` component (a backslash is an ordinary character of a file name).
    Returns it unchanged.
    """
    check_text("path", value, required=True)
    if value.startswith("/"):
        raise ValidationError("path", f"must be a relative POSIX path inside the project, got {value!r}")
    if any(part in ("", ".", "..") for part in value.split("/")):
        raise ValidationError("path", f"must not hold empty, '.' or '..' components, got {value!r}")
    return value  # type: ignore[no-any-return]


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(value: str) -> str:
    """``value`` with A-Z lowered and every other character kept: the case folding of
    search on every backend (SQLite's ``lower()``; PostgreSQL's under ``COLLATE "C"``).
    """
    return value.translate(_ASCII_LOWER)


def check_warnings(value: Any) -> list[dict[str, str]] | None:
    """Validate a project's stored scan warnings: None, or a list of ``{"path": text,
    "message": text}`` objects (copied).
    """
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise ValidationError("warnings", f"expected a list, got {type(value).__name__}")
    out = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"path", "message"}:
            raise ValidationError("warnings", "each warning must be an object with 'path' and 'message'")
        path = check_text("path", item["path"], lookup=True)  # a warning's path is never an index key
        out.append({"path": path, "message": check_text("message", item["message"])})
    return out


def check_json(field: str, value: Any) -> Any:
    """Validate a JSON document (a mapping or None) and return it as JSON would give it
    back: tuples become lists, keys become strings. Anything else raises ValidationError.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(field, f"expected a mapping (JSON object), got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValidationError(field, f"cannot be stored as JSON: {exc}") from None


def normalise_labels(field: str, value: Any) -> list[str]:
    """Validate a list of tags or aliases: text items, kept as written, duplicates dropped."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValidationError(field, "expected a list of strings")
    for item in value:
        check_text(field, item, required=True)
    return list(dict.fromkeys(value))


def is_inside(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or lies below it (both absolute, as text; a sibling
    that only shares a prefix, ``/a/bc`` for ``/a/b``, is not inside).
    """
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)

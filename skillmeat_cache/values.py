"""Plain values and checks shared by the ORM models, the repositories, the fakes and the
read models (:mod:`.views`).

Nothing here imports the ORM, so the read path can use the same vocabulary, the same
checks and the same timestamp conversions as the models without configuring a mapper.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .errors import ValidationError

__all__ = [
    "ARTIFACT_TYPES",
    "PROJECT_STATUSES",
    "aware_utc",
    "check_choice",
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

"""Durations as the command line writes them (``90s``, ``30m``, ``6h``, ``7d``, ``2w``).

Kept apart from the services so that read-only commands import nothing heavy.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .errors import ValidationError

__all__ = ["parse_duration"]


def parse_duration(text: str) -> timedelta:
    """A duration like ``90s``, ``30m``, ``6h``, ``7d`` (or ``2w``)."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    value = text.strip().lower()
    number = value[:-1]
    # ASCII digits only: str.isdigit() also accepts "²" or "٣", which int() then refuses or reads.
    if len(value) < 2 or value[-1] not in units or not (number.isascii() and number.isdigit()):
        raise ValidationError("duration", f"expected a number and a unit (s, m, h, d, w), like 30m or 7d; got {text!r}")
    if len(number) > 12:  # already past year 1 in seconds; int() would refuse over 4,300 digits
        raise ValidationError("duration", f"{text[:20]!r}... is too long (it reaches back before year 1)")
    try:
        duration = timedelta(**{units[value[-1]]: int(number)})
        datetime.now(UTC) - duration  # a cut-off before year 1 cannot be compared either
    except OverflowError:
        raise ValidationError("duration", f"{text!r} is too long (it reaches back before year 1)") from None
    return duration

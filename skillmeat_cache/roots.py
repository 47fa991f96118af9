"""The scan roots the cache remembers (``cache_metadata`` key ``scan_roots``): what a
server keeps fresh besides the roots it is given, and what ``repair`` will rebuild from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .uow import AbstractUnitOfWork

__all__ = ["ROOTS_KEY", "decode_roots", "remember_roots", "remembered_roots"]

ROOTS_KEY = "scan_roots"


def decode_roots(value: str | None) -> list[str]:
    """The roots a stored ``scan_roots`` value names (none when it is not ours)."""
    try:
        roots = json.loads(value) if value else []
    except ValueError:  # written by something else: start again
        return []
    return [r for r in roots if isinstance(r, str)] if isinstance(roots, list) else []


def remembered_roots(uow_factory: Callable[..., AbstractUnitOfWork]) -> list[str]:
    """The roots of earlier scans, oldest first."""
    with uow_factory(read_only=True) as uow:
        return decode_roots(uow.metadata.get_value(ROOTS_KEY))


def remember_roots(uow_factory: Callable[..., AbstractUnitOfWork], roots: Iterable[Path | str]) -> list[str]:
    """Add ``roots`` (made absolute and resolved; folders only) to the remembered ones; all of them."""
    new = [str(Path(os.fspath(r)).expanduser().resolve()) for r in roots]
    new = [r for r in new if Path(r).is_dir()]
    with uow_factory() as uow:
        known = decode_roots(uow.metadata.get_value(ROOTS_KEY))
        merged: list[Any] = known + [r for r in dict.fromkeys(new) if r not in known]
        if merged != known:
            uow.metadata.set_value(ROOTS_KEY, json.dumps(merged))
        return merged

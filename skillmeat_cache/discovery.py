"""Finding project folders under roots (see :func:`discover_projects`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from .formats import (
    is_valid_text,
)
from .layout import _SKIPPED_DIRS, ScanWarning, _collector, _Warn
from .profiles import PROFILE_ROOTS
from .profiles import is_profile as _is_profile

# --------------------------------------------------------------------------- discovery


def discover_projects(
    roots: Iterable[Path | str] | Path | str,
    max_depth: int = 5,
    warnings: list[ScanWarning] | None = None,
) -> Iterator[Path]:
    """Yield the resolved path of every project folder (see :func:`is_project_folder`) under ``roots``.

    A generator: folders are read one at a time with ``os.scandir`` and only the pending
    siblings of the current folder's ancestors are kept, never the whole tree.

    - Each root is level 0 and is itself yielded when it is a project; a folder at most
      ``max_depth`` levels below a root is examined (``max_depth=0``: only the root).
    - Nested projects (a project below a project folder) are found. A project's own
      profile folders are not walked (they are hidden; :func:`read_project` reads them).
    - Not descended into: hidden folders (name starting with "."), ``.git``,
      ``node_modules``, ``__pycache__``, ``venv``/``.venv`` and any folder holding a
      ``pyvenv.cfg`` (a virtualenv). These rules apply below a root, not to a root itself.
    - Symlinks: symlinked folders are never followed (so a link can neither lead out of a
      root nor form a loop); a symlinked profile folder still marks its folder as a project
      (:func:`read_project` checks where it leads). A root given as a symlink is resolved.
    - Order: depth first, entries sorted by name within each folder, a project before the
      projects nested in it. Each resolved path is yielded once, across all roots.
    - A root that does not exist or is not a folder, an unreadable folder, and a root or
      folder whose path is not valid UTF-8 text (it could not be stored) each give a
      :class:`ScanWarning`, appended to ``warnings`` when a list is given; never an exception.

    Raises ValueError for a negative ``max_depth``.
    """
    if max_depth < 0:
        raise ValueError(f"max_depth must be >= 0, got {max_depth}")
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    return _discover(roots, max_depth, _collector(warnings))


def _discover(roots: Iterable[Path | str], max_depth: int, warn: _Warn) -> Iterator[Path]:
    seen: set[str] = set()
    for root in roots:
        raw = os.fspath(root)
        if "\x00" in raw:
            warn(raw.replace("\x00", "\\x00"), "root not scanned: its path holds a NUL byte")
            continue
        real = os.path.realpath(os.path.abspath(raw))
        if not is_valid_text(real):
            warn(os.path.abspath(raw), "root not scanned: its path is not valid UTF-8 text (it could not be stored)")
            continue
        try:
            is_dir = stat.S_ISDIR(os.stat(real).st_mode)
        except OSError as exc:
            reason = "does not exist" if isinstance(exc, FileNotFoundError) else exc.strerror or exc
            warn(os.path.abspath(raw), f"root not scanned: {reason}")
            continue
        if not is_dir:
            warn(os.path.abspath(raw), "root not scanned: not a folder")
            continue
        yield from _walk_root(real, max_depth, warn, seen)


def _walk_root(root: str, max_depth: int, warn: _Warn, seen: set[str]) -> Iterator[Path]:
    stack: list[tuple[str, int]] = [(root, 0)]
    while stack:
        folder, level = stack.pop()
        try:
            with os.scandir(folder) as listing:
                kind, subdirs = _classify(listing, venv_check=level > 0, descend=level < max_depth)
        except OSError as exc:
            warn(folder, f"folder not scanned: {exc.strerror or exc}")
            continue
        if kind == "venv":
            continue
        if kind == "project" and folder not in seen:
            seen.add(folder)
            yield Path(folder)
        subdirs.sort(reverse=True)
        for name in subdirs:
            child = os.path.join(folder, name)
            if not is_valid_text(name):
                warn(child, "folder not scanned: its name is not valid UTF-8 text")
                continue
            stack.append((child, level + 1))


def _classify(listing: Iterable[os.DirEntry[str]], *, venv_check: bool, descend: bool) -> tuple[str, list[str]]:
    """('project' | 'plain' | 'venv', names of the sub-folders to descend into) of one folder."""
    is_project = False
    subdirs: list[str] = []
    for entry in listing:
        name = entry.name
        if name in PROFILE_ROOTS:
            is_project = is_project or _is_profile(entry.path, name)
        elif name == "pyvenv.cfg" and venv_check:
            return "venv", []
        elif descend and not name.startswith(".") and name not in _SKIPPED_DIRS and _entry_is_dir(entry, follow=False):
            subdirs.append(name)
    return ("project" if is_project else "plain"), subdirs


def _entry_is_dir(entry: os.DirEntry[str], *, follow: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False

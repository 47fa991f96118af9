"""The file watcher: a change under a root re-reads the one project it belongs to.

Why ``watchfiles``: it is the watcher uvicorn itself uses, wraps the kernel's inotify in
Rust (a thread of its own, no Python per raw event), debounces bursts into one set of
changes, and offers the same API in polling mode. That polling mode is the fallback when
the kernel's watch limit (``fs.inotify.max_user_watches``) is exhausted: the server goes
on, polling, and ``/status`` says why.

Only what a scan reads matters: a path inside a profile folder (``.claude``, ``.codex``,
``.gemini``, ``.cursor``) or a project's ``.mcp.json``; the folders a scan skips
(``.git``, ``node_modules``, virtualenvs) never trigger anything. A changed path maps to
the nearest folder above it that is a project now or was one when last cached (a deleted
project is refreshed too, and so marked stale).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import watchfiles

from ..layout import _SKIPPED_DIRS, is_project_folder
from ..profiles import MCP_FILE, PROFILE_ROOTS
from ..values import is_inside

__all__ = ["Watcher", "new_folder", "project_of", "relevant"]

log = logging.getLogger(__name__)
_PROFILES = frozenset(PROFILE_ROOTS)


def relevant(path: str) -> bool:
    """Whether a change at ``path`` can change what a scan reads."""
    parts = Path(path).parts
    if _SKIPPED_DIRS.intersection(parts):
        return False
    return bool(_PROFILES.intersection(parts)) or parts[-1:] == (MCP_FILE,)


def new_folder(change: watchfiles.Change, path: str) -> bool:
    """Whether a change is a folder created where a scan looks for projects."""
    if change != watchfiles.Change.added or _SKIPPED_DIRS.intersection(Path(path).parts):
        return False
    return os.path.isdir(path)


def project_of(path: str, roots: Iterable[str], known: set[str], seen: dict[str, bool] | None = None) -> str | None:
    """The project folder a change at ``path`` belongs to: the nearest folder at or above
    it, inside a root, that is a project folder or a ``known`` (cached) project; None when
    there is none. ``seen`` remembers which folders are projects across the paths of one
    burst (a ``git checkout`` changes thousands of files in a few folders).
    """
    seen = {} if seen is None else seen
    inside = [r for r in roots if is_inside(path, r)]
    if not inside:
        return None
    top = min(inside, key=len)
    folder = Path(path)
    for candidate in (folder, *folder.parents):
        text = str(candidate)
        if len(text) < len(top):
            return None
        if candidate.name in _PROFILES:
            continue
        if text not in seen:
            seen[text] = text in known or is_project_folder(candidate)
        if seen[text]:
            return text
    return None


class Watcher:
    """Watches ``roots`` and calls ``on_projects(paths)`` with the projects that changed.

    ``known()`` gives the cached projects' paths. ``mode`` is ``native`` (inotify),
    ``polling`` (after the watch limit was reached) or ``off``; ``warning`` says why.
    ``watch`` is ``watchfiles.awatch`` (a seam for tests).
    """

    def __init__(
        self,
        roots: list[str],
        known: Callable[[], set[str]],
        on_projects: Callable[[set[str]], None],
        *,
        debounce_ms: int = 100,
        poll_ms: int = 1000,
        force_polling: bool = False,
        watch: Callable[..., Any] = watchfiles.awatch,
    ) -> None:
        self.roots = [str(Path(r).resolve()) for r in roots if Path(r).is_dir()]
        self.known = known
        self.on_projects = on_projects
        self.debounce_ms = debounce_ms
        self.poll_ms = poll_ms
        self.polling = force_polling
        self.watch = watch
        self.mode = "off"
        self.warning: str | None = None
        self.changes_seen = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set; never raises (a failure is kept in ``warning``)."""
        if not self.roots:
            self.warning = "no roots to watch"
            return
        while not stop.is_set():
            self.mode = "polling" if self.polling else "native"
            try:
                async for changes in self.watch(
                    *self.roots,
                    watch_filter=lambda change, path: relevant(path) or new_folder(change, path),
                    debounce=self.debounce_ms,
                    step=min(50, self.debounce_ms),
                    stop_event=stop,
                    force_polling=self.polling,
                    poll_delay_ms=self.poll_ms,
                    recursive=True,
                    # Not ignored: that option also hides an exhausted watch limit, leaving
                    # the folders after the limit silently unwatched.
                    ignore_permission_denied=False,
                ):
                    self.dispatch(path for _change, path in changes)
                return
            except Exception as exc:
                # The kernel's watch limit (watchfiles gives no errno for it) or a folder it
                # may not read: either way, polling still sees every change it can.
                if not self.polling and isinstance(exc, OSError):
                    self.polling = True
                    self.warning = f"kernel file watching failed ({exc}); polling every {self.poll_ms} ms instead"
                    log.warning("watcher: %s", self.warning)
                    continue
                self.mode, self.warning = "off", f"watcher stopped: {type(exc).__name__}: {exc}"
                log.warning("watcher: %s", self.warning)
                return
            finally:
                if stop.is_set():
                    self.mode = "off"

    def dispatch(self, paths: Iterable[str]) -> set[str]:
        """Hand the projects of the changed ``paths`` to ``on_projects``; which ones."""
        known = self.known()
        projects = set()
        seen: dict[str, bool] = {}
        for path in paths:
            self.changes_seen += 1
            project = project_of(path, self.roots, known, seen)
            if project is not None:
                projects.add(project)
            elif not relevant(path) and os.path.isdir(path):
                # A new folder outside any project: inotify may report only the folder
                # (its contents arrived before its watch), so it is walked for projects.
                projects.add(path)
        if projects:
            self.on_projects(projects)
        return projects

"""Services: filling the cache from project folders and answering from it.

Services receive a unit-of-work factory (``Callable[[], AbstractUnitOfWork]``), never an
engine or a session, so they run unchanged against ``testing.FakeUnitOfWork``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import DatabaseBusyError, DuplicateError, NotFoundError, ValidationError, ValueTooLargeError
from .marketplace import (
    InputError,
    check_updates,
    import_marketplace,
    refresh_upstream_versions,
)
from .models import MarketplaceEntry, Project, check_text, ensure_utc, utcnow
from .readers import Outcome, Task, default_jobs, read_in_order
from .roots import remember_roots
from .scanner import (
    ProjectOnDisk,
    ScanWarning,
    discover_projects,
    is_project_folder,
)
from .sync import Sync, sync_batch, sync_with_retry
from .uow import AbstractUnitOfWork
from .values import is_inside

__all__ = [
    "InputError",
    "ScanSummary",
    "check_updates",
    "find_project",
    "forget_project",
    "import_marketplace",
    "invalidate",
    "list_marketplace",
    "purge_marketplace",
    "refresh_upstream_versions",
    "scan",
]

UowFactory = Callable[..., AbstractUnitOfWork]


@dataclass
class ScanSummary:
    """What a scan did. ``projects_seen`` = added + updated + unchanged + error."""

    projects_seen: int = 0
    projects_unchanged: int = 0
    projects_added: int = 0
    projects_updated: int = 0
    projects_error: int = 0
    projects_stale: int = 0
    artifacts_added: int = 0
    artifacts_updated: int = 0
    artifacts_removed: int = 0
    warnings: list[ScanWarning] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (warnings as ``{"path", "message"}`` objects)."""
        data = asdict(self)
        data["warnings"] = [{"path": w.path, "message": w.message} for w in self.warnings]
        data["seconds"] = round(self.seconds, 3)
        return data


def _under(path: str, roots: Iterable[Path]) -> bool:
    return any(is_inside(path, str(root)) for root in roots)


def _resolve_root(root: Path | str) -> tuple[Path, bool]:
    """A scan root made absolute and resolved, and whether it is usable as text. A root
    holding a NUL byte or undecodable bytes is passed on unresolved: discovery warns
    about it and no cached project counts as under it.
    """
    text = os.fspath(root)
    try:
        check_text("root", text)
        return Path(text).expanduser().resolve(), True
    except (ValidationError, ValueError, OSError):
        return Path(text), False


def _still_there(path: str) -> bool:
    """Whether a cached project path still leads, on disk, to a project folder: the path
    must still resolve to itself (no component has become a symlink) and hold a profile root.
    A path stored in the cache is never trusted without this check.
    """
    try:
        return os.path.realpath(path) == path and is_project_folder(path)
    except (OSError, ValueError):
        return False


def scan(
    uow_factory: UowFactory,
    roots: Iterable[Path | str],
    *,
    max_depth: int = 5,
    full: bool = False,
    progress: Callable[[str], None] | None = None,
    now: datetime | None = None,
    remember: bool = False,
    jobs: int | None = None,
) -> ScanSummary:
    """Discover projects under ``roots`` and bring the cache up to date with them;
    ``remember``: add the roots to the ones a server keeps fresh (:mod:`roots`).

    ``jobs`` projects are read at a time, by worker processes (default: the machine's
    cores; 1 reads them one after another in this thread); this thread alone writes, in
    the order the projects were discovered, so the cache and the summary do not depend
    on ``jobs``. See docs/scanning.md.
    """
    started = time.perf_counter()
    now = ensure_utc(now, "now") if now is not None else utcnow()
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise ValidationError("jobs", f"must be at least 1, got {jobs}")
    checked = [_resolve_root(r) for r in roots]
    resolved = [path for path, usable in checked if usable]
    run = _ScanRun(uow_factory, full, now)
    with uow_factory() as uow:
        run.cached = {
            p.path: (p.id, p.fingerprint, p.status, p.warnings) for p in uow.projects.list() if _under(p.path, resolved)
        }
    found: list[ScanWarning] = []
    tasks = run.tasks(discover_projects([p for p, _ in checked], max_depth=max_depth, warnings=found), found)
    # A rescan of a large cache checks many fingerprints: workers from the start.
    checks = sum(1 for known in run.cached.values() if run.skip_if(known))
    # closing(): an error in the writer stops the readers now, not when the traceback goes.
    with closing(read_in_order(tasks, jobs, checks=checks)) as outcomes:
        for task, outcome in outcomes:
            run.summary.warnings.extend(task.context)
            if progress is not None:
                progress(task.path)
            run.take(task.path, outcome)
    run.flush()
    run.summary.warnings.extend(found)  # what discovery warned about after the last project
    run.finish()
    if remember:
        remember_roots(uow_factory, resolved)
    run.summary.seconds = time.perf_counter() - started
    return run.summary


#: A batch of read projects is written in one unit of work once it holds this many
#: artifacts (or BATCH_PROJECTS projects): fewer commits, and the write lock is still
#: held for a small fraction of a second at a time.
BATCH_ARTIFACTS = 2000
BATCH_PROJECTS = 100


@dataclass
class _ScanRun:
    """One scan's state while the writer takes the read projects one by one."""

    uow_factory: UowFactory
    full: bool
    now: datetime
    summary: ScanSummary = field(default_factory=ScanSummary)
    # path -> (id, fingerprint, status, warnings) of the cached projects under the roots
    cached: dict[str, tuple[str, str | None, str, Any]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    unchanged: list[str] = field(default_factory=list)
    # read projects not written yet: (path, what was read, not cached when the scan began)
    batch: list[tuple[Path, ProjectOnDisk, bool]] = field(default_factory=list)
    batch_artifacts: int = 0

    def tasks(self, paths: Iterable[Path], found: list[ScanWarning]) -> Iterator[Task[list[ScanWarning]]]:
        """A read task per discovered project, carrying what discovery warned about before
        finding it (so warnings keep the discovery order however far ahead readers run).
        """
        for path in paths:
            key = str(path)
            if key in self.seen:
                continue
            self.seen.add(key)
            known = self.cached.get(key)
            before = found[:]
            found.clear()
            yield Task(key, self.skip_if(known) if known is not None else None, before)

    def skip_if(self, known: tuple[str, str | None, str, Any]) -> str | None:
        """The fingerprint that lets a cached project be skipped: an active one's, unless
        the scan is ``full``.
        """
        return known[1] if not self.full and known[2] == "active" else None

    def warn(self, path: str, message: str) -> None:
        self.summary.warnings.append(ScanWarning(path, message))

    def error(self, path: Path, message: str) -> None:
        self.summary.projects_error += 1
        _record_error(self.uow_factory, str(path), path.name, message, self.now)

    def take(self, key: str, outcome: Outcome) -> None:
        """Count an unchanged project, record one that cannot be read, or queue one that
        was read for writing.
        """
        path = Path(key)
        if outcome.kind == "unchanged":
            known = self.cached[key]
            self.unchanged.append(known[0])
            # What the last read warned about is still true of the unchanged files.
            self.summary.warnings.extend(ScanWarning(w["path"], w["message"]) for w in known[3] or [])
            return
        if outcome.kind == "error":
            self.warn(key, outcome.message or "cannot read project")
            self.error(path, outcome.message or "cannot read project")
            return
        disk = outcome.disk
        if disk is None or disk.claude in ("missing", "notdir"):
            # Removed (or its .claude removed) between discovery and reading: the project
            # is gone, not empty. A cached one is marked stale at the end; its artifacts stay.
            self.seen.discard(key)
            self.warn(key, "project folder vanished during the scan; not read")
            return
        self.summary.warnings.extend(disk.warnings)
        if disk.claude == "error":
            reason = next((w.message for w in disk.warnings if w.path == str(disk.path / ".claude")), "unreadable")
            self.error(path, f"cannot read project: {reason}")
            return
        new = key not in self.cached and str(disk.path) not in self.cached
        self.batch.append((path, disk, new))
        self.batch_artifacts += len(disk.artifacts)
        if self.batch_artifacts >= BATCH_ARTIFACTS or len(self.batch) >= BATCH_PROJECTS:
            self.flush()

    def flush(self) -> None:
        """Write the queued projects: in one unit of work (all of them or, on any refusal,
        none), else each in its own, which keeps every project atomic.
        """
        batch, self.batch, self.batch_artifacts = self.batch, [], 0
        if len(batch) > 1:
            try:
                with self.uow_factory() as uow:
                    synced = sync_batch(uow, [(disk, new) for _path, disk, new in batch], self.now)
            except (ValidationError, ValueTooLargeError, DuplicateError, DatabaseBusyError):
                pass  # one project refused (or a concurrent scan got in): each alone below
            else:
                for sync in synced:
                    self.count(sync)
                return
        for path, disk, _new in batch:
            self.store(path, disk)

    def store(self, path: Path, disk: ProjectOnDisk) -> None:
        """Bring the cache's copy of one project up to date in its own unit of work."""
        try:
            sync = sync_with_retry(self.uow_factory, disk, self.now)
        except (ValidationError, ValueTooLargeError) as exc:
            # What this project holds cannot be stored (e.g. a tag too long for an
            # index): the project is recorded as an error and the scan goes on.
            message = f"cannot store project: {exc}"
            self.warn(str(path), message)
            self.error(path, message)
            return
        self.count(sync)

    def count(self, sync: Sync) -> None:
        s = self.summary
        s.artifacts_added += sync.artifacts_added
        s.artifacts_updated += sync.artifacts_updated
        s.artifacts_removed += sync.artifacts_removed
        if sync.added:
            s.projects_added += 1
        elif sync.changed:
            s.projects_updated += 1
        else:
            s.projects_unchanged += 1

    def finish(self) -> None:
        """Touch the unchanged projects, mark the vanished ones stale, total the counts."""
        s = self.summary
        s.projects_unchanged += len(self.unchanged)
        stale = [
            id_
            for path, (id_, _fp, status, _warnings) in self.cached.items()
            if path not in self.seen and status != "stale" and not _still_there(path)
        ]
        with self.uow_factory() as uow:
            if self.unchanged:
                uow.projects.touch_many(self.unchanged, self.now)
            if stale:
                s.projects_stale = uow.projects.mark_stale(stale)
        s.projects_seen = s.projects_added + s.projects_updated + s.projects_unchanged + s.projects_error


def _record_error(uow_factory: UowFactory, path: str, name: str, message: str, now: datetime) -> None:
    with uow_factory() as uow:
        project = uow.projects.get_by_path(path)
        if project is None:
            project = uow.projects.add(Project(name=name or path, path=path))
        project.status = "error"
        project.error_message = message
        project.last_fetched = now
        project.fingerprint = None


def find_project(uow: AbstractUnitOfWork, id_or_path: str) -> Project:
    """A project by id, or by path (made absolute); NotFoundError otherwise.

    This answers from the cache: the folder is not read (it may be gone since the last
    scan; ``scan`` marks such a project stale).
    """
    check_text("project", id_or_path, required=True)
    project = uow.projects.get(id_or_path)
    if project is None:
        candidate = str(Path(id_or_path).expanduser().resolve())
        project = uow.projects.get_by_path(candidate) or uow.projects.get_by_path(id_or_path)
    if project is None:
        raise NotFoundError(f"no cached project with id or path {id_or_path!r}")
    return project


def forget_project(uow_factory: UowFactory, id_or_path: str) -> Project:
    """Remove a project (and its artifacts) from the cache; the folder is untouched."""
    with uow_factory() as uow:
        project = find_project(uow, id_or_path)
        uow.projects.delete(project.id)
        return project


def invalidate(uow_factory: UowFactory, project_id: str | None = None) -> int:
    """Mark one project (by id), or every project, stale so that the next refresh re-reads
    it whatever its fingerprint says; how many were marked.
    """
    with uow_factory() as uow:
        if project_id is None:
            ids = [p.id for p in uow.projects.list()]
        else:
            check_text("project_id", project_id, required=True, lookup=True)
            if uow.projects.get(project_id) is None:
                raise NotFoundError(f"no cached project with id {project_id!r}")
            ids = [project_id]
        return uow.projects.mark_stale(ids)


def list_marketplace(uow_factory: UowFactory, type: str | None = None) -> list[MarketplaceEntry]:
    """The marketplace entries (of one artifact ``type``), by type, name and id."""
    with uow_factory(read_only=True) as uow:
        return uow.marketplace.list(type=type)


def purge_marketplace(uow_factory: UowFactory, older_than: timedelta) -> int:
    """Delete the marketplace entries cached longer ago than ``older_than``; how many."""
    with uow_factory() as uow:
        return uow.marketplace.purge_older_than(older_than)

"""Services: filling the cache from project folders and answering from it.

Services receive a unit-of-work factory (``Callable[[], AbstractUnitOfWork]``), never an
engine or a session, so they run unchanged against ``testing.FakeUnitOfWork``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
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
from .models import Artifact, ArtifactMetadata, MarketplaceEntry, Project, check_text, ensure_utc, utcnow
from .retry import run_with_retry
from .roots import remember_roots
from .scanner import (
    ArtifactOnDisk,
    ProjectOnDisk,
    ScanWarning,
    discover_projects,
    is_project_folder,
    project_fingerprint,
    read_project,
)
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


def _row(project_id: str, artifact: ArtifactOnDisk) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "type": artifact.type,
        "path": artifact.rel,
        "name": artifact.name,
        "source": artifact.source,
        "deployed_version": artifact.deployed_version,
        "local_modified": artifact.local_modified,
        "content_hash": artifact.content_hash,
    }


def _meta(artifact_id: str, artifact: ArtifactOnDisk) -> dict[str, Any]:
    return {
        "artifact_id": artifact_id,
        "data": artifact.data,
        "description": artifact.description,
        "tags": list(artifact.tags),
        "aliases": list(artifact.aliases),
    }


def _row_differs(stored: Artifact, artifact: ArtifactOnDisk) -> bool:
    return (stored.source, stored.deployed_version, stored.local_modified, stored.content_hash) != (
        artifact.source,
        artifact.deployed_version,
        artifact.local_modified,
        artifact.content_hash,
    )


def _meta_differs(stored: ArtifactMetadata | None, artifact: ArtifactOnDisk) -> bool:
    if stored is None:
        return True
    return (stored.data, stored.description, stored.tags or [], stored.aliases or []) != (
        artifact.data,
        artifact.description,
        list(artifact.tags),
        list(artifact.aliases),
    )


@dataclass
class _Sync:
    added: bool = False
    changed: bool = False
    artifacts_added: int = 0
    artifacts_updated: int = 0
    artifacts_removed: int = 0


def _match(stored: list[Artifact], on_disk: list[ArtifactOnDisk]) -> tuple[dict[int, Artifact], list[Artifact]]:
    """Pair what is on disk with what is stored: by (type, path, name), then the leftovers
    by (type, name) when exactly one of each is left (a moved file, or a path guessed by
    the migration that added paths), so the artifact keeps its id. Returns the pairs (by
    index into ``on_disk``) and the stored artifacts left unpaired.
    """
    by_key = {(a.type, a.path, a.name): a for a in stored}
    pairs: dict[int, Artifact] = {}
    loose: list[int] = []
    for index, artifact in enumerate(on_disk):
        existing = by_key.pop((artifact.type, artifact.rel, artifact.name), None)
        if existing is None:
            loose.append(index)
        else:
            pairs[index] = existing
    left: dict[tuple[str, str], list[Artifact]] = {}
    for existing in by_key.values():
        left.setdefault((existing.type, existing.name), []).append(existing)
    wanted: dict[tuple[str, str], list[int]] = {}
    for index in loose:
        wanted.setdefault((on_disk[index].type, on_disk[index].name), []).append(index)
    for key, indexes in wanted.items():
        candidates = left.get(key, [])
        if len(indexes) == 1 and len(candidates) == 1:
            pairs[indexes[0]] = candidates.pop()
    return pairs, [a for group in left.values() for a in group]


def _warning_rows(warnings: list[ScanWarning]) -> list[dict[str, str]]:
    return [{"path": w.path, "message": w.message} for w in warnings]


def _sync_project(uow: AbstractUnitOfWork, disk: ProjectOnDisk, now: datetime) -> _Sync:
    """Bring one project's cache entry in line with what was read from disk."""
    result = _Sync()
    project = uow.projects.get_by_path(str(disk.path))
    if project is None:
        result.added = True
        project = uow.projects.add(
            Project(name=disk.name, path=str(disk.path), description=disk.description, last_fetched=now)
        )
    for key, value in (
        ("name", disk.name),
        ("description", disk.description),
        ("status", "active"),
        ("error_message", None),
        ("warnings", _warning_rows(disk.warnings) or None),
    ):
        if getattr(project, key) != value:
            setattr(project, key, value)
            result.changed = True
    project.fingerprint = disk.fingerprint
    project.last_fetched = now
    stored = uow.artifacts.list_for_project(project.id)
    metas = uow.metadata.get_many([a.id for a in stored])
    pairs, gone = _match(stored, disk.artifacts)
    if gone:
        result.artifacts_removed = uow.artifacts.delete_many([a.id for a in gone])
    rows, meta_for_new, meta_rows = [], [], []
    for index, artifact in enumerate(disk.artifacts):
        existing = pairs.get(index)
        if existing is None:
            result.artifacts_added += 1
            rows.append(_row(project.id, artifact))
            meta_for_new.append(artifact)
            continue
        moved = existing.path != artifact.rel
        if moved:
            existing.path = artifact.rel
        row_changed = _row_differs(existing, artifact)
        meta_changed = _meta_differs(metas.get(existing.id), artifact)
        if row_changed:
            rows.append(_row(project.id, artifact))
        if meta_changed:
            meta_rows.append(_meta(existing.id, artifact))
        if moved or row_changed or meta_changed:
            result.artifacts_updated += 1
    if rows:
        uow.artifacts.upsert_many(rows)
    if meta_for_new:
        ids = uow.artifacts.keys_for_project(project.id)
        meta_rows.extend(_meta(ids[(a.type, a.rel, a.name)], a) for a in meta_for_new)
    if meta_rows:
        uow.metadata.set_many(meta_rows)
    result.changed = result.changed or bool(
        result.added or result.artifacts_added or result.artifacts_updated or result.artifacts_removed
    )
    return result


def _sync_with_retry(uow_factory: UowFactory, disk: ProjectOnDisk, now: datetime) -> _Sync:
    """One project's unit of work, re-run when a concurrent scan of the same tree added the
    same project first (DuplicateError) or the database was busy; the re-run sees the
    other scan's rows and updates them instead.
    """
    return run_with_retry(
        uow_factory, lambda uow: _sync_project(uow, disk, now), retry_on=(DuplicateError, DatabaseBusyError)
    )


def scan(
    uow_factory: UowFactory,
    roots: Iterable[Path | str],
    *,
    max_depth: int = 5,
    full: bool = False,
    progress: Callable[[str], None] | None = None,
    now: datetime | None = None,
    remember: bool = False,
) -> ScanSummary:
    """Discover projects under ``roots`` and bring the cache up to date with them;
    ``remember``: add the roots to the ones a server keeps fresh (:mod:`roots`).
    """
    started = time.perf_counter()
    now = ensure_utc(now, "now") if now is not None else utcnow()
    checked = [_resolve_root(r) for r in roots]
    resolved = [path for path, usable in checked if usable]
    run = _ScanRun(uow_factory, full, now)
    with uow_factory() as uow:
        run.cached = {
            p.path: (p.id, p.fingerprint, p.status, p.warnings) for p in uow.projects.list() if _under(p.path, resolved)
        }
    for path in discover_projects([p for p, _ in checked], max_depth=max_depth, warnings=run.summary.warnings):
        if str(path) in run.seen:
            continue
        run.seen.add(str(path))
        if progress is not None:
            progress(str(path))
        run.visit(path)
    run.finish()
    if remember:
        remember_roots(uow_factory, resolved)
    run.summary.seconds = time.perf_counter() - started
    return run.summary


@dataclass
class _ScanRun:
    """One scan's state while it visits the discovered projects one by one."""

    uow_factory: UowFactory
    full: bool
    now: datetime
    summary: ScanSummary = field(default_factory=ScanSummary)
    # path -> (id, fingerprint, status, warnings) of the cached projects under the roots
    cached: dict[str, tuple[str, str | None, str, Any]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    unchanged: list[str] = field(default_factory=list)

    def warn(self, path: str, message: str) -> None:
        self.summary.warnings.append(ScanWarning(path, message))

    def error(self, path: Path, message: str) -> None:
        self.summary.projects_error += 1
        _record_error(self.uow_factory, str(path), path.name, message, self.now)

    def visit(self, path: Path) -> None:
        """Skip an unchanged project, else read it and store what it holds."""
        key = str(path)
        known = self.cached.get(key)
        try:
            fingerprint: str | None = project_fingerprint(path)
        except OSError as exc:
            fingerprint = None
            self.warn(key, f"cannot read project: {exc.strerror or exc}")
        if not self.full and known is not None and fingerprint is not None and known[1:3] == (fingerprint, "active"):
            self.unchanged.append(known[0])
            # What the last read warned about is still true of the unchanged files.
            self.summary.warnings.extend(ScanWarning(w["path"], w["message"]) for w in known[3] or [])
            return
        disk = self.read(path)
        if disk is not None:
            self.store(path, disk)

    def read(self, path: Path) -> ProjectOnDisk | None:
        """The project as read from disk; None (with a warning, or an error recorded) when
        it cannot be stored.
        """
        key = str(path)
        try:
            disk = read_project(path)
        except (FileNotFoundError, NotADirectoryError):
            disk = None
        except OSError as exc:
            message = f"cannot read project: {exc.strerror or exc}"
            self.warn(key, message)
            self.error(path, message)
            return None
        if disk is None or disk.claude in ("missing", "notdir"):
            # Removed (or its .claude removed) between discovery and reading: the project
            # is gone, not empty. A cached one is marked stale at the end; its artifacts stay.
            self.seen.discard(key)
            self.warn(key, "project folder vanished during the scan; not read")
            return None
        self.summary.warnings.extend(disk.warnings)
        if disk.claude == "error":
            reason = next((w.message for w in disk.warnings if w.path == str(disk.path / ".claude")), "unreadable")
            self.error(path, f"cannot read project: {reason}")
            return None
        return disk

    def store(self, path: Path, disk: ProjectOnDisk) -> None:
        """Bring the cache's copy of one project up to date, counting what changed."""
        try:
            sync = _sync_with_retry(self.uow_factory, disk, self.now)
        except (ValidationError, ValueTooLargeError) as exc:
            # What this project holds cannot be stored (e.g. a tag too long for an
            # index): the project is recorded as an error and the scan goes on.
            message = f"cannot store project: {exc}"
            self.warn(str(path), message)
            self.error(path, message)
            return
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

"""Bringing one project's cache entry in line with what a scan read from its folder:
the writer's half of a scan (``services.scan`` drives it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import DatabaseBusyError, DuplicateError
from .layout import ArtifactOnDisk, ProjectOnDisk, ScanWarning
from .models import Artifact, ArtifactMetadata, Project
from .retry import run_with_retry
from .uow import AbstractUnitOfWork

__all__ = ["Sync", "add_projects", "sync_batch", "sync_project", "sync_with_retry"]

UowFactory = Callable[..., AbstractUnitOfWork]


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
class Sync:
    """What writing one project changed."""

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


def sync_project(uow: AbstractUnitOfWork, disk: ProjectOnDisk, now: datetime) -> Sync:
    """Bring one project's cache entry in line with what was read from disk."""
    result = Sync()
    project = uow.projects.get_by_path(str(disk.path))
    if project is None:
        return add_projects(uow, [disk], now)[0]
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
    meta_rows.extend(_new_metadata(uow, rows, [(project.id, a) for a in meta_for_new]))
    if meta_rows:
        uow.metadata.set_many(meta_rows)
    result.changed = result.changed or bool(
        result.added or result.artifacts_added or result.artifacts_updated or result.artifacts_removed
    )
    return result


def sync_batch(uow: AbstractUnitOfWork, batch: list[tuple[ProjectOnDisk, bool]], now: datetime) -> list[Sync]:
    """Write a batch of projects in one unit of work; each is ``(disk, new)``, ``new`` when
    its path was not cached as the scan began. The new ones go in together
    (:func:`add_projects`), the others one by one (:func:`sync_project`); the results
    come back in batch order.
    """
    added = iter(add_projects(uow, [disk for disk, new in batch if new], now))
    return [next(added) if new else sync_project(uow, disk, now) for disk, new in batch]


def add_projects(uow: AbstractUnitOfWork, disks: list[ProjectOnDisk], now: datetime) -> list[Sync]:
    """Add projects that are not cached, with their artifacts and metadata: a few bulk
    statements for all of them, nothing looked up and nothing read back (a concurrent scan
    that added one since makes the add raise DuplicateError).
    """
    if not disks:
        return []
    ids = uow.projects.add_many(
        Project(
            name=disk.name,
            path=str(disk.path),
            description=disk.description,
            last_fetched=now,
            fingerprint=disk.fingerprint,
            warnings=_warning_rows(disk.warnings) or None,
        )
        for disk in disks
    )
    # New projects have no stored versions to keep: carrying upstream_version spares the
    # upsert its read of them.
    new = [(pid, a) for pid, disk in zip(ids, disks, strict=True) for a in disk.artifacts]
    rows = [{**_row(pid, a), "upstream_version": None} for pid, a in new]
    meta_rows = _new_metadata(uow, rows, new)
    if meta_rows:
        uow.metadata.set_many(meta_rows)
    return [Sync(added=True, changed=True, artifacts_added=len(disk.artifacts)) for disk in disks]


def _new_metadata(
    uow: AbstractUnitOfWork, rows: list[dict[str, Any]], new: list[tuple[str, ArtifactOnDisk]]
) -> list[dict[str, Any]]:
    """Write ``rows`` and return the metadata rows of the ``new`` (project id, artifact)
    among them, by the ids the upsert returned (read back only in the rare case it did not
    return one: a concurrent scan wrote the same row first).
    """
    if not rows:
        return []
    ids = uow.artifacts.upsert_many_ids(rows)
    keys = [(pid, a.type, a.name, a.rel) for pid, a in new]  # the unique key's order
    if not all(key in ids for key in keys):
        for pid in dict.fromkeys(pid for pid, _ in new):
            stored = uow.artifacts.keys_for_project(pid)
            ids.update({(pid, type_, name, path): id_ for (type_, path, name), id_ in stored.items()})
    return [_meta(ids[key], a) for key, (_, a) in zip(keys, new, strict=True)]


def sync_with_retry(uow_factory: UowFactory, disk: ProjectOnDisk, now: datetime) -> Sync:
    """One project's unit of work, re-run when a concurrent scan of the same tree added the
    same project first (DuplicateError) or the database was busy; the re-run sees the
    other scan's rows and updates them instead.
    """
    return run_with_retry(
        uow_factory, lambda uow: sync_project(uow, disk, now), retry_on=(DuplicateError, DatabaseBusyError)
    )

"""SkillMeat's ``.skillmeat-deployed.toml`` records, matched to the artifacts a read found."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .formats import (
    is_valid_text,
)
from .layout import EXCLUDED_MARKDOWN, ArtifactOnDisk, _Warn
from .profiles import PROFILE_ROOTS, TYPE_FOLDERS
from .values import ARTIFACT_TYPES

# --------------------------------------------------------------------------- deployment records


@dataclass(slots=True)
class _Record:
    entry: dict[str, Any]
    rel: str | None  # project-relative path it names; None for a record without one
    file: str  # the .skillmeat-deployed.toml it came from
    used: bool = False


@dataclass(slots=True)
class _Deployed:
    by_path: dict[str, _Record] = field(default_factory=dict)
    by_type_name: dict[tuple[str, str], _Record] = field(default_factory=dict)

    def find(self, type_: str, name: str, rels: Iterable[str]) -> _Record | None:
        for rel in rels:
            record = self.by_path.get(rel)
            if record is not None:
                return record
        return self.by_type_name.get((type_, name))


def _normalise_rel(value: str) -> str | None:
    rel = posixpath.normpath(value.replace("\\", "/"))
    if rel.startswith(("/", "../")) or rel in (".", ".."):
        return None
    return rel


def _deployed_type(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if value in ARTIFACT_TYPES:
        return value
    return TYPE_FOLDERS.get(value)  # the plural folder name


def _parse_deployed(deployed: _Deployed, doc: dict[str, Any] | None, profile: str, path: str, warn: _Warn) -> None:
    """Add the records of one profile's ``.skillmeat-deployed.toml``: ``artifact_path`` is
    relative to the record's ``profile_root_dir`` (else the profile holding the file).
    When several records name one path the first wins and the others are warned about.
    """
    if doc is None:
        return
    entries = doc.get("deployed", [])
    if not isinstance(entries, list):
        warn(path, "malformed deployment record: 'deployed' is not an array of tables")
        return
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            warn(path, f"malformed deployment record: deployed[{index}] is not a table; ignored")
            continue
        rel = entry.get("artifact_path")
        if isinstance(rel, str) and rel.strip():
            base = entry.get("profile_root_dir")
            base = base if isinstance(base, str) and base in PROFILE_ROOTS else profile
            key = _normalise_rel(f"{base}/{rel}")
            if key is None:
                warn(path, f"deployed[{index}]: artifact_path {rel!r} leaves the profile folder; ignored")
            elif key in deployed.by_path:
                warn(path, f"deployed[{index}] names {key} again; the first record for it is used")
            else:
                deployed.by_path[key] = _Record(entry, key, path)
            continue
        type_, name = _deployed_type(entry.get("artifact_type")), entry.get("artifact_name")
        if type_ is not None and isinstance(name, str):
            deployed.by_type_name.setdefault((type_, name), _Record(entry, None, path))


def _normalise_hash(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip().lower()
    return value.removeprefix("sha256:")


def _apply_deployment(artifact: ArtifactOnDisk, meta_state: str, rels: list[str], deployed: _Deployed) -> None:
    record = deployed.find(artifact.type, artifact.name, rels)
    if record is None:
        return
    record.used = True
    entry = record.entry
    name = entry.get("artifact_name")
    if record.rel is not None and isinstance(name, str) and name.strip() and is_valid_text(name):
        artifact.name = name
    recorded = _normalise_hash(entry.get("content_hash"))
    artifact.local_modified = recorded is not None and recorded != artifact.content_hash
    collection = entry.get("from_collection")
    if isinstance(collection, str) and collection.strip():
        if artifact.data is not None:
            artifact.data["from_collection"] = collection
        elif meta_state == "absent":
            artifact.data = {"from_collection": collection}


def _warn_unmatched(deployed: _Deployed, project: str, warn: _Warn) -> None:
    for record in deployed.by_path.values():
        if record.used or record.rel is None:
            continue
        where = os.path.join(project, *record.rel.split("/"))
        if not os.path.lexists(where):
            warn(record.file, f"deployed artifact missing on disk: {record.rel}")
        elif posixpath.basename(record.rel).lower() in EXCLUDED_MARKDOWN:
            warn(record.file, f"deployed record names {record.rel}, a documentation file, not an artifact")
        else:
            warn(record.file, f"deployed record names {record.rel}, which the scan does not read as an artifact")

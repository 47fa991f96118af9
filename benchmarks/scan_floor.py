"""The floor of a first scan (S0): the work a scan of a ``benchmarks.corpus`` tree cannot
avoid, done as plainly as Python allows, in one thread.

- walk: ``os.scandir`` from the root, hidden folders skipped, a folder holding
  ``.claude/`` is a project (nested ones found too);
- read: every file of every artifact, once, in full; SkillMeat's two TOML files and the
  settings file of each project;
- hash: SHA-256 of each file, or over each file's relative path and bytes for folders
  (SkillMeat's content hash, the same as ours);
- parse: the frontmatter with PyYAML's C loader when PyYAML has it, ``mcp.json`` with
  ``json``, the TOML files with ``tomllib``;
- write: the same rows our scan writes (a project row per project; an artifact, a
  metadata and its tag rows per artifact) with the driver's ``executemany`` into a fresh
  database built by our migrations, in one transaction.

No validation, no warnings, no fingerprint, no symlink or error handling: the layout is
the corpus's. :func:`floor_sqlite` and :func:`floor_postgres` return (seconds, artifacts).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import tomllib
from datetime import UTC, datetime
from typing import Any

import yaml

from skillmeat_cache.models import new_id

__all__ = ["floor_postgres", "floor_sqlite", "read_tree"]

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TYPES = {"skills": "skill", "agents": "agent", "commands": "command", "hooks": "hook", "mcp": "mcp"}
_MANIFESTS = {"skill": "skill.md", "agent": "agent.md", "command": "command.md", "hook": "hook.md", "mcp": "mcp.md"}


def _frontmatter(data: bytes) -> dict[str, Any] | None:
    text = data.decode("utf-8")
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end < 0:
        return None
    doc = yaml.load(text[4:end], Loader=_LOADER)
    return doc if isinstance(doc, dict) else None


def _files_below(folder: str) -> list[str]:
    found = []
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(top, name) for name in files)
    # pathlib's order (component by component), as SkillMeat's folder hash
    return sorted(found, key=lambda p: os.path.relpath(p, folder).split(os.sep))


def _artifact(type_: str, path: str, rel: str, is_dir: bool) -> dict[str, Any] | None:
    if is_dir:
        digest = hashlib.sha256()
        meta_bytes = None
        wanted = _MANIFESTS[type_]
        for file in _files_below(path):
            with open(file, "rb") as handle:
                data = handle.read()
            name = os.path.relpath(file, path)
            digest.update(name.replace(os.sep, "/").encode("utf-8"))
            digest.update(data)
            if name.lower() == wanted or (type_ == "mcp" and name == "mcp.json"):
                meta_bytes = (name, data)
        if meta_bytes is None:
            return None
        doc = json.loads(meta_bytes[1]) if meta_bytes[0] == "mcp.json" else _frontmatter(meta_bytes[1])
        name = os.path.basename(path)
    else:
        with open(path, "rb") as handle:
            data = handle.read()
        digest = hashlib.sha256(data)
        doc = _frontmatter(data)
        name = os.path.basename(path)[:-3]
    doc = doc or {}
    tags = doc.get("tags") or []
    return {
        "type": type_,
        "name": name,
        "rel": rel,
        "hash": digest.hexdigest(),
        "doc": doc,
        "version": None if doc.get("version") is None else str(doc.get("version")),
        "source": doc.get("source"),
        "description": doc.get("description"),
        "tags": [str(t) for t in tags] if isinstance(tags, list) else [str(tags)],
    }


def _project(path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    claude = os.path.join(path, ".claude")
    with open(os.path.join(claude, ".skillmeat-project.toml"), "rb") as handle:
        settings = tomllib.load(handle)
    deployed: dict[str, dict[str, Any]] = {}
    try:
        with open(os.path.join(claude, ".skillmeat-deployed.toml"), "rb") as handle:
            for record in tomllib.load(handle).get("deployed", []):
                deployed[record["artifact_path"]] = record
    except FileNotFoundError:
        pass
    try:
        with open(os.path.join(claude, "settings.json"), "rb") as handle:
            json.load(handle)
    except FileNotFoundError:
        pass
    artifacts = []
    for folder, type_ in _TYPES.items():
        top = os.path.join(claude, folder)
        if not os.path.isdir(top):
            continue
        with os.scandir(top) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        for entry in entries:
            rel = f"{folder}/{entry.name}"
            found = _artifact(type_, entry.path, f".claude/{rel}", entry.is_dir())
            if found is None:
                continue
            record = deployed.get(rel)
            found["local_modified"] = record is not None and record.get("content_hash") != found["hash"]
            if record is not None:
                found["name"] = record.get("artifact_name") or found["name"]
            artifacts.append(found)
    project = {
        "path": path,
        "name": settings.get("name") or os.path.basename(path),
        "description": settings.get("description"),
    }
    return project, artifacts


def _projects(root: str, depth: int = 0) -> list[str]:
    found = []
    with os.scandir(root) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    if any(e.name == ".claude" and e.is_dir() for e in entries):
        found.append(root)
    if depth < 5:
        for entry in entries:
            if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                found.extend(_projects(entry.path, depth + 1))
    return found


def read_tree(root: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Walk, read, hash and parse every project below ``root``."""
    return [_project(path) for path in _projects(os.path.realpath(root))]


def _rows(
    tree: list[tuple[dict[str, Any], list[dict[str, Any]]]], now: Any
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    projects, artifacts, metas, tags = [], [], [], []
    for project, found in tree:
        project_id = new_id()
        projects.append((project_id, project["name"], project["path"], project["description"], now, now, now))
        for a in found:
            artifact_id = new_id()
            artifacts.append(
                (artifact_id, project_id, a["type"], a["name"], a["rel"], a["source"], a["version"], None,
                 False, a["local_modified"], a["hash"], now, now)
            )  # fmt: skip
            metas.append(
                (artifact_id, json.dumps(a["doc"], default=str), a["description"], json.dumps(a["tags"]), "[]")
            )
            tags.extend((artifact_id, tag) for tag in dict.fromkeys(a["tags"]))
    return projects, artifacts, metas, tags


_INSERT_PROJECT = (
    "INSERT INTO projects (id, name, path, description, created_at, updated_at, last_fetched, status) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, 'active')"
)
_INSERT_ARTIFACT = (
    "INSERT INTO artifacts (id, project_id, type, name, path, source, deployed_version, upstream_version, "
    "is_outdated, local_modified, content_hash, created_at, updated_at) VALUES ({marks})"
)
_INSERT_META = "INSERT INTO artifact_metadata (artifact_id, metadata, description, tags, aliases) VALUES ({row})"
_INSERT_TAG = "INSERT INTO artifact_tags (artifact_id, tag) VALUES ({p}, {p})"


def floor_sqlite(root: str, db: str) -> tuple[float, int]:
    """The floor into the SQLite file ``db`` (migrated, empty): seconds and artifacts."""
    from .raw import sqlite_connect

    conn = sqlite_connect(db)
    started = time.perf_counter()
    tree = read_tree(root)
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    projects, artifacts, metas, tags = _rows(tree, now)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(_INSERT_PROJECT.format(p="?"), projects)
    conn.executemany(_INSERT_ARTIFACT.format(marks=", ".join(["?"] * 13)), artifacts)
    conn.executemany(_INSERT_META.format(row="?, ?, ?, ?, ?"), metas)
    conn.executemany(_INSERT_TAG.format(p="?"), tags)
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds, len(artifacts)


def floor_postgres(root: str, url: str) -> tuple[float, int]:
    """The floor into the PostgreSQL database ``url`` (migrated, empty)."""
    import psycopg
    from sqlalchemy.engine import make_url

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(conninfo, options="-c timezone=UTC")
    started = time.perf_counter()
    tree = read_tree(root)
    now = datetime.now(UTC)
    projects, artifacts, metas, tags = _rows(tree, now)
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(_INSERT_PROJECT.format(p="%s"), projects)
        cur.executemany(_INSERT_ARTIFACT.format(marks=", ".join(["%s"] * 13)), artifacts)
        cur.executemany(_INSERT_META.format(row="%s, %s::jsonb, %s, %s::jsonb, %s::jsonb"), metas)
        cur.executemany(_INSERT_TAG.format(p="%s"), tags)
    seconds = time.perf_counter() - started
    conn.close()
    return seconds, len(artifacts)

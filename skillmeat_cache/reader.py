"""Reading one project folder into a :class:`ProjectOnDisk` (see :func:`read_project`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config_files import ConfigArtifact, hooks_from_settings, mcp_servers
from .deployed import _apply_deployment, _Deployed, _parse_deployed, _warn_unmatched
from .fingerprint import _Node, _Profile, _walk_project
from .formats import (
    FRONTMATTER_READ_LIMIT,
    Meta,
    is_valid_text,
    load_toml,
    markdown_meta,
    read_markdown,
    read_mcp_json,
)
from .hashing import hash_and_head
from .layout import (
    _NOUN,
    EXCLUDED_MARKDOWN,
    MANIFESTS,
    ArtifactOnDisk,
    ProjectOnDisk,
    ScanWarning,
    _collector,
    _Warn,
)
from .profiles import DEPLOYED_FILE, MCP_FILE, PROJECT_FILE, SETTINGS_FILES, TYPE_FOLDERS

# --------------------------------------------------------------------------- reading a project


def _subtree_escape(node: _Node) -> str | None:
    """The first walked symlink below ``node`` that resolves outside the project (or dangles)."""
    stack = [node]
    while stack:
        current = stack.pop()
        for child in (current.children or {}).values():
            if child.kind == "l" and not child.inside:
                return child.path
            if child.children is not None:
                stack.append(child)
    return None


class _Reader:
    """Reads the artifacts of one project from the walked profile trees."""

    def __init__(self, project: str, warn: _Warn, deployed: _Deployed) -> None:
        self.project, self.warn, self.deployed = project, warn, deployed
        self.found: list[ArtifactOnDisk] = []

    def profile(self, profile: _Profile) -> None:
        for folder_name, type_ in TYPE_FOLDERS.items():
            node = profile.types.get(folder_name)
            if node is None:
                continue
            if node.kind == "l" and not node.inside:
                self.warn(node.path, "symlink resolves outside the project; not followed")
                continue
            if node.children is None:
                if node.error is None:
                    self.warn(node.path, f"'{folder_name}' is not a folder; ignored")
                continue
            if type_ in ("agent", "command"):
                self._markdown_tree(type_, node, top=True)
            else:
                self._folders(type_, node)

    def _usable(self, entry: _Node) -> str | None:
        """The effective kind of an entry, or None when it must be skipped (warned)."""
        if not is_valid_text(entry.name):
            self.warn(entry.path, "name is not valid UTF-8 text; skipped")
            return None
        if entry.kind == "l" and not entry.inside:
            self.warn(entry.path, "symlink resolves outside the project; skipped")
            return None
        if entry.kind == "l" and entry.target is None:
            self.warn(entry.path, "broken symlink; skipped")
            return None
        if entry.effective == "d" and entry.children is None:
            return None  # unreadable (warned by the walk) or a loop (warned too)
        return entry.effective

    def _folders(self, type_: str, top: _Node) -> None:
        """skills/, hooks/, mcp/: one artifact per folder holding the type's manifest."""
        for entry in (top.children or {}).values():
            if entry.name.startswith("."):
                continue
            kind = self._usable(entry)
            if kind is None:
                continue
            if kind == "d":
                manifest = _manifest(type_, entry)
                if manifest is not None:
                    self._add(type_, entry, manifest, entry.name)
                elif type_ != "hook":  # other folders under hooks/ hold hook code
                    expected = " or ".join(_shown(m) for m in MANIFESTS[type_])
                    self.warn(entry.path, f"not {_NOUN[type_]}: no {expected} in it; skipped")
            elif type_ != "hook":  # a script under hooks/ is a hook's code, not junk
                expected = " or ".join(_shown(m) for m in MANIFESTS[type_])
                self.warn(entry.path, f"not {_NOUN[type_]}: expected a folder holding {expected}; skipped")

    def _markdown_tree(self, type_: str, folder: _Node, *, top: bool) -> None:
        """agents/ and commands/: every .md file at any depth, and the folder form directly
        below the type folder (whose files are part of it, not artifacts of their own).
        """
        for entry in (folder.children or {}).values():
            if entry.name.startswith("."):
                continue
            kind = self._usable(entry)
            if kind == "d":
                manifest = _manifest(type_, entry) if top else None
                if manifest is not None:
                    self._add(type_, entry, manifest, entry.name)
                else:
                    self._markdown_tree(type_, entry, top=False)
            elif kind == "f" and entry.name.lower().endswith(".md") and len(entry.name) > 3:
                if entry.name.lower() not in EXCLUDED_MARKDOWN:
                    self._add(type_, entry, entry.path, entry.name[:-3])
            elif kind is not None:
                expected = f"a .md file or a folder holding {type_.upper()}.md"
                self.warn(entry.path, f"not {_NOUN[type_]}: expected {expected}; skipped")

    def _add(self, type_: str, entry: _Node, meta_file: str, name: str) -> None:
        if entry.effective == "d":
            escape = _subtree_escape(entry)
            if escape is not None:
                self.warn(escape, "symlink resolves outside the project; artifact skipped")
                return
        markdown = not meta_file.endswith(".json")
        try:
            # One read of the manifest serves both the hash and the frontmatter.
            digest, head = hash_and_head(entry.path, meta_file if markdown else None, FRONTMATTER_READ_LIMIT + 1)
        except OSError as exc:
            self.warn(entry.path, f"content not readable: {exc.strerror or exc}; skipped")
            return
        meta: Meta
        if not markdown:
            meta = read_mcp_json(meta_file, self.warn)
        elif head is None:  # not met by the walk (a link to a file outside the folder)
            meta = read_markdown(meta_file, self.warn)
        else:
            truncated = len(head) > FRONTMATTER_READ_LIMIT
            meta = markdown_meta(head[:FRONTMATTER_READ_LIMIT], truncated, meta_file, self.warn)
        artifact = ArtifactOnDisk(
            type=type_,
            name=name,
            path=Path(entry.path),
            content_hash=digest,
            deployed_version=meta.version,
            source=meta.source,
            description=meta.description,
            tags=meta.tags,
            aliases=meta.aliases,
            data=meta.data,
            rel=entry.rel,
        )
        rels = [entry.rel]
        if entry.effective == "d":
            rels.append(f"{entry.rel}/{os.path.basename(meta_file)}")
        _apply_deployment(artifact, meta.state, rels, self.deployed)
        self.found.append(artifact)

    def config(self, found: Iterable[ConfigArtifact]) -> None:
        for item in found:
            self.found.append(
                ArtifactOnDisk(
                    type=item.type,
                    name=item.name,
                    path=Path(self.project, *item.path.split("/")),
                    content_hash=item.content_hash,
                    description=item.description,
                    data=item.data,
                    rel=item.path,
                )
            )


def _shown(manifest: str) -> str:
    """A manifest name as SkillMeat writes it (``SKILL.md``, ``mcp.json``)."""
    return manifest[:-3].upper() + ".md" if manifest.endswith(".md") else manifest


def _manifest(type_: str, folder: _Node) -> str | None:
    """The manifest of a folder-form artifact (name matched in any case), when it is a
    regular file (or a link to one inside the project); the first of MANIFESTS wins.
    """
    by_lower: dict[str, _Node] = {}
    for child in (folder.children or {}).values():
        by_lower.setdefault(child.name.lower(), child)
    for manifest in MANIFESTS[type_]:
        child = by_lower.get(manifest)
        if child is not None and child.effective == "f":
            return child.path
    return None


def _usable_file(node: _Node | None, warn: _Warn) -> str | None:
    """The path of a profile-level file the walk saw, unless it is a link leaving the project."""
    if node is None:
        return None
    if node.kind == "l" and not node.inside:
        warn(node.path, "symlink resolves outside the project; not read")
        return None
    if node.kind == "l" and node.target is None:
        warn(node.path, "broken symlink; not read")
        return None
    return node.path


_CLAUDE_STATES = {
    "missing": "no .claude folder",
    "outside": ".claude is a symlink that resolves outside the project; not read",
    "notdir": ".claude is not a folder",
}


def read_project(project: Path | str) -> ProjectOnDisk:
    """Read a project folder: its name, description, fingerprint and artifacts.

    The fingerprint (see :func:`project_fingerprint`) is taken first, from the same walk
    that lists the profile roots, so a change made while reading shows in the next one.

    Artifacts (sorted by type, name, then path; see the module docstring for the layout):

    - ``rel`` is the path relative to the project folder; ``name`` is the file stem, or the
      folder name for folder forms, unless a ``[[deployed]]`` record names the same path:
      its ``artifact_name`` wins. Two artifacts of one type and name (two nested commands
      with one stem, one skill under ``.claude`` and ``.codex``) are both returned.
    - ``deployed_version``, ``tags``, ``aliases``, ``description`` and ``source`` (else
      ``upstream``) are the text exactly as written; ``version`` and ``tags`` under a
      nested ``metadata:`` mapping count when the top level has none; ``tags`` written as
      one comma-separated string is split. ``data`` is the whole frontmatter, JSON-ready.
    - YAML that does not parse: ``name`` and ``description`` are recovered from the
      top-level lines when present (as Claude Code does), with a warning saying so;
      otherwise ``data`` is None, with a warning. No frontmatter: ``data`` None, no warning.
    - Hooks come from ``settings.json`` / ``settings.local.json`` and MCP servers from
      ``.mcp.json`` (see :mod:`.config_files`).
    - ``[[deployed]]`` records match by path (``artifact_path`` relative to the record's
      profile root; a folder-form artifact's manifest path matches too), else by
      (``artifact_type``, ``artifact_name``) for records without a path. ``local_modified``
      is True when the record's ``content_hash`` differs. A record whose path is missing,
      names a documentation file, or is not an artifact by these rules is a warning.
    - Symlinks are followed when they resolve inside the project (an artifact linked from
      one profile into another counts under each); one that leaves the project or
      dangles is a warning, and a folder artifact holding such a link is skipped.

    A folder without any profile root gives a warning and no artifacts. Raises
    FileNotFoundError or NotADirectoryError when ``project`` is not an existing folder.
    """
    real = os.path.realpath(os.fspath(project))
    st = os.stat(real)  # FileNotFoundError for a missing project
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"not a folder: {real}")
    warnings: list[ScanWarning] = []
    warn = _collector(warnings)
    fingerprint, walk = _walk_project(real, warn)

    name = os.path.basename(real) or real
    description: str | None = None
    claude = walk.claude
    if claude is not None and claude.state != "ok" and (claude.state != "missing" or not walk.profiles):
        reason = _CLAUDE_STATES.get(claude.state) or f".claude not readable: {claude.reason}"
        warn(claude.path, reason)
    deployed = _Deployed()
    for profile in walk.profiles:
        path = _usable_file(profile.files.get(DEPLOYED_FILE), warn)
        if path is not None:
            _parse_deployed(deployed, load_toml(path, warn), profile.name, path, warn)
    reader = _Reader(real, warn, deployed)
    used_hook_names: set[str] = set()
    for profile in walk.profiles:
        if profile is claude:
            path = _usable_file(profile.files.get(PROJECT_FILE), warn)
            settings = load_toml(path, warn) if path is not None else None
            if path is not None and settings is not None:
                name, description = _project_settings(settings, name, path, warn)
        reader.profile(profile)
        for settings_file in SETTINGS_FILES:
            path = _usable_file(profile.files.get(settings_file), warn)
            if path is not None:
                rel = f"{profile.name}/{settings_file}"
                reader.config(hooks_from_settings(path, rel, real, used_hook_names, warn))
    mcp_path = _usable_file(walk.mcp, warn)
    if mcp_path is not None and walk.profiles:
        reader.config(mcp_servers(mcp_path, MCP_FILE, warn))
    if walk.profiles:
        _warn_unmatched(deployed, real, warn)
    state = "ok" if walk.profiles else (claude.state if claude is not None else "missing")
    return ProjectOnDisk(
        path=Path(real),
        name=name,
        description=description,
        fingerprint=fingerprint,
        artifacts=sorted(reader.found, key=lambda a: (a.type, a.name, a.rel)),
        warnings=warnings,
        claude=state,
        profiles=[p.name for p in walk.profiles],
    )


def _project_settings(doc: dict[str, Any], fallback: str, path: str, warn: _Warn) -> tuple[str, str | None]:
    """Name and description from SkillMeat's project file: its ``[project]`` table (as
    SkillMeat writes it), or top-level keys (the older form).
    """
    table = doc.get("project")
    if isinstance(table, dict):
        doc = table
    elif table is not None:
        warn(path, "'project' is not a table; top-level keys used")
    name = fallback
    raw_name = doc.get("name")
    if raw_name is not None:
        if isinstance(raw_name, str) and raw_name.strip() and is_valid_text(raw_name):
            name = raw_name
        else:
            warn(path, "'name' is not usable text; folder name used")
    description = doc.get("description")
    if description is not None and not (isinstance(description, str) and is_valid_text(description)):
        warn(path, "'description' is not usable text; ignored")
        description = None
    return name, description or None

"""Find SkillMeat projects on disk and read them into plain dataclasses.

A pure filesystem layer: no database, no console output. Three entry points:

- :func:`discover_projects` walks folders (``os.scandir``, lazily) and yields every project
  folder (see :func:`is_project_folder`).
- :func:`project_fingerprint` digests the stat data (never the contents) of everything
  :func:`read_project` reads, so a caller can skip a project whose fingerprint is unchanged.
- :func:`read_project` reads a project's profile folders: its artifacts (skills, agents,
  commands, hooks, MCP servers) with their metadata and content hashes, and SkillMeat's
  ``.skillmeat-project.toml`` and ``.skillmeat-deployed.toml``.

Nothing here raises for a bad file: each problem becomes a :class:`ScanWarning` and the scan
goes on. Nothing outside the project (or the discovery root) is read and nothing is executed.

Profile roots (SkillMeat's): ``.claude``, ``.codex``, ``.gemini``, ``.cursor``. ``.claude/``
always makes a project; the others only when they hold ``skills/``, ``agents/`` or
``commands/``. In each profile root (anything else in it is ignored quietly)::

    skills/<name>/SKILL.md          (manifest name in any case: skill.md too)
    agents/**/<name>.md             (any depth; README/CHANGELOG/LICENSE/CONTRIBUTING.md excluded)
    agents/<name>/AGENT.md          (folder form, directly under agents/)
    commands/**/<name>.md           commands/<name>/COMMAND.md
    hooks/<name>/HOOK.md            (older form; other files under hooks/ are hook code)
    mcp/<name>/MCP.md  or  mcp/<name>/mcp.json
    settings.json, settings.local.json   key "hooks" (see config_files)
    .skillmeat-deployed.toml        ([[deployed]] records)
    .skillmeat-project.toml         (.claude only: a [project] table, or top-level keys)

and at the project root ``.mcp.json`` (key ``mcpServers``).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config_files import MCP_FILE, SETTINGS_FILES, ConfigArtifact, hooks_from_settings, mcp_servers
from .formats import (
    FRONTMATTER_READ_LIMIT,
    Meta,
    Warn,
    is_valid_text,
    load_toml,
    one_line,
    read_markdown,
    read_mcp_json,
    text_path,
)
from .hashing import content_hash
from .values import ARTIFACT_TYPES

__all__ = [
    "FRONTMATTER_READ_LIMIT",
    "PROFILE_ROOTS",
    "ArtifactOnDisk",
    "ProjectOnDisk",
    "ScanWarning",
    "discover_projects",
    "is_project_folder",
    "project_fingerprint",
    "read_project",
]

#: SkillMeat's profile roots; the first is Claude Code's and always makes a project.
PROFILE_ROOTS: tuple[str, ...] = (".claude", ".codex", ".gemini", ".cursor")
#: What a profile root other than ``.claude`` must hold to count.
ARTIFACT_FOLDERS: tuple[str, ...] = ("skills", "agents", "commands")
#: Profile sub-folder -> artifact type.
TYPE_FOLDERS: dict[str, str] = {
    "agents": "agent",
    "commands": "command",
    "hooks": "hook",
    "mcp": "mcp",
    "skills": "skill",
}
#: The file a folder-form artifact must hold, by type, lower case (matched in any case;
#: the first one present is read).
MANIFESTS: dict[str, tuple[str, ...]] = {
    "agent": ("agent.md",),
    "command": ("command.md",),
    "hook": ("hook.md",),
    "mcp": ("mcp.md", "mcp.json"),
    "skill": ("skill.md",),
}
_NOUN = {"skill": "a skill", "agent": "an agent", "command": "a command", "hook": "a hook", "mcp": "an MCP server"}
#: Markdown files below agents/ and commands/ that are documentation, not artifacts.
EXCLUDED_MARKDOWN = frozenset({"readme.md", "changelog.md", "license.md", "contributing.md"})

PROJECT_FILE = ".skillmeat-project.toml"
DEPLOYED_FILE = ".skillmeat-deployed.toml"
_PROFILE_FILES = frozenset({PROJECT_FILE, DEPLOYED_FILE, *SETTINGS_FILES})
_SKIPPED_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__"})
_MAX_DEPTH = 40  # folders below a type folder (symlink loops are caught before this)

# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class ScanWarning:
    """A problem met while scanning; the scan went on without the thing concerned."""

    path: str  # the file or folder concerned (absolute)
    message: str  # short reason, one line


@dataclass
class ArtifactOnDisk:
    """One artifact found in a project."""

    type: str
    name: str
    path: Path  # absolute, through the project folder
    content_hash: str
    deployed_version: str | None = None
    source: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    data: dict[str, Any] | None = None
    local_modified: bool = False
    #: The path relative to the project folder, POSIX (``.claude/agents/pm/prd-writer.md``).
    rel: str = ""


@dataclass
class ProjectOnDisk:
    """A project folder as read from disk."""

    path: Path
    name: str
    description: str | None
    fingerprint: str
    artifacts: list[ArtifactOnDisk]
    warnings: list[ScanWarning]
    #: ok when at least one profile root was read; otherwise what was found at ``.claude``:
    #: missing, outside (a symlink leading out of the project), notdir, error (not readable).
    claude: str = "ok"
    #: The profile roots read, in PROFILE_ROOTS order.
    profiles: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers

_Warn = Warn


def _collector(warnings: list[ScanWarning] | None) -> _Warn:
    def warn(path: str, message: str) -> None:
        if warnings is not None:
            warnings.append(ScanWarning(text_path(os.fspath(path)), one_line(message)))

    return warn


def _inside(real: str, root_real: str) -> bool:
    """Whether the resolved path ``real`` is ``root_real`` or lies below it."""
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _is_profile(path: str, name: str) -> bool:
    """Whether ``path`` (a profile root named ``name``) makes its folder a project."""
    if not os.path.isdir(path):
        return False
    return name == PROFILE_ROOTS[0] or any(os.path.isdir(os.path.join(path, sub)) for sub in ARTIFACT_FOLDERS)


def is_project_folder(path: Path | str) -> bool:
    """Whether ``path`` holds ``.claude/``, or another profile root (``.codex``, ``.gemini``,
    ``.cursor``) holding ``skills/``, ``agents/`` or ``commands/``.
    """
    folder = os.fspath(path)
    try:
        return any(_is_profile(os.path.join(folder, name), name) for name in PROFILE_ROOTS)
    except (OSError, ValueError):
        return False


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


# --------------------------------------------------------------------------- the profile walk


@dataclass(slots=True, eq=False)
class _Node:
    """One entry below a profile root as seen (lstat) by the fingerprint walk."""

    name: str
    path: str  # absolute, through the project folder (not resolved)
    rel: str  # POSIX, relative to the project folder
    kind: str  # "d" folder, "f" regular file, "l" symlink, "o" other
    real: str | None = None  # symlinks: resolved target
    inside: bool = True  # symlinks: target within the project
    target: str | None = None  # symlinks inside the project: kind of the target; None: dangling
    children: dict[str, _Node] | None = None  # listed folders (and followed links), sorted by name
    error: str | None = None  # folders that could not be listed
    ident: tuple[int, int] | None = None  # folders: (st_dev, st_ino), to catch symlink loops
    parent: _Node | None = None

    @property
    def effective(self) -> str | None:
        """The kind of what the entry leads to: "d", "f", "o"; None for a link not followed."""
        if self.kind != "l":
            return self.kind
        return self.target if self.inside else None


@dataclass(slots=True)
class _Profile:
    """What the walk saw of one profile root."""

    name: str
    path: str
    state: str = "ok"  # ok | missing | outside | notdir | error
    reason: str | None = None
    types: dict[str, _Node] = field(default_factory=dict)  # type folder name -> node
    files: dict[str, _Node] = field(default_factory=dict)  # file name -> node


@dataclass(slots=True)
class _Walk:
    project: str
    profiles: list[_Profile] = field(default_factory=list)  # the readable ones, in order
    claude: _Profile | None = None  # .claude, whatever its state
    mcp: _Node | None = None


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "l"
    if stat.S_ISDIR(mode):
        return "d"
    if stat.S_ISREG(mode):
        return "f"
    return "o"


class _Fingerprint:
    def __init__(self) -> None:
        self._digest = hashlib.sha256(b"skillmeat-project-fingerprint/2\n")

    def add(self, rel: str, kind: str, st: os.stat_result | None = None) -> None:
        line = f"{rel}\0{kind}"
        if st is not None:
            line += f"\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}"
        self._digest.update(line.encode("utf-8", "surrogateescape") + b"\n")

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _record(fp: _Fingerprint, node: _Node, st: os.stat_result, project: str) -> os.stat_result | None:
    """Digest one entry; for a symlink also resolve it and digest its target's stat when the
    target lies inside the project. Returns the stat of what the entry leads to (None for a
    link not followed).
    """
    fp.add(node.rel, node.kind, st)
    if node.kind != "l":
        return st
    node.real = os.path.realpath(node.path)
    node.inside = _inside(node.real, project)
    if not node.inside:
        fp.add(node.rel, "->outside")
        return None
    try:
        target = os.stat(node.path)
    except OSError:
        fp.add(node.rel, "->missing")
        return None
    node.target = _kind(target.st_mode)
    fp.add(node.rel, "->", target)
    return target


def _loops(node: _Node, ident: tuple[int, int]) -> bool:
    current = node.parent
    while current is not None:
        if current.ident == ident:
            return True
        current = current.parent
    return False


def _walk_tree(top: _Node, fp: _Fingerprint, project: str, warn: _Warn) -> None:
    """List ``top`` and everything below it (pre-order, sorted by name) into the digest,
    following symlinks that resolve inside the project (a link back to an ancestor is a
    loop: warned, not followed).
    """
    stack = [(top, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder.path) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            folder.error = exc.strerror or str(exc)
            fp.add(folder.rel, "unreadable")
            warn(folder.path, f"folder not readable: {folder.error}")
            continue
        children: dict[str, _Node] = {}
        subfolders: list[_Node] = []
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            node = _Node(entry.name, entry.path, f"{folder.rel}/{entry.name}", _kind(st.st_mode), parent=folder)
            leads_to = _record(fp, node, st, project)
            children[entry.name] = node
            if leads_to is None or not stat.S_ISDIR(leads_to.st_mode):
                continue
            node.ident = (leads_to.st_dev, leads_to.st_ino)
            if _loops(node, node.ident):  # only a symlink can lead back to an ancestor
                fp.add(node.rel, "->loop")
                warn(node.path, "folder already walked above it (a symlink loop); not followed")
            elif depth >= _MAX_DEPTH:
                warn(node.path, f"more than {_MAX_DEPTH} folders deep; not read")
            else:
                subfolders.append(node)
        folder.children = children
        stack.extend((sub, depth + 1) for sub in reversed(subfolders))


def _walk_profile(project: str, name: str, fp: _Fingerprint, warn: _Warn) -> _Profile | None:
    """Walk one profile root; None when it is absent or (not ``.claude``) does not count."""
    profile = _Profile(name, os.path.join(project, name))
    primary = name == PROFILE_ROOTS[0]
    try:
        st = os.lstat(profile.path)
    except FileNotFoundError:
        return _Profile(name, profile.path, "missing") if primary else None
    except OSError as exc:
        profile.state, profile.reason = "error", exc.strerror or str(exc)
        fp.add(name, "error")
        return profile
    if stat.S_ISLNK(st.st_mode):
        if not _inside(os.path.realpath(profile.path), project):
            profile.state = "outside"
            fp.add(name, "->outside")
            return profile if primary or _is_profile(profile.path, name) else None
        try:
            st = os.stat(profile.path)
        except OSError:
            return _Profile(name, profile.path, "missing") if primary else None
    if not stat.S_ISDIR(st.st_mode):
        if primary:
            profile.state = "notdir"
            fp.add(name, "notdir")
            return profile
        return None
    try:
        with os.scandir(profile.path) as listing:
            wanted = sorted(
                (e for e in listing if e.name in TYPE_FOLDERS or e.name in _PROFILE_FILES), key=lambda e: e.name
            )
    except OSError as exc:
        profile.state, profile.reason = "error", exc.strerror or str(exc)
        fp.add(name, "error")
        return profile
    if not primary and not any(e.name in ARTIFACT_FOLDERS and _is_dir(e) for e in wanted):
        return None  # an editor's settings folder, not a profile
    fp.add(name, "profile")  # not its stat: its mtime moves with entries read_project ignores
    root = _Node(name, profile.path, name, "d", ident=(st.st_dev, st.st_ino))
    for entry in wanted:
        try:
            est = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # vanished meanwhile
        node = _Node(entry.name, entry.path, f"{name}/{entry.name}", _kind(est.st_mode), parent=root)
        leads_to = _record(fp, node, est, project)
        if entry.name in TYPE_FOLDERS:
            profile.types[entry.name] = node
            if leads_to is not None and stat.S_ISDIR(leads_to.st_mode):
                node.ident = (leads_to.st_dev, leads_to.st_ino)
                _walk_tree(node, fp, project, warn)
        else:
            profile.files[entry.name] = node
    return profile


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _walk_project(project: str, warn: _Warn) -> tuple[str, _Walk]:
    """Stat (never read) everything read_project reads; return the fingerprint and the tree."""
    fp = _Fingerprint()
    walk = _Walk(project)
    for name in PROFILE_ROOTS:
        profile = _walk_profile(project, name, fp, warn)
        if profile is None:
            continue
        if name == PROFILE_ROOTS[0]:
            walk.claude = profile
        if profile.state == "ok":
            walk.profiles.append(profile)
    if not walk.profiles and walk.claude is not None and walk.claude.state == "missing":
        fp.add(PROFILE_ROOTS[0], "missing")
    path = os.path.join(project, MCP_FILE)
    try:
        st = os.lstat(path)
    except OSError:
        pass
    else:
        walk.mcp = _Node(MCP_FILE, path, MCP_FILE, _kind(st.st_mode))
        _record(fp, walk.mcp, st, project)
    return fp.hexdigest(), walk


def project_fingerprint(project: Path | str) -> str:
    """A cheap digest of the stat data of everything :func:`read_project` reads.

    Covers, in each profile root that counts, the SkillMeat TOML files, the settings files
    and every file and folder below the five type folders (skills, agents, commands, hooks,
    mcp), plus the project's ``.mcp.json``: the relative path, kind, ``st_size``,
    ``st_mtime_ns`` and ``st_ino`` of each, in sorted order, from ``os.scandir`` without
    following symlinks (a symlink contributes its own stat and, when it resolves inside
    the project, its target's stat; a symlinked folder inside the project is walked, as
    read_project follows it). No file content is read. An unchanged tree gives the same
    value; an edited, added or removed artifact file, or a touched settings or TOML file,
    gives another. Not covered: a script outside ``<profile>/hooks/`` named by a hook's
    command (its bytes are in the hook's content hash; a ``--full`` scan rereads it).
    """
    real = os.path.realpath(os.fspath(project))
    fingerprint, _ = _walk_project(real, lambda path, message: None)
    return fingerprint


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
        try:
            digest = content_hash(Path(entry.path))
        except OSError as exc:
            self.warn(entry.path, f"content not readable: {exc.strerror or exc}; skipped")
            return
        read_meta = read_mcp_json if meta_file.endswith(".json") else read_markdown
        meta: Meta = read_meta(meta_file, self.warn)
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

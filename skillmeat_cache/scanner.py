"""Find SkillMeat projects on disk and read them into plain dataclasses.

A pure filesystem layer: no database, no console output. Three entry points:

- :func:`discover_projects` walks folders (``os.scandir``, lazily) and yields every project
  folder, i.e. every folder that holds a ``.claude/`` directory.
- :func:`project_fingerprint` digests the stat data (never the contents) of everything
  :func:`read_project` reads, so a caller can skip a project whose fingerprint is unchanged.
- :func:`read_project` reads a project's ``.claude/`` folder: its artifacts (skills, agents,
  commands, hooks, MCP servers) with their frontmatter and content hashes, and the two
  SkillMeat files ``.skillmeat-project.toml`` and ``.skillmeat-deployed.toml``.

Nothing here raises for a bad file: each problem becomes a :class:`ScanWarning` and the scan
goes on. Nothing outside the project (or the discovery root) is read and nothing is executed.

Layout of ``.claude/`` (anything else in it is ignored quietly)::

    skills/<name>/SKILL.md
    commands/<name>.md        or  commands/<name>/COMMAND.md
    agents/<name>.md          or  agents/<name>/AGENT.md
    hooks/<name>/HOOK.md
    mcp/<name>/MCP.md         or  mcp/<name>/mcp.json
    .skillmeat-project.toml   (name, description)
    .skillmeat-deployed.toml  ([[deployed]] tables)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import posixpath
import stat
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import frontmatter
import yaml

from .errors import ValidationError
from .hashing import content_hash
from .models import ARTIFACT_TYPES, TEXT_LIMITS, check_text

__all__ = [
    "FRONTMATTER_READ_LIMIT",
    "ArtifactOnDisk",
    "ProjectOnDisk",
    "ScanWarning",
    "discover_projects",
    "project_fingerprint",
    "read_project",
]

#: At most this many bytes of a markdown file (or of an ``mcp.json``) are read for metadata.
FRONTMATTER_READ_LIMIT = 256 * 1024

#: ``.claude/`` sub-folder -> artifact type.
TYPE_FOLDERS: dict[str, str] = {
    "agents": "agent",
    "commands": "command",
    "hooks": "hook",
    "mcp": "mcp",
    "skills": "skill",
}
#: The file a folder-form artifact must hold, by type (the first one present is read).
MARKER_FILES: dict[str, tuple[str, ...]] = {
    "agent": ("AGENT.md",),
    "command": ("COMMAND.md",),
    "hook": ("HOOK.md",),
    "mcp": ("MCP.md", "mcp.json"),
    "skill": ("SKILL.md",),
}
#: Types that may also be a single ``<name>.md`` file directly in their type folder.
FILE_FORM_TYPES = frozenset({"agent", "command"})

PROJECT_FILE = ".skillmeat-project.toml"
DEPLOYED_FILE = ".skillmeat-deployed.toml"
_TOML_LIMIT = 16 * 1024 * 1024
_SKIPPED_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__"})
_DATA_BUDGET = 100_000  # values in one frontmatter document (guards against alias bombs)
# libyaml's safe loader when PyYAML was built with it (8x faster), else the pure-Python one.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_NULL = "tag:yaml.org,2002:null"
_YAML_HANDLER = frontmatter.YAMLHandler()

# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class ScanWarning:
    """A problem met while scanning; the scan went on without the thing concerned."""

    path: str  # the file or folder concerned (absolute)
    message: str  # short reason, one line


@dataclass
class ArtifactOnDisk:
    """One artifact found in a project's ``.claude/`` folder."""

    type: str
    name: str
    path: Path
    content_hash: str
    deployed_version: str | None = None
    source: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    data: dict[str, Any] | None = None
    local_modified: bool = False


@dataclass
class ProjectOnDisk:
    """A project folder as read from disk."""

    path: Path
    name: str
    description: str | None
    fingerprint: str
    artifacts: list[ArtifactOnDisk]
    warnings: list[ScanWarning]
    #: What was found at ``.claude``: ok, missing, outside (a symlink leading out of the
    #: project), notdir, error (not readable). Anything but ok means no artifacts were read.
    claude: str = "ok"


# --------------------------------------------------------------------------- helpers

_Warn = Callable[[str, str], None]


def _text_path(path: str) -> str:
    """A path as valid text (undecodable bytes shown as backslash escapes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return path


def _one_line(message: object, limit: int = 300) -> str:
    text = " ".join(_text_path(str(message)).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _collector(warnings: list[ScanWarning] | None) -> _Warn:
    def warn(path: str, message: str) -> None:
        if warnings is not None:
            warnings.append(ScanWarning(_text_path(os.fspath(path)), _one_line(message)))

    return warn


def _is_valid_text(value: str) -> bool:
    """Whether ``value`` passes :func:`check_text` (no NUL byte, no unpaired surrogate)."""
    if value.isascii() and "\x00" not in value:  # the common case, without the call
        return True
    try:
        check_text("text", value)
    except ValidationError:
        return False
    return True


def _inside(real: str, root_real: str) -> bool:
    """Whether the resolved path ``real`` is ``root_real`` or lies below it."""
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


# --------------------------------------------------------------------------- discovery


def discover_projects(
    roots: Iterable[Path | str] | Path | str,
    max_depth: int = 5,
    warnings: list[ScanWarning] | None = None,
) -> Iterator[Path]:
    """Yield the resolved path of every project folder (a folder holding ``.claude/``) under ``roots``.

    A generator: folders are read one at a time with ``os.scandir`` and only the pending
    siblings of the current folder's ancestors are kept, never the whole tree.

    - Each root is level 0 and is itself yielded when it is a project; a folder at most
      ``max_depth`` levels below a root is examined (``max_depth=0``: only the root).
    - Nested projects (a project below a project folder) are found. A project's own
      ``.claude/`` is not walked (it is hidden; :func:`read_project` reads it).
    - Not descended into: hidden folders (name starting with "."), ``.git``,
      ``node_modules``, ``__pycache__``, ``venv``/``.venv`` and any folder holding a
      ``pyvenv.cfg`` (a virtualenv). These rules apply below a root, not to a root itself.
    - Symlinks: symlinked folders are never followed (so a link can neither lead out of a
      root nor form a loop); a symlinked ``.claude`` still marks its folder as a project
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
        if not _is_valid_text(real):
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
            if not _is_valid_text(name):
                warn(child, "folder not scanned: its name is not valid UTF-8 text")
                continue
            stack.append((child, level + 1))


def _classify(listing: Iterable[os.DirEntry[str]], *, venv_check: bool, descend: bool) -> tuple[str, list[str]]:
    """('project' | 'plain' | 'venv', names of the sub-folders to descend into) of one folder."""
    is_project = False
    subdirs: list[str] = []
    for entry in listing:
        name = entry.name
        if name == ".claude":
            is_project = _entry_is_dir(entry, follow=True)
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


# --------------------------------------------------------------------------- the .claude walk


@dataclass(slots=True, eq=False)
class _Node:
    """One entry below ``.claude`` as seen (lstat) by the fingerprint walk."""

    name: str
    path: str  # absolute, through .claude (not resolved)
    rel: str  # POSIX, relative to .claude
    kind: str  # "d" folder, "f" regular file, "l" symlink, "o" other
    real: str | None = None  # symlinks: resolved target
    inside: bool = True  # symlinks: target within the project
    children: dict[str, _Node] | None = None  # listed folders, sorted by name
    error: str | None = None  # folders that could not be listed


@dataclass(slots=True)
class _Claude:
    """What the fingerprint walk saw of ``.claude``."""

    path: str
    state: str = "ok"  # ok | missing | outside | notdir | error
    reason: str | None = None
    types: dict[str, _Node] = field(default_factory=dict)  # type folder name -> node
    tomls: dict[str, _Node] = field(default_factory=dict)  # file name -> node


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
        self._digest = hashlib.sha256(b"skillmeat-project-fingerprint/1\n")

    def add(self, rel: str, kind: str, st: os.stat_result | None = None) -> None:
        line = f"{rel}\0{kind}"
        if st is not None:
            line += f"\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}"
        self._digest.update(line.encode("utf-8", "surrogateescape") + b"\n")

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _record(fp: _Fingerprint, node: _Node, st: os.stat_result, project: str) -> None:
    """Digest one entry; for a symlink also resolve it and digest its target's stat when the
    target lies inside the project (the link itself is never walked).
    """
    fp.add(node.rel, node.kind, st)
    if node.kind != "l":
        return
    node.real = os.path.realpath(node.path)
    node.inside = _inside(node.real, project)
    if not node.inside:
        fp.add(node.rel, "->outside")
        return
    try:
        fp.add(node.rel, "->", os.stat(node.path))
    except OSError:
        fp.add(node.rel, "->missing")


def _walk_claude(project: str, warn: _Warn) -> tuple[str, _Claude]:
    """Stat (never read) everything read_project reads; return the fingerprint and the tree.

    ``project`` is resolved. ``.claude`` and the type folders are followed when they are
    symlinks resolving inside the project; below them no symlink is followed.
    """
    fp = _Fingerprint()
    claude = _Claude(os.path.join(project, ".claude"))
    try:
        st = os.lstat(claude.path)
    except FileNotFoundError:
        claude.state = "missing"
        fp.add(".claude", "missing")
        return fp.hexdigest(), claude
    except OSError as exc:
        claude.state, claude.reason = "error", exc.strerror or str(exc)
        fp.add(".claude", "error")
        return fp.hexdigest(), claude
    if stat.S_ISLNK(st.st_mode):
        real = os.path.realpath(claude.path)
        if not _inside(real, project):
            claude.state = "outside"
            fp.add(".claude", "->outside")
            return fp.hexdigest(), claude
        try:
            st = os.stat(claude.path)
        except OSError:
            claude.state = "missing"
            fp.add(".claude", "->missing")
            return fp.hexdigest(), claude
    if not stat.S_ISDIR(st.st_mode):
        claude.state = "notdir"
        fp.add(".claude", "notdir")
        return fp.hexdigest(), claude
    try:
        with os.scandir(claude.path) as listing:
            wanted = sorted(
                (e for e in listing if e.name in TYPE_FOLDERS or e.name in (PROJECT_FILE, DEPLOYED_FILE)),
                key=lambda e: e.name,
            )
    except OSError as exc:
        claude.state, claude.reason = "error", exc.strerror or str(exc)
        fp.add(".claude", "error")
        return fp.hexdigest(), claude
    for entry in wanted:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # vanished meanwhile
        node = _Node(entry.name, entry.path, entry.name, _kind(st.st_mode))
        _record(fp, node, st, project)
        if entry.name in TYPE_FOLDERS:
            claude.types[entry.name] = node
            if node.kind == "d" or (node.kind == "l" and node.inside and os.path.isdir(node.path)):
                _walk_tree(node, fp, project, warn)
        else:
            claude.tomls[entry.name] = node
    return fp.hexdigest(), claude


def _walk_tree(top: _Node, fp: _Fingerprint, project: str, warn: _Warn) -> None:
    """List ``top`` and everything below it (pre-order, sorted by name) into the digest."""
    stack = [top]
    while stack:
        folder = stack.pop()
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
            node = _Node(entry.name, entry.path, f"{folder.rel}/{entry.name}", _kind(st.st_mode))
            _record(fp, node, st, project)
            children[entry.name] = node
            if node.kind == "d":
                subfolders.append(node)
        folder.children = children
        stack.extend(reversed(subfolders))


def project_fingerprint(project: Path | str) -> str:
    """A cheap digest of the stat data of everything :func:`read_project` reads.

    Covers ``.claude/.skillmeat-project.toml``, ``.claude/.skillmeat-deployed.toml`` and every
    file and folder below the five type folders (skills, agents, commands, hooks, mcp): the
    relative path, kind, ``st_size``, ``st_mtime_ns`` and ``st_ino`` of each, in sorted order,
    from ``os.scandir`` without following symlinks (a symlink contributes its own stat and,
    when it resolves inside the project, its target's stat; a symlinked folder's contents are
    not walked, except ``.claude`` itself and a type folder when they resolve inside the
    project, which read_project follows too). No file content is read. An unchanged tree
    gives the same value; an edited, added or removed artifact file, or a touched toml,
    gives another.
    """
    real = os.path.realpath(os.fspath(project))
    fingerprint, _ = _walk_claude(real, lambda path, message: None)
    return fingerprint


# --------------------------------------------------------------------------- metadata


@dataclass(slots=True)
class _Meta:
    """The metadata of one artifact. ``state``: absent (no frontmatter), ok, broken."""

    state: str = "absent"
    data: dict[str, Any] | None = None
    version: str | None = None
    source: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)


class _TooComplex(Exception):
    pass


_NON_SCALAR = object()  # a raw value that is a list or a mapping


class _Text:
    """Cleans text values: NUL bytes and unpaired surrogates become U+FFFD, once warned."""

    def __init__(self, path: str, warn: _Warn) -> None:
        self.path, self.warn, self.warned = path, warn, False

    def __call__(self, value: str) -> str:
        if _is_valid_text(value):
            return value
        if not self.warned:
            self.warned = True
            self.warn(self.path, "metadata text holds NUL bytes or invalid Unicode; replaced by U+FFFD")
        return "".join("\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch for ch in value)


def _jsonable(value: Any, clean: _Text) -> Any:
    """A JSON-serialisable copy: dates and datetimes as ISO 8601 text, tuples as lists,
    mapping keys as text, anything else JSON cannot hold (bytes, sets, NaN...) as str.
    """
    budget = [_DATA_BUDGET]
    active: set[int] = set()

    def key(k: Any) -> str:
        if isinstance(k, str):
            return clean(k)
        if k is None:
            return "null"
        if isinstance(k, bool):
            return "true" if k else "false"
        return clean(k.isoformat() if isinstance(k, (date, time)) else str(k))

    def convert(v: Any) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooComplex("frontmatter too large once aliases are expanded")
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, str):
            return clean(v)
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return float(v) if math.isfinite(v) else str(v)
        if isinstance(v, (datetime, date, time)):
            return v.isoformat()
        if isinstance(v, (dict, list, tuple)):
            if id(v) in active:
                raise _TooComplex("frontmatter refers to itself (recursive alias)")
            active.add(id(v))
            try:
                if isinstance(v, dict):
                    return {key(k): convert(item) for k, item in v.items()}
                return [convert(item) for item in v]
            finally:
                active.discard(id(v))
        return clean(str(v))

    return convert(value)


def _labels(raw: Any, clean: _Text, limit: int | None = None) -> list[str]:
    """Tags or aliases: a list of scalars (each as written) or one scalar; blanks and
    duplicates dropped, order kept; items over ``limit`` UTF-8 bytes dropped, with a warning.
    """
    if raw is None or raw is _NON_SCALAR:
        return []
    items = raw if isinstance(raw, list) else [raw]
    out = [clean(item) for item in items if isinstance(item, str) and item.strip()]
    if limit is not None:
        kept = [item for item in out if len(item.encode("utf-8")) <= limit]
        if len(kept) < len(out):
            # The frontmatter document keeps them; only the indexed tag list cannot.
            clean.warn(clean.path, f"{len(out) - len(kept)} tags longer than {limit} bytes left out of the tag list")
        out = kept
    return list(dict.fromkeys(out))


def _meta_from_raw(data: dict[str, Any], raw: dict[str, Any], clean: _Text) -> _Meta:
    """Build the metadata from the JSON-ready ``data`` and the as-written ``raw`` texts."""

    def scalar(name: str) -> str | None:
        value = raw.get(name)
        if isinstance(value, str) and value.strip():
            return clean(value)
        return None

    # data carries the as-written text too (version 1.10 stays "1.10", not 1.1).
    for name, value in raw.items():
        if name not in data:
            continue
        if isinstance(value, str):
            data[name] = clean(value)
        elif isinstance(value, list) and isinstance(data[name], list) and len(value) == len(data[name]):
            data[name] = [
                clean(item) if isinstance(item, str) else converted
                for item, converted in zip(value, data[name], strict=True)
            ]
    return _Meta(
        state="ok",
        data=data,
        version=scalar("version"),
        source=scalar("source") or scalar("upstream"),
        description=scalar("description"),
        tags=_labels(raw.get("tags"), clean, TEXT_LIMITS["tags"]),
        aliases=_labels(raw.get("aliases"), clean),
    )


_RAW_KEYS = ("version", "source", "upstream", "description", "tags", "aliases")


def _yaml_raw(node: yaml.MappingNode) -> dict[str, Any]:
    """The as-written text of the scalar fields, from the composed node tree."""

    def text(item: yaml.Node) -> Any:
        if isinstance(item, yaml.ScalarNode):
            return None if item.tag == _YAML_NULL else item.value
        return _NON_SCALAR

    raw: dict[str, Any] = {}
    for key_node, value_node in node.value:  # later duplicates win, as in the constructed dict
        if isinstance(key_node, yaml.ScalarNode) and key_node.value in _RAW_KEYS:
            if isinstance(value_node, yaml.SequenceNode):
                raw[key_node.value] = [text(item) for item in value_node.value]
            else:
                raw[key_node.value] = text(value_node)
    return raw


def _parse_yaml(text: str, path: str, warn: _Warn) -> _Meta:
    loader = _YAML_LOADER(text)
    try:
        node = loader.get_single_node()
        value = loader.construct_document(node) if node is not None else None
    except Exception as exc:  # any parse failure is a warning, never fatal
        warn(path, f"malformed frontmatter: {_yaml_problem(exc)}")
        return _Meta(state="broken")
    finally:
        loader.dispose()
    if value is None:  # empty frontmatter
        return _Meta(state="ok", data={})
    if not isinstance(value, dict) or not isinstance(node, yaml.MappingNode):
        warn(path, f"malformed frontmatter: a {type(value).__name__}, not a mapping")
        return _Meta(state="broken")
    clean = _Text(path, warn)
    try:
        data = _jsonable(value, clean)
    except _TooComplex as exc:
        warn(path, f"malformed frontmatter: {exc}")
        return _Meta(state="broken")
    return _meta_from_raw(data, _yaml_raw(node), clean)


def _yaml_problem(exc: BaseException) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (frontmatter line {mark.line + 1})" if mark is not None else ""
        return f"{exc.problem}{where}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return f"{type(exc).__name__}: {exc}"


def _read_head(path: str, warn: _Warn) -> tuple[bytes, bool] | None:
    """The first FRONTMATTER_READ_LIMIT bytes and whether the file is longer."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(FRONTMATTER_READ_LIMIT + 1)
    except OSError as exc:
        warn(path, f"file not readable: {exc.strerror or exc}")
        return None
    return head[:FRONTMATTER_READ_LIMIT], len(head) > FRONTMATTER_READ_LIMIT


def _decode(head: bytes, truncated: bool, path: str, warn: _Warn) -> str | None:
    if b"\x00" in head:
        warn(path, "binary file (holds NUL bytes); metadata not read")
        return None
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if truncated and exc.start >= len(head) - 3 and exc.reason == "unexpected end of data":
            return head[: exc.start].decode("utf-8-sig")  # the read limit cut a character
        warn(path, f"not UTF-8 text (byte {exc.start}); metadata not read")
        return None


def _read_markdown(path: str, warn: _Warn) -> _Meta:
    """Frontmatter of a markdown file, reading at most FRONTMATTER_READ_LIMIT bytes."""
    read = _read_head(path, warn)
    if read is None:
        return _Meta(state="broken")
    head, truncated = read
    text = _decode(head, truncated, path, warn)
    if text is None:
        return _Meta(state="broken")
    if not _YAML_HANDLER.detect(text):
        return _Meta(state="absent")
    try:
        fm_text, _content = _YAML_HANDLER.split(text)
    except ValueError:
        if truncated:
            warn(path, f"frontmatter does not end within the first {FRONTMATTER_READ_LIMIT // 1024} KiB")
        else:
            warn(path, "malformed frontmatter: no closing '---' line")
        return _Meta(state="broken")
    return _parse_yaml(fm_text, path, warn)


class _RawFloat(float):
    """A JSON number that remembers how it was written."""

    text: str

    def __new__(cls, text: str) -> _RawFloat:
        number = super().__new__(cls, text)
        number.text = text
        return number


class _RawInt(int):
    """A JSON integer that remembers how it was written."""

    text: str

    def __new__(cls, text: str) -> _RawInt:
        number = super().__new__(cls, text)
        number.text = text
        return number


def _json_raw(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_scalar(item) for item in value]
    return _json_scalar(value)


def _json_scalar(value: Any) -> Any:
    if isinstance(value, (_RawFloat, _RawInt)):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float):  # NaN / Infinity literals
        return str(value)
    return _NON_SCALAR


def _read_mcp_json(path: str, warn: _Warn) -> _Meta:
    """An ``mcp.json``: its top-level keys play the role of frontmatter."""
    read = _read_head(path, warn)
    if read is None:
        return _Meta(state="broken")
    head, truncated = read
    if truncated:
        warn(path, f"larger than {FRONTMATTER_READ_LIMIT // 1024} KiB; metadata not read")
        return _Meta(state="broken")
    text = _decode(head, False, path, warn)
    if text is None:
        return _Meta(state="broken")
    try:
        value = json.loads(text, parse_float=_RawFloat, parse_int=_RawInt)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        warn(path, f"malformed JSON: {reason}")
        return _Meta(state="broken")
    if not isinstance(value, dict):
        warn(path, f"malformed mcp.json: a JSON {type(value).__name__}, not an object")
        return _Meta(state="broken")
    clean = _Text(path, warn)
    data = _jsonable(value, clean)
    raw = {k: _json_raw(value[k]) for k in _RAW_KEYS if k in value}
    return _meta_from_raw(data, raw, clean)


# --------------------------------------------------------------------------- TOML files


def _load_toml(node: _Node | None, warn: _Warn) -> dict[str, Any] | None:
    """A toml file below .claude, or None when absent (quietly) or unusable (warned)."""
    if node is None:
        return None
    if node.kind == "l" and not node.inside:
        warn(node.path, "symlink resolves outside the project; not read")
        return None
    try:
        st = os.stat(node.path)
        if not stat.S_ISREG(st.st_mode):
            warn(node.path, "not a regular file; not read")
            return None
        if st.st_size > _TOML_LIMIT:
            warn(node.path, f"larger than {_TOML_LIMIT // (1024 * 1024)} MiB; not read")
            return None
        with open(node.path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        warn(node.path, f"malformed TOML: {exc}")
    except UnicodeDecodeError:
        warn(node.path, "malformed TOML: not UTF-8 text")
    except OSError as exc:
        warn(node.path, f"file not readable: {exc.strerror or exc}")
    return None


@dataclass(slots=True)
class _Deployed:
    by_path: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_type_name: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def find(self, type_: str, name: str, rels: Iterable[str]) -> dict[str, Any] | None:
        for rel in rels:
            entry = self.by_path.get(rel)
            if entry is not None:
                return entry
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


def _parse_deployed(doc: dict[str, Any] | None, path: str, warn: _Warn) -> _Deployed:
    deployed = _Deployed()
    if doc is None:
        return deployed
    entries = doc.get("deployed", [])
    if not isinstance(entries, list):
        warn(path, "malformed deployment record: 'deployed' is not an array of tables")
        return deployed
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            warn(path, f"malformed deployment record: deployed[{index}] is not a table; ignored")
            continue
        rel = entry.get("artifact_path")
        if isinstance(rel, str) and rel.strip():
            key = _normalise_rel(rel)
            if key is not None:
                deployed.by_path[key] = entry  # a later record of the same path wins
            continue
        type_, name = _deployed_type(entry.get("artifact_type")), entry.get("artifact_name")
        if type_ is not None and isinstance(name, str):
            deployed.by_type_name[(type_, name)] = entry
    return deployed


def _normalise_hash(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip().lower()
    return value.removeprefix("sha256:")


# --------------------------------------------------------------------------- reading a project


def _find_escape(folder: str, project: str) -> str | None:
    """The first symlink below ``folder`` (not following any) that resolves outside the project."""
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                if not _inside(os.path.realpath(entry.path), project):
                    return entry.path
            elif _entry_is_dir(entry, follow=False):
                stack.append(entry.path)
    return None


def _subtree_escape(node: _Node) -> str | None:
    """The first walked symlink below ``node`` that resolves outside the project."""
    stack = [node]
    while stack:
        current = stack.pop()
        for child in (current.children or {}).values():
            if child.kind == "l" and not child.inside:
                return child.path
            if child.kind == "d":
                stack.append(child)
    return None


class _Reader:
    """Reads the artifacts of one project from the walked ``.claude`` tree."""

    def __init__(self, project: str, claude: _Claude, warn: _Warn) -> None:
        self.project, self.claude, self.warn = project, claude, warn

    def artifacts(self, deployed: _Deployed) -> list[ArtifactOnDisk]:
        found: dict[tuple[str, str], ArtifactOnDisk] = {}
        for folder_name, type_ in TYPE_FOLDERS.items():
            node = self.claude.types.get(folder_name)
            if node is None:
                continue
            if node.kind == "l" and not node.inside:
                self.warn(node.path, "symlink resolves outside the project; not followed")
                continue
            if node.children is None:
                if node.error is None:
                    self.warn(node.path, f"'{folder_name}' is not a folder; ignored")
                continue
            # File-form entries first so that agents/x.md wins over agents/x/.
            entries = sorted(node.children.values(), key=lambda n: (n.kind == "d", n.name))
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                built = self._artifact(type_, entry)
                if built is None:
                    continue
                artifact, meta_state, marker_rel = built
                key = (artifact.type, artifact.name)
                if key in found:
                    self.warn(entry.path, f"duplicate {type_} '{artifact.name}' ({found[key].path} kept); ignored")
                    continue
                _apply_deployment(artifact, meta_state, [entry.rel, *marker_rel], deployed)
                found[key] = artifact
        return sorted(found.values(), key=lambda a: (a.type, a.name))

    def _artifact(self, type_: str, entry: _Node) -> tuple[ArtifactOnDisk, str, list[str]] | None:
        """The artifact, its frontmatter state and the extra paths a deployment record may
        name it by (a folder-form artifact's marker files); None when skipped (warned).
        """
        warn = self.warn
        if not _is_valid_text(entry.name):
            warn(entry.path, "name is not valid UTF-8 text; skipped")
            return None
        kind = entry.kind
        if kind == "l":
            if not entry.inside:
                warn(entry.path, "symlink resolves outside the project; skipped")
                return None
            try:
                kind = _kind(os.stat(entry.path).st_mode)
            except OSError:
                warn(entry.path, "broken symlink; skipped")
                return None
            escape = _find_escape(entry.path, self.project) if kind == "d" else None
        else:
            escape = _subtree_escape(entry) if kind == "d" else None
        if escape is not None:
            warn(escape, "symlink resolves outside the project; artifact skipped")
            return None
        if kind == "d":
            if entry.error is not None:
                return None  # already warned by the walk
            marker = self._marker(type_, entry)
            if marker is None:
                expected = " or ".join(MARKER_FILES[type_])
                warn(entry.path, f"not a {type_}: no {expected} in it; skipped")
                return None
            name, meta_file = entry.name, marker
            marker_rels = [f"{entry.rel}/{m}" for m in MARKER_FILES[type_]]
        elif kind == "f" and type_ in FILE_FORM_TYPES and entry.name.endswith(".md") and len(entry.name) > 3:
            name, meta_file, marker_rels = entry.name[:-3], entry.path, []
        else:
            if type_ in FILE_FORM_TYPES:
                expected = f"a <name>.md file or a folder holding {MARKER_FILES[type_][0]}"
            else:
                expected = f"a folder holding {' or '.join(MARKER_FILES[type_])}"
            warn(entry.path, f"not a {type_}: expected {expected}; skipped")
            return None
        try:
            digest = content_hash(Path(entry.path))
        except OSError as exc:
            warn(entry.path, f"content not readable: {exc.strerror or exc}; skipped")
            return None
        read_meta = _read_mcp_json if meta_file.endswith(".json") else _read_markdown
        meta = read_meta(meta_file, warn)
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
        )
        return artifact, meta.state, marker_rels

    def _marker(self, type_: str, entry: _Node) -> str | None:
        """The marker file of a folder-form artifact, when it is (or links to) a regular file."""
        for marker in MARKER_FILES[type_]:
            path = os.path.join(entry.path, marker)
            child = entry.children.get(marker) if entry.children is not None else None
            if child is not None and child.kind == "f":
                return path
            if child is None and entry.children is not None:
                continue
            try:  # a symlink (already checked to stay inside), or a folder reached through one
                if stat.S_ISREG(os.stat(path).st_mode):
                    return path
            except OSError:
                continue
        return None


def _apply_deployment(artifact: ArtifactOnDisk, meta_state: str, rels: list[str], deployed: _Deployed) -> None:
    record = deployed.find(artifact.type, artifact.name, rels)
    if record is None:
        return
    recorded = _normalise_hash(record.get("content_hash"))
    artifact.local_modified = recorded is not None and recorded != artifact.content_hash
    collection = record.get("from_collection")
    if isinstance(collection, str) and collection.strip():
        if artifact.data is not None:
            artifact.data["from_collection"] = collection
        elif meta_state == "absent":
            artifact.data = {"from_collection": collection}


def read_project(project: Path | str) -> ProjectOnDisk:
    """Read a project folder: its name, description, fingerprint and artifacts.

    The fingerprint (see :func:`project_fingerprint`) is taken first, from the same walk
    that lists ``.claude``, so a change made while reading shows in the next fingerprint.

    Artifacts (sorted by type, then name):

    - ``name`` is the folder name, or the file stem for ``agents/<name>.md`` and
      ``commands/<name>.md``; the frontmatter ``name`` stays in ``data``. When both
      ``agents/x.md`` and ``agents/x/`` exist the file wins and the folder is warned about.
      An ``mcp/<name>/`` folder holding both ``MCP.md`` and ``mcp.json`` is read from MCP.md.
    - ``deployed_version``, ``tags``, ``aliases``, ``description`` and ``source`` (else
      ``upstream``) are the text exactly as written (taken from the YAML node tree, or from
      the JSON text for ``mcp.json``); blank values count as absent, blank and duplicate tags
      and aliases are dropped. ``data`` is the whole frontmatter made JSON-ready, holding
      the same as-written text for those keys (``version: 1.10`` gives ``"1.10"``).
    - Only the first FRONTMATTER_READ_LIMIT bytes of a markdown file are read for its
      frontmatter (and checked for UTF-8); the content hash streams the whole artifact.
    - A broken frontmatter (YAML error, not a mapping, not closed, non-UTF-8 or binary file)
      gives a warning; the artifact is still returned with ``data`` None and no metadata. A
      file without frontmatter gives ``data`` None and no warning.
    - From ``.skillmeat-deployed.toml``: an artifact matches a ``[[deployed]]`` record by
      ``artifact_path`` (normalised, relative to ``.claude``; the path of a folder-form
      artifact's marker file matches too), else by (``artifact_type``, ``artifact_name``)
      for records without ``artifact_path``; a later record wins. ``local_modified`` is True
      when the record's ``content_hash`` differs from the current one. ``from_collection``
      is added to ``data``; when the frontmatter is absent ``data`` becomes
      ``{"from_collection": ...}``, when it is broken ``data`` stays None.
    - Invalid entries of a type folder are warned about and skipped; hidden entries and the
      other entries of ``.claude`` are ignored quietly. Symlinks inside ``.claude`` are
      followed only when they resolve inside the project; otherwise (also for a link deep in
      an artifact folder, which the content hash would follow) the artifact is skipped with
      a warning.

    A folder without ``.claude`` gives a warning and no artifacts. Raises FileNotFoundError
    or NotADirectoryError when ``project`` is not an existing folder.
    """
    real = os.path.realpath(os.fspath(project))
    st = os.stat(real)  # FileNotFoundError for a missing project
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"not a folder: {real}")
    warnings: list[ScanWarning] = []
    warn = _collector(warnings)
    fingerprint, claude = _walk_claude(real, warn)

    name = os.path.basename(real) or real
    description: str | None = None
    artifacts: list[ArtifactOnDisk] = []
    if claude.state != "ok":
        reasons = {
            "missing": "no .claude folder",
            "outside": ".claude is a symlink that resolves outside the project; not read",
            "notdir": ".claude is not a folder",
            "error": f".claude not readable: {claude.reason}",
        }
        warn(claude.path, reasons[claude.state])
    else:
        settings = _load_toml(claude.tomls.get(PROJECT_FILE), warn)
        if settings is not None:
            name, description = _project_settings(settings, name, claude.tomls[PROJECT_FILE].path, warn)
        deployed_node = claude.tomls.get(DEPLOYED_FILE)
        deployed_doc = _load_toml(deployed_node, warn)
        deployed = _parse_deployed(deployed_doc, deployed_node.path if deployed_node else "", warn)
        artifacts = _Reader(real, claude, warn).artifacts(deployed)
    return ProjectOnDisk(
        path=Path(real),
        name=name,
        description=description,
        fingerprint=fingerprint,
        artifacts=artifacts,
        warnings=warnings,
        claude=claude.state,
    )


def _project_settings(doc: dict[str, Any], fallback: str, path: str, warn: _Warn) -> tuple[str, str | None]:
    name = fallback
    raw_name = doc.get("name")
    if raw_name is not None:
        if isinstance(raw_name, str) and raw_name.strip() and _is_valid_text(raw_name):
            name = raw_name
        else:
            warn(path, "'name' is not usable text; folder name used")
    description = doc.get("description")
    if description is not None and not (isinstance(description, str) and _is_valid_text(description)):
        warn(path, "'description' is not usable text; ignored")
        description = None
    return name, description or None

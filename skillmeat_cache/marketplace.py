"""Marketplace files and update checks.

``marketplace import FILE`` reads either of two formats (at most MAX_MARKETPLACE_BYTES; a
UTF-8 byte order mark is accepted):

- **Ours**: a JSON list of ``{"id", "name", "type", "url"?, "description"?, "version"?,
  "source"?}`` objects.
- **Claude Code's** ``.claude-plugin/marketplace.json``: ``{"name", "owner", "plugins":
  [{"name", "source", "version"?, "description"?, "agents"?, "commands"?, "skills"?}]}``.
  A plugin is a bundle, not an artifact: it becomes one entry per component it holds,
  with id ``<marketplace>/<plugin>/<type>/<name>``, the plugin's version, description and
  source. Components are the paths its ``agents``, ``commands`` and ``skills`` lists name
  (name: file stem, or folder name for skills); a plugin listing none is read from its
  folder when its ``source`` is a relative path that exists beside the file (the folder
  holding ``.claude-plugin/``): ``agents/**/*.md``, ``commands/**/*.md``,
  ``skills/<name>/SKILL.md``, as a scan reads them. A plugin whose components cannot be
  known (a remote source, a folder not there) gives no entry and is counted as skipped.
  ``source`` is stored as one text: a string as written (a relative one as
  ``<marketplace>:<path>``), ``{"source": "github", "repo": "o/n"}`` as ``github:o/n``,
  a ``url`` or ``git`` source as its URL, ``{"source": "npm", "package": p}`` as
  ``npm:p``, anything else as ``<kind>:<the rest as canonical JSON>``.

Values are text as written: the JSON number ``1.20`` is the version ``"1.20"``, never
``1.2``. A list or object where text is expected, two entries with one id, a file too
large, nested too deeply or of another shape are an :class:`InputError` of one line, and
nothing already stored changes.

``check-updates`` matches artifacts to entries by source first (the entry's source, url
or id equal to the artifact's source); otherwise by (type, name), but only when every
candidate entry has the same source or none has one. Candidates from different sources
(two authors' ``code-reviewer``) make the artifact *ambiguous*: it gets no upstream
version (so it is not outdated) and is listed with the candidate sources.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from .errors import CacheError, ValidationError
from .formats import RawFloat, RawInt
from .models import Artifact, MarketplaceEntry
from .uow import AbstractUnitOfWork
from .values import ARTIFACT_TYPES

__all__ = [
    "MAX_MARKETPLACE_BYTES",
    "AmbiguousMatch",
    "ImportResult",
    "InputError",
    "UpdateCheck",
    "check_updates",
    "import_marketplace",
    "load_marketplace_file",
    "refresh_upstream_versions",
    "upstream_for",
]

UowFactory = Callable[[], AbstractUnitOfWork]

#: The largest marketplace file read; a larger one is refused before it is read.
MAX_MARKETPLACE_BYTES = 32 * 1024 * 1024
_TEXT_FIELDS = ("id", "name", "type", "url", "description", "version", "source")
_COMPONENTS = (("agents", "agent"), ("commands", "command"), ("skills", "skill"))
_DOCS = frozenset({"readme.md", "changelog.md", "license.md", "contributing.md"})


class InputError(CacheError):
    """A file given by the user cannot be used (unreadable, malformed, wrong shape)."""


@dataclass
class ImportResult:
    """What an import read: the entries written and the plugins it could not expand."""

    changed: int
    entries: int
    skipped_plugins: list[str] = field(default_factory=list)


def _kind(value: Any) -> str:
    return {dict: "object", list: "list", bool: "boolean"}.get(type(value), type(value).__name__)


def _text(value: Any, where: str, key: str) -> str | None:
    """A text field as written: numbers keep their JSON text; lists, objects, booleans refused."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (RawFloat, RawInt)):
        return value.text
    raise InputError(f"{where}: '{key}' must be text, got a JSON {_kind(value)}")


def _plain(value: Any) -> Any:
    """A document as stored: numbers back to plain JSON numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, RawInt):
        return int(value)
    if isinstance(value, RawFloat):
        return float(value)
    return value


def _read(path: Path) -> Any:
    try:
        size = os.stat(path).st_size
        if size > MAX_MARKETPLACE_BYTES:
            raise InputError(
                f"{path} is {size} bytes; marketplace files of at most {MAX_MARKETPLACE_BYTES // (1024 * 1024)} MiB "
                "are read"
            )
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MARKETPLACE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL byte in the path
        raise InputError(f"cannot read {str(path)!r}: {exc}") from None
    try:
        return json.loads(raw.decode("utf-8-sig"), parse_float=RawFloat, parse_int=RawInt)
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InputError(f"{path} is nested too deeply to be a marketplace file") from None


def _our_entries(path: Path, data: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise InputError(f"{path}: entry {index} is not an object")
        label = item.get("id") if isinstance(item.get("id"), str) else item.get("name")
        where = f"{path}: entry {index}" + (f" ({label})" if isinstance(label, str) else "")
        row = {key: _text(item.get(key), where, key) for key in _TEXT_FIELDS}
        missing = [k for k in ("id", "name", "type") if not row[k]]
        if missing:
            raise InputError(f"{where} lacks {', '.join(missing)}")
        row["data"] = _plain(item)
        rows.append(row)
    return rows


def _canonical_source(source: Any, marketplace: str, where: str) -> str | None:
    if source is None:
        return None
    if isinstance(source, str):
        if source.startswith("./") or source.startswith("../"):
            return f"{marketplace}:{posixpath.normpath(source)}"
        return source
    if not isinstance(source, dict) or not isinstance(source.get("source"), str):
        kind = _kind(source)
        raise InputError(f"{where}: 'source' must be text or an object with a 'source' kind, got a JSON {kind}")
    kind = source["source"]
    if kind == "github" and isinstance(source.get("repo"), str):
        return f"github:{source['repo']}"
    if kind in ("url", "git") and isinstance(source.get("url"), str):
        return str(source["url"])
    if kind == "npm" and isinstance(source.get("package"), str):
        return f"npm:{source['package']}"
    rest = {k: _plain(v) for k, v in source.items() if k != "source"}
    return f"{kind}:{json.dumps(rest, sort_keys=True, separators=(',', ':'))}"


def _component_name(path: str) -> str:
    base = posixpath.basename(posixpath.normpath(path.replace("\\", "/")))
    return base[:-3] if base.lower().endswith(".md") else base


def _from_folder(folder: Path) -> list[tuple[str, str]]:
    """(type, name) of the components of a plugin folder, as a scan reads them."""
    found: list[tuple[str, str]] = []
    for sub, type_ in _COMPONENTS:
        top = folder / sub
        if not top.is_dir():
            continue
        if type_ == "skill":
            found.extend(
                (type_, d.name)
                for d in sorted(top.iterdir())
                if d.is_dir() and any(f.name.lower() == "skill.md" for f in d.iterdir())
            )
            continue
        for _folder, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(
                (type_, f[:-3])
                for f in sorted(filenames)
                if f.lower().endswith(".md") and not f.startswith(".") and f.lower() not in _DOCS
            )
    return found


def _plugin_components(plugin: dict[str, Any], base: Path, where: str) -> list[tuple[str, str]] | None:
    listed: list[tuple[str, str]] = []
    for key, type_ in _COMPONENTS:
        value = plugin.get(key)
        if value is None:
            continue
        paths = [value] if isinstance(value, str) else value
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise InputError(f"{where}: '{key}' must be a list of paths, got a JSON {_kind(value)}")
        listed.extend((type_, _component_name(p)) for p in paths)
    if listed:
        return listed
    source = plugin.get("source")
    if isinstance(source, str) and source.startswith("./"):
        folder = (base / source).resolve()
        if folder.is_dir() and (folder == base or base in folder.parents):
            return _from_folder(folder) or None
    return None


def _claude_code_entries(path: Path, data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    marketplace = _text(data.get("name"), str(path), "name")
    plugins = data.get("plugins")
    if not marketplace or not isinstance(plugins, list):
        raise InputError(f"{path}: a Claude Code marketplace needs a 'name' and a 'plugins' list")
    base = path.resolve().parent
    if base.name == ".claude-plugin":
        base = base.parent
    rows, skipped = [], []
    for index, plugin in enumerate(plugins):
        if not isinstance(plugin, dict):
            raise InputError(f"{path}: plugin {index} is not an object")
        where = f"{path}: plugin {index}"
        name = _text(plugin.get("name"), where, "name")
        if not name:
            raise InputError(f"{where} lacks name")
        where = f"{where} ({name})"
        version = _text(plugin.get("version"), where, "version")
        description = _text(plugin.get("description"), where, "description")
        source = _canonical_source(plugin.get("source"), marketplace, where)
        components = _plugin_components(plugin, base, where)
        if components is None:
            skipped.append(name)
            continue
        for type_, component in components:
            rows.append(
                {
                    "id": f"{marketplace}/{name}/{type_}/{component}",
                    "name": component,
                    "type": type_,
                    "url": None,
                    "description": description,
                    "version": version,
                    "source": source,
                    "data": {"marketplace": marketplace, "plugin": _plain(plugin)},
                }
            )
    return rows, skipped


def load_marketplace_file(path: Path | str) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows a marketplace file holds (either format) and the names of the plugins it
    could not expand; InputError (one line) for anything that cannot be used.
    """
    file = Path(path)
    data = _read(file)
    if isinstance(data, list):
        rows, skipped = _our_entries(file, data), []
    elif isinstance(data, dict) and "plugins" in data:
        rows, skipped = _claude_code_entries(file, data)
    else:
        raise InputError(
            f"{file}: expected a JSON list of marketplace entries or a Claude Code marketplace "
            f"(an object with 'plugins'), got a JSON {_kind(data)}"
        )
    seen: set[str] = set()
    for row in rows:
        if row["id"] in seen:
            raise InputError(f"{file}: two entries have the id {row['id']!r}")
        seen.add(row["id"])
    return rows, skipped


def import_marketplace(uow_factory: UowFactory, path: Path | str) -> ImportResult:
    """Import marketplace entries from a file (see the module docstring); a bad file
    changes nothing.
    """
    file = Path(path)
    rows, skipped = load_marketplace_file(file)
    try:
        with uow_factory() as uow:
            changed = uow.marketplace.upsert_many(rows)
    except ValidationError as exc:
        raise InputError(f"{file}: {exc}") from None
    return ImportResult(changed=changed, entries=len(rows), skipped_plugins=skipped)


# --------------------------------------------------------------------------- updates


def _newest(versions: Iterable[str | None]) -> str | None:
    best: str | None = None
    best_key: tuple[int, Any] | None = None
    for version in versions:
        if version is None:
            continue
        try:
            key: tuple[int, Any] = (1, Version(version))
        except InvalidVersion:
            key = (0, version)
        if best_key is None or key > best_key:
            best, best_key = version, key
    return best


@dataclass
class _Candidates:
    versions: list[str | None] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)


def _indexes(entries: Iterable[MarketplaceEntry]) -> tuple[dict[str, _Candidates], dict[tuple[str, str], _Candidates]]:
    by_ref: dict[str, _Candidates] = {}
    by_key: dict[tuple[str, str], _Candidates] = {}
    for entry in entries:
        for ref in {entry.source, entry.url, entry.id}:
            if ref:
                by_ref.setdefault(ref, _Candidates()).versions.append(entry.version)
        found = by_key.setdefault((entry.type, entry.name), _Candidates())
        found.versions.append(entry.version)
        found.sources.append(entry.source)
    return by_ref, by_key


def upstream_for(
    artifact: Artifact, by_ref: Mapping[str, _Candidates], by_key: Mapping[tuple[str, str], _Candidates]
) -> tuple[str | None, list[str | None] | None]:
    """The upstream version of an artifact and, when a match by (type, name) is ambiguous
    (candidates from different sources), those sources instead of a version.
    """
    if artifact.source and artifact.source in by_ref:
        return _newest(by_ref[artifact.source].versions), None
    candidates = by_key.get((artifact.type, artifact.name))
    if candidates is None:
        return None, None
    sources = sorted(set(candidates.sources), key=lambda s: (s is None, s or ""))
    if len(sources) > 1:
        return None, sources
    return _newest(candidates.versions), None


@dataclass
class AmbiguousMatch:
    """An artifact that entries of several sources could match by type and name."""

    artifact: Artifact
    sources: list[str | None]


@dataclass
class UpdateCheck:
    """What ``check_updates`` found."""

    changed: int
    outdated: list[Artifact]
    ambiguous: list[AmbiguousMatch]
    project_paths: dict[str, str] = field(default_factory=dict)


def _refresh(uow_factory: UowFactory) -> tuple[int, list[tuple[str, list[str | None]]]]:
    with uow_factory() as uow:
        by_ref, by_key = _indexes(uow.marketplace.list())
        changes, ambiguous = [], []
        for type_ in ARTIFACT_TYPES:
            for artifact in uow.artifacts.list_by_type(type_):
                upstream, sources = upstream_for(artifact, by_ref, by_key)
                if sources is not None:
                    ambiguous.append((artifact.id, sources))
                if upstream != artifact.upstream_version:
                    changes.append({"id": artifact.id, "upstream_version": upstream})
        return (uow.artifacts.update_many(changes) if changes else 0), ambiguous


def refresh_upstream_versions(uow_factory: UowFactory) -> int:
    """Set every artifact's ``upstream_version`` from the marketplace entries
    (re-deriving ``is_outdated``); returns how many artifacts changed.
    """
    return _refresh(uow_factory)[0]


def check_updates(uow_factory: UowFactory) -> UpdateCheck:
    """Refresh upstream versions, then list the outdated and the ambiguous artifacts."""
    changed, ambiguous = _refresh(uow_factory)
    with uow_factory() as uow:
        found = [(uow.artifacts.get(id_), sources) for id_, sources in ambiguous]
        return UpdateCheck(
            changed=changed,
            outdated=uow.artifacts.outdated(),
            ambiguous=[AmbiguousMatch(a, s) for a, s in found if a is not None],
            project_paths={p.id: p.path for p in uow.projects.list()},
        )

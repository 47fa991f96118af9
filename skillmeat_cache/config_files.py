"""Artifacts that live inside Claude Code's JSON settings rather than in files of their own.

- **Hooks**: ``<profile>/settings.json`` and ``<profile>/settings.local.json``, key ``hooks``:
  ``{"<Event>": [{"matcher": "...", "hooks": [{"type": "command", "command": "..."}]}]}``.
  One hook artifact per entry of an inner ``hooks`` list.
- **MCP servers**: ``.mcp.json`` at the project root (Claude Code's project scope), key
  ``mcpServers``: one artifact per server, named by its key.

Naming rule for hooks (stable across rescans, unique in the project):
``<Event>:<matcher>:<h>`` where ``<matcher>`` is the matcher as written (``*`` when there
is none, cut to 64 characters) and ``<h>`` the first 8 hex digits of the SHA-256 of the
hook entry (canonical JSON). Editing one hook renames only that hook; adding, removing or
reordering others renames nothing. The same name met again in the project (the same
hook written twice, or in two files) gets ``~2``, ``~3``... in reading order.

Secrets stay out of the cache: the values under an MCP server's ``env`` and ``headers``
are never stored nor hashed, only their names (a sorted list replaces each mapping).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import stat
from dataclasses import dataclass
from typing import Any

from .formats import Warn, clean_document, is_valid_text, load_json_object
from .profiles import MCP_FILE, SETTINGS_FILES
from .values import is_inside

__all__ = ["ConfigArtifact", "SETTINGS_FILES", "MCP_FILE", "hooks_from_settings", "mcp_servers", "referenced_files"]

_SECRET_KEYS = ("env", "headers")
_MATCHER_CHARS = 64
_MAX_TOKENS = 64
_PROJECT_DIR_VARS = ("${CLAUDE_PROJECT_DIR}", "$CLAUDE_PROJECT_DIR")


@dataclass
class ConfigArtifact:
    """A hook or MCP server read from a JSON file; ``path`` is relative to the project."""

    type: str
    name: str
    path: str
    content_hash: str
    description: str | None
    data: dict[str, Any]


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def referenced_files(command: str, project: str) -> list[str]:
    """Regular files inside ``project`` (resolved paths, sorted) named by the words of a
    shell ``command``: relative words are taken from the project folder (Claude Code runs
    hooks there) and ``$CLAUDE_PROJECT_DIR`` is the project. Nothing is executed.
    """
    try:
        words = shlex.split(command, comments=True)
    except ValueError:  # unbalanced quotes: the plain words still name files
        words = command.split()
    found: set[str] = set()
    for word in words[:_MAX_TOKENS]:
        for var in _PROJECT_DIR_VARS:
            word = word.replace(var, project)
        if not word or word.startswith("-") or "$" in word or "\x00" in word:
            continue
        candidate = os.path.realpath(os.path.join(project, word))
        if candidate == project or not is_inside(candidate, project):
            continue
        try:
            if stat.S_ISREG(os.stat(candidate).st_mode):
                found.add(candidate)
        except (OSError, ValueError):
            continue
    return sorted(found)


def _hook_hash(entry: dict[str, Any], project: str) -> str:
    digest = hashlib.sha256(b"skillmeat-cache-hook/1\n" + _canonical(entry))
    command = entry["hook"].get("command")
    if isinstance(command, str):
        for path in referenced_files(command, project):
            digest.update(b"\n" + os.path.relpath(path, project).encode("utf-8", "surrogateescape") + b"\0")
            try:
                with open(path, "rb") as handle:
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
            except OSError:
                digest.update(b"unreadable")
    return digest.hexdigest()


def _describe(hook: dict[str, Any]) -> str | None:
    for key in ("command", "prompt", "url"):
        value = hook.get(key)
        if isinstance(value, str) and value.strip():
            line = " ".join(value.split())
            return line if len(line) <= 200 else line[:197] + "..."
    return None


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}~{n}"
    used.add(candidate)
    return candidate


def hooks_from_settings(path: str, rel: str, project: str, used: set[str], warn: Warn) -> list[ConfigArtifact]:
    """The hooks of one settings file (``rel``: its path relative to the project).
    ``used`` holds the hook names already taken in the project and is updated.
    """
    doc = load_json_object(path, warn, "settings file")
    if doc is None or "hooks" not in doc:
        return []
    hooks = doc["hooks"]
    if not isinstance(hooks, dict):
        warn(path, "'hooks' is not an object of events; no hook read")
        return []
    found: list[ConfigArtifact] = []
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            warn(path, f"hooks.{event} is not a list of matcher groups (Claude Code's shape); no hook read from it")
            continue
        for g, group in enumerate(groups):
            inner = group.get("hooks") if isinstance(group, dict) else None
            if not isinstance(inner, list):
                warn(path, f"hooks.{event}[{g}] has no 'hooks' list; skipped")
                continue
            matcher = group.get("matcher")
            matcher = matcher if isinstance(matcher, str) and matcher else None
            for h, hook in enumerate(inner):
                if not isinstance(hook, dict):
                    warn(path, f"hooks.{event}[{g}].hooks[{h}] is not an object; skipped")
                    continue
                entry = clean_document({"event": event, "matcher": matcher, "hook": hook}, path, warn)
                label = (entry["matcher"] or "*")[:_MATCHER_CHARS]
                digest = _hook_hash(entry, project)
                name = f"{entry['event']}:{label}:{hashlib.sha256(_canonical(entry)).hexdigest()[:8]}"
                found.append(
                    ConfigArtifact(
                        type="hook",
                        name=_unique(name, used),
                        path=rel,
                        content_hash=digest,
                        description=_describe(entry["hook"]),
                        data={**entry, "file": rel},
                    )
                )
    return found


def _redacted(server: dict[str, Any], path: str, name: str, warn: Warn) -> dict[str, Any]:
    out = dict(server)
    for key in _SECRET_KEYS:
        if key not in out:
            continue
        value = out[key]
        if isinstance(value, dict):
            out[key] = sorted(str(k) for k in value)
        else:
            warn(path, f"mcpServers.{name}.{key} is not an object; left out of the cache")
            del out[key]
    return out


def mcp_servers(path: str, rel: str, warn: Warn) -> list[ConfigArtifact]:
    """The MCP servers of a project's ``.mcp.json`` (``rel``: its path in the project)."""
    doc = load_json_object(path, warn, ".mcp.json")
    if doc is None:
        return []
    servers = doc.get("mcpServers")
    if servers is None:
        return []
    if not isinstance(servers, dict):
        warn(path, "'mcpServers' is not an object; no MCP server read")
        return []
    found: list[ConfigArtifact] = []
    for name, server in servers.items():
        if not name.strip() or not is_valid_text(name):
            warn(path, f"MCP server name {name!r} is not usable text; skipped")
            continue
        if not isinstance(server, dict):
            warn(path, f"mcpServers.{name} is not an object; skipped")
            continue
        data = clean_document(_redacted(server, path, name, warn), path, warn)
        description = data.get("description")
        found.append(
            ConfigArtifact(
                type="mcp",
                name=name,
                path=rel,
                content_hash=hashlib.sha256(b"skillmeat-cache-mcp/1\n" + _canonical(data)).hexdigest(),
                description=description if isinstance(description, str) and description.strip() else None,
                data=data,
            )
        )
    return found

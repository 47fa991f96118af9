"""The layout vocabulary of the filesystem layer: profile roots, type folders, manifests,
the plain results (:class:`ScanWarning`, :class:`ArtifactOnDisk`, :class:`ProjectOnDisk`)
and the helpers every part of the scan shares. See :mod:`.scanner` for the rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config_files import SETTINGS_FILES
from .formats import (
    Warn,
    one_line,
    text_path,
)

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

"""The layout vocabulary of the filesystem layer: profile roots, type folders, manifests,
the plain results (:class:`ScanWarning`, :class:`ArtifactOnDisk`, :class:`ProjectOnDisk`)
and the helpers every part of the scan shares. See :mod:`.scanner` for the rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .formats import (
    Warn,
    one_line,
    text_path,
)
from .profiles import PROFILE_ROOTS, is_profile

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

_SKIPPED_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__"})

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




def is_project_folder(path: Path | str) -> bool:
    """Whether ``path`` holds ``.claude/``, or another profile root (``.codex``, ``.gemini``,
    ``.cursor``) holding ``skills/``, ``agents/`` or ``commands/``.
    """
    folder = os.fspath(path)
    try:
        return any(is_profile(os.path.join(folder, name), name) for name in PROFILE_ROOTS)
    except (OSError, ValueError):
        return False

"""The names of a project's layout: profile roots, type folders and the files a profile
holds, and what makes a folder a profile. Nothing but the standard library's ``os``: the
reader processes of a rescan import this (through :mod:`.fingerprint`) and no parser,
until a project turns out changed.
"""

from __future__ import annotations

import os

__all__ = [
    "ARTIFACT_FOLDERS",
    "DEPLOYED_FILE",
    "MAX_DEPTH",
    "MCP_FILE",
    "PROFILE_FILES",
    "PROFILE_ROOTS",
    "PROJECT_FILE",
    "SETTINGS_FILES",
    "TYPE_FOLDERS",
    "is_profile",
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
PROJECT_FILE = ".skillmeat-project.toml"
DEPLOYED_FILE = ".skillmeat-deployed.toml"
#: Claude Code's settings files in a profile root (hooks live in them).
SETTINGS_FILES = ("settings.json", "settings.local.json")
#: The project's MCP servers (Claude Code's project scope), at the project folder's top.
MCP_FILE = ".mcp.json"
#: The files of a profile root the scan reads.
PROFILE_FILES = frozenset({PROJECT_FILE, DEPLOYED_FILE, *SETTINGS_FILES})
#: Folders below a type folder (symlink loops are caught before this).
MAX_DEPTH = 40


def is_profile(path: str, name: str) -> bool:
    """Whether ``path`` (a profile root named ``name``) makes its folder a project."""
    if not os.path.isdir(path):
        return False
    return name == PROFILE_ROOTS[0] or any(os.path.isdir(os.path.join(path, sub)) for sub in ARTIFACT_FOLDERS)

"""Find SkillMeat projects on disk and read them into plain dataclasses.

A pure filesystem layer: no database, no console output. This module is its front door;
the parts are :mod:`.layout`, :mod:`.discovery`, :mod:`.fingerprint`, :mod:`.reader`,
:mod:`.deployed`, :mod:`.formats` and :mod:`.config_files`. Three entry points:

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

from .discovery import discover_projects
from .fingerprint import project_fingerprint
from .formats import FRONTMATTER_READ_LIMIT
from .layout import ArtifactOnDisk, ProjectOnDisk, ScanWarning, is_project_folder
from .profiles import PROFILE_ROOTS
from .reader import read_project

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

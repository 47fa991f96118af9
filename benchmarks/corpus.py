"""A seedable generator of large, realistic trees of SkillMeat projects, for benchmarks.

Layout written by :func:`generate` (group folders make discovery walk depth 2 and 3)::

    ROOT/<group>/<project>/                 or  ROOT/<group>/<subgroup>/<project>/
        README.md, sometimes CLAUDE.md
        .claude/.skillmeat-project.toml     name, description, created_at
        .claude/.skillmeat-deployed.toml    [[deployed]] for about half the artifacts
        .claude/settings.json               sometimes
        .claude/skills/<name>/SKILL.md      (+ sometimes an extra file, maybe in a subfolder)
        .claude/commands/<name>.md          or commands/<name>/COMMAND.md
        .claude/agents/<name>.md            or agents/<name>/AGENT.md
        .claude/hooks/<name>/HOOK.md        (+ usually hook.sh)
        .claude/mcp/<name>/MCP.md           or mcp/<name>/mcp.json

About half the artifacts come from a shared catalog (same name, ``source`` and metadata in
every project, deployed at the catalog's latest version or an older one); the rest are
local, without ``source``. :func:`marketplace_entries` lists the catalog at its latest
versions, so importing it makes the older copies outdated. Deployed hashes are computed
from the bytes written and equal :func:`skillmeat_cache.hashing.content_hash`; the
``edits`` files changed after deployment make their artifacts locally modified.

The same arguments and seed always write the same bytes.

Command line::

    python -m benchmarks.corpus ROOT --projects N --artifacts M [--seed S] [--edits K]
        [--marketplace FILE]
    python -m benchmarks.corpus ROOT --edit-existing K [--seed S]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["ARTIFACT_TYPES", "CorpusInfo", "edit_files", "generate", "main", "marketplace_entries"]

ARTIFACT_TYPES: tuple[str, ...] = ("skill", "command", "agent", "hook", "mcp")
TYPE_DIRS: dict[str, str] = {"skill": "skills", "command": "commands", "agent": "agents", "hook": "hooks", "mcp": "mcp"}

_GROUPS = ("team-alpha", "team-bravo", "clients", "oss", "platform", "research", "sandbox", "archive")
_SUBGROUPS = ("apps", "services", "libs")
_ADJECTIVES = ("amber", "brisk", "cobalt", "dusty", "eager", "frosty", "gentle", "hollow", "ivory", "jolly")
_NOUNS = ("falcon", "harbor", "lantern", "meadow", "orchid", "pebble", "quartz", "river", "summit", "willow")
_VERBS = (
    "lint", "review", "deploy", "summarize", "refactor", "test", "profile", "migrate",
    "document", "triage", "format", "explain", "audit", "bundle", "release", "search",
)  # fmt: skip
_OBJECTS = (
    "pdf", "sql", "api", "docs", "logs", "tests", "schema", "deps",
    "images", "configs", "metrics", "commits", "issues", "notebooks", "csv", "terraform",
)  # fmt: skip
_TAGS = (
    "python", "py", "typescript", "sql", "docs", "testing", "review", "git",
    "ci", "security", "data", "frontend", "backend", "devops", "writing", "performance",
)  # fmt: skip
_WORDS = (
    "files", "changes", "errors", "tables", "pages", "branches", "queries", "reports", "modules",
    "functions", "before", "after", "every", "quickly", "safely", "carefully", "locally", "staging",
    "production", "warnings", "results", "summary", "context", "diff", "coverage", "layout",
    "latency", "budget", "owners", "labels", "release", "notes", "checks", "inputs", "outputs",
    "tokens", "headers", "columns", "records", "snapshots", "and", "with", "from", "into", "for",
)  # fmt: skip
_AUTHORS = ("Anthropic", "Acme Labs", "Maya Chen", "Priya Raman", "Jordan Ellis", "Sam Okafor", "Docs Team")
_LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "CC-BY-4.0", "Proprietary")
_REPOS = {"skill": "skills", "command": "claude-commands", "agent": "agents", "hook": "hooks", "mcp": "mcp-servers"}
_ORGS = ("anthropics", "acme-labs", "community-tools", "modelcontextprotocol")
_CATALOG_PER_TYPE = 24
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class CorpusInfo:
    """What :func:`generate` wrote. ``artifacts`` is the total over all projects."""

    root: Path
    projects: int
    artifacts: int
    locally_modified: int
    artifacts_per_project: int = 0
    deployed: int = 0
    files: int = 0
    bytes: int = 0
    seed: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    edited: list[Path] = field(default_factory=list)
    project_paths: list[Path] = field(default_factory=list, repr=False)

    def summary(self) -> str:
        """One line describing the corpus."""
        return (
            f"{self.root}: {self.projects} projects, {self.artifacts} artifacts "
            f"({self.deployed} deployed, {self.locally_modified} locally modified), "
            f"{self.files} files, {self.bytes / 1e6:.1f} MB, seed {self.seed}"
        )


@dataclass(frozen=True)
class _CatalogEntry:
    type: str
    name: str
    source: str
    version: tuple[int, int]
    description: str
    tags: tuple[str, ...]
    author: str
    license: str


@dataclass
class _Artifact:
    type: str
    name: str
    rel: str  # path relative to .claude: the file, or the folder
    files: list[tuple[str, bytes]]  # (path relative to .claude, bytes)
    folder: bool

    def content_hash(self) -> str:
        """The SkillMeat content hash of the bytes, computed without reading them back."""
        if not self.folder:
            return hashlib.sha256(self.files[0][1]).hexdigest()
        digest = hashlib.sha256()
        prefix = len(self.rel) + 1
        # pathlib sorts paths component by component: "a/z" before "a-b".
        for rel, data in sorted(self.files, key=lambda item: item[0][prefix:].split("/")):
            digest.update(rel[prefix:].encode("utf-8"))
            digest.update(data)
        return digest.hexdigest()


def _sentence(rng: random.Random, low: int, high: int) -> str:
    words = rng.choices(_WORDS, k=rng.randint(low, high))
    return " ".join(words).capitalize() + "."


def _version(n: int, m: int) -> str:
    return f"1.{n}.{m}"


def _catalog(seed: int) -> dict[str, list[_CatalogEntry]]:
    rng = random.Random(f"skillmeat-corpus-catalog:{seed}")
    catalog: dict[str, list[_CatalogEntry]] = {}
    for type_ in ARTIFACT_TYPES:
        names = rng.sample([f"{v}-{o}" for v in _VERBS for o in _OBJECTS], _CATALOG_PER_TYPE)
        entries = []
        for name in names:
            verb, obj = name.split("-", 1)
            entries.append(
                _CatalogEntry(
                    type=type_,
                    name=name,
                    source=f"github:{rng.choice(_ORGS)}/{_REPOS[type_]}/{name}",
                    version=(rng.randint(1, 12), rng.randint(0, 9)),
                    description=f"{verb.capitalize()} {obj} {' '.join(rng.choices(_WORDS, k=rng.randint(2, 6)))}.",
                    tags=tuple(rng.sample(_TAGS, 3)),
                    author=rng.choice(_AUTHORS),
                    license=rng.choice(_LICENSES),
                )
            )
        catalog[type_] = entries
    return catalog


def marketplace_entries(seed: int = 0) -> list[dict[str, Any]]:
    """Marketplace entries (the shape ``skillmeat-cache marketplace import`` reads) for the catalog that
    :func:`generate` draws from with the same seed, at the catalog's latest versions.
    """
    rows = []
    for entries in _catalog(seed).values():
        for entry in entries:
            org_repo = entry.source.removeprefix("github:").rsplit("/", 1)[0]
            rows.append(
                {
                    "id": f"{org_repo}/{entry.name}",
                    "name": entry.name,
                    "type": entry.type,
                    "version": _version(*entry.version),
                    "source": entry.source,
                    "url": f"https://github.com/{org_repo}/tree/main/{entry.name}",
                    "description": entry.description,
                }
            )
    return rows


def _frontmatter(meta: dict[str, str | None], tags: tuple[str, ...] | list[str]) -> str:
    lines = ["---"]
    for key in ("name", "description", "version"):
        lines.append(f"{key}: {meta[key]}")
    lines.append(f"tags: [{', '.join(tags)}]")
    for key in ("author", "license", "source"):
        if meta.get(key):
            lines.append(f"{key}: {meta[key]}")
    lines.append("---")
    return "\n".join(lines) + "\n"


def _markdown(rng: random.Random, meta: dict[str, str | None], tags: tuple[str, ...] | list[str]) -> bytes:
    body = [f"# {str(meta['name']).replace('-', ' ').capitalize()}", ""]
    body += [_sentence(rng, 6, 14) for _ in range(rng.randint(1, 4))]
    return (_frontmatter(meta, tags) + "\n" + "\n".join(body) + "\n").encode("utf-8")


def _extra(rng: random.Random, kind: str) -> bytes:
    if kind.endswith(".sh"):
        return f'#!/bin/sh\nset -e\necho {rng.choice(_WORDS)} "$1"\n'.encode()
    if kind.endswith(".py"):
        return f'"""{_sentence(rng, 4, 8)}"""\n\nprint("{rng.choice(_WORDS)}")\n'.encode()
    lines = [f"- {_sentence(rng, 4, 10)}" for _ in range(rng.randint(2, 5))]
    return ("# Notes\n\n" + "\n".join(lines) + "\n").encode("utf-8")


def _make_artifact(
    rng: random.Random, type_: str, index: int, used: set[tuple[str, str]], catalog: dict[str, list[_CatalogEntry]]
) -> _Artifact:
    entry: _CatalogEntry | None = None
    if rng.random() < 0.5:
        candidate = rng.choice(catalog[type_])
        if (type_, candidate.name) not in used:
            entry = candidate
    meta: dict[str, str | None]
    if entry is not None:
        name = entry.name
        n, m = entry.version
        if rng.random() < 0.4:  # deployed some time ago: an older version
            n, m = (n, rng.randrange(m)) if m and rng.random() < 0.5 else (rng.randrange(n), rng.randint(0, 9))
        tags: tuple[str, ...] | list[str] = entry.tags
        meta = {
            "name": name,
            "description": entry.description,
            "version": _version(n, m),
            "author": entry.author,
            "license": entry.license,
            "source": entry.source,
        }
    else:
        name = f"{rng.choice(_VERBS)}-{rng.choice(_OBJECTS)}"
        if (type_, name) in used:
            name = f"{name}-{index}"
        tags = rng.sample(_TAGS, 3)
        meta = {
            "name": name,
            "description": _sentence(rng, 3, 8),
            "version": _version(rng.randint(0, 12), rng.randint(0, 9)),
            "author": rng.choice(_AUTHORS),
            "license": rng.choice(_LICENSES),
            "source": None,
        }
    used.add((type_, name))
    base = f"{TYPE_DIRS[type_]}/{name}"
    if type_ == "skill":
        files = [(f"{base}/SKILL.md", _markdown(rng, meta, tags))]
        if rng.random() < 0.5:
            extra = rng.choice(("reference.md", "examples/basic.md", "scripts/run.py"))
            files.append((f"{base}/{extra}", _extra(rng, extra)))
        return _Artifact(type_, name, base, files, folder=True)
    if type_ in ("command", "agent"):
        if rng.random() < 0.7:
            return _Artifact(type_, name, f"{base}.md", [(f"{base}.md", _markdown(rng, meta, tags))], folder=False)
        main_file, extra = ("COMMAND.md", "template.md") if type_ == "command" else ("AGENT.md", "prompts.md")
        files = [(f"{base}/{main_file}", _markdown(rng, meta, tags))]
        if rng.random() < 0.5:
            files.append((f"{base}/{extra}", _extra(rng, extra)))
        return _Artifact(type_, name, base, files, folder=True)
    if type_ == "hook":
        files = [(f"{base}/HOOK.md", _markdown(rng, meta, tags))]
        if rng.random() < 0.7:
            files.append((f"{base}/hook.sh", _extra(rng, "hook.sh")))
        return _Artifact(type_, name, base, files, folder=True)
    if rng.random() < 0.6:
        return _Artifact(type_, name, base, [(f"{base}/MCP.md", _markdown(rng, meta, tags))], folder=True)
    config: dict[str, Any] = {k: v for k, v in meta.items() if v is not None}
    config["tags"] = list(tags)
    config["command"] = "npx"
    config["args"] = ["-y", f"@{rng.choice(_ORGS)}/{name}"]
    data = (json.dumps(config, indent=2) + "\n").encode("utf-8")
    return _Artifact(type_, name, base, [(f"{base}/mcp.json", data)], folder=True)


def _toml_str(value: str) -> str:
    return json.dumps(value)  # ASCII text: a JSON string is a valid TOML basic string


def _deployed_toml(rng: random.Random, artifacts: list[_Artifact], created: datetime) -> bytes:
    blocks = []
    for artifact in artifacts:
        digest = artifact.content_hash()
        lineage = [digest]
        if rng.random() < 0.2:
            lineage.append(hashlib.sha256(f"{artifact.rel}@previous".encode()).hexdigest())
        deployed_at = created + timedelta(seconds=rng.randrange(3600, 200 * 86400))
        blocks.append(
            "[[deployed]]\n"
            f"artifact_name = {_toml_str(artifact.name)}\n"
            f"artifact_type = {_toml_str(artifact.type)}\n"
            f"from_collection = {_toml_str('default' if rng.random() < 0.8 else 'work')}\n"
            f"deployed_at = {_toml_str(deployed_at.isoformat())}\n"
            f"artifact_path = {_toml_str(artifact.rel)}\n"
            f"content_hash = {_toml_str(digest)}\n"
            "local_modifications = false\n"
            f"version_lineage = [{', '.join(_toml_str(h) for h in lineage)}]\n"
        )
    return "\n".join(blocks).encode("utf-8")


class _Writer:
    """Writes files, creating each folder once; counts files and bytes."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0
        self._dirs: set[str] = set()

    def write(self, path: str, data: bytes) -> None:
        parent = os.path.dirname(path)
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        with open(path, "wb") as handle:
            handle.write(data)
        self.files += 1
        self.bytes += len(data)


def generate(root: Path, projects: int, artifacts: int, seed: int = 0, *, edits: int = 0) -> CorpusInfo:
    """Write ``projects`` project folders under ``root`` (which must be missing or empty),
    each with ``artifacts`` artifacts, then change ``edits`` files of deployed artifacts
    so that those artifacts are locally modified. Deterministic for a given seed.
    """
    if projects < 0 or artifacts < 0 or edits < 0:
        raise ValueError("projects, artifacts and edits must not be negative")
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{root} exists and is not an empty folder")
    rng = random.Random(seed)
    catalog = _catalog(seed)
    info = CorpusInfo(
        root=root,
        projects=projects,
        artifacts=projects * artifacts,
        locally_modified=0,
        artifacts_per_project=artifacts,
        seed=seed,
        by_type=dict.fromkeys(ARTIFACT_TYPES, 0),
    )
    writer = _Writer()
    groups = _GROUPS[: min(len(_GROUPS), max(1, (projects + 49) // 50))]
    width = max(4, len(str(projects)))
    deployed_refs: list[tuple[str, list[str]]] = []
    for index in range(projects):
        name = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-{index:0{width}d}"
        parts = [rng.choice(groups)]
        if rng.random() < 0.4:
            parts.append(rng.choice(_SUBGROUPS))
        project = os.path.join(root, *parts, name)
        claude = os.path.join(project, ".claude")
        info.project_paths.append(Path(project))
        created = _EPOCH + timedelta(seconds=rng.randrange(0, 180 * 86400))
        writer.write(os.path.join(project, "README.md"), f"# {name}\n\n{_sentence(rng, 8, 16)}\n".encode())
        if rng.random() < 0.5:
            rules = "\n".join(f"- {_sentence(rng, 5, 10)}" for _ in range(3))
            writer.write(os.path.join(project, "CLAUDE.md"), f"# {name}\n\n{rules}\n".encode())
        if rng.random() < 0.3:
            settings = {"permissions": {"allow": ["Bash(npm test:*)", "Bash(pytest:*)"], "deny": ["Read(./.env)"]}}
            writer.write(os.path.join(claude, "settings.json"), (json.dumps(settings, indent=2) + "\n").encode())
        writer.write(
            os.path.join(claude, ".skillmeat-project.toml"),
            (
                f"name = {_toml_str(name)}\n"
                f"description = {_toml_str(_sentence(rng, 4, 10))}\n"
                f"created_at = {_toml_str(created.isoformat())}\n"
            ).encode(),
        )
        offset = rng.randrange(len(ARTIFACT_TYPES))
        used: set[tuple[str, str]] = set()
        made = []
        for k in range(artifacts):
            type_ = ARTIFACT_TYPES[(k + offset) % len(ARTIFACT_TYPES)]
            artifact = _make_artifact(rng, type_, k, used, catalog)
            made.append(artifact)
            info.by_type[type_] += 1
            for rel, data in artifact.files:
                writer.write(os.path.join(claude, rel), data)
        chosen = sorted(rng.sample(range(artifacts), (artifacts + 1) // 2)) if artifacts else []
        deployed = [made[i] for i in chosen]
        writer.write(os.path.join(claude, ".skillmeat-deployed.toml"), _deployed_toml(rng, deployed, created))
        info.deployed += len(deployed)
        deployed_refs.extend((claude, [rel for rel, _ in a.files]) for a in deployed)
    if edits > len(deployed_refs):
        raise ValueError(f"cannot edit {edits} artifacts: only {len(deployed_refs)} are deployed")
    for claude, rels in rng.sample(deployed_refs, edits):
        path = Path(claude, rng.choice(rels))
        before = path.stat().st_size
        _edit_file(path, rng)
        writer.bytes += path.stat().st_size - before
        info.edited.append(path)
    info.locally_modified = edits
    info.files, info.bytes = writer.files, writer.bytes
    return info


def _edit_file(path: Path, rng: random.Random) -> None:
    """Change a file's content and make it longer, keeping it valid for its kind."""
    data = path.read_bytes()
    note = " ".join(rng.choices(_WORDS, k=rng.randint(3, 8)))
    if path.suffix == ".json":
        try:
            config = json.loads(data)
        except ValueError:
            config = None
        if isinstance(config, dict):
            notes = config.get("x-local-notes")
            config["x-local-notes"] = [*(notes if isinstance(notes, list) else []), note]
            path.write_bytes((json.dumps(config, indent=2) + "\n").encode("utf-8"))
            return
    if path.suffix in (".sh", ".py"):
        addition = f"# local change: {note}\n"
    elif path.suffix == ".md":
        addition = f"\nLocal change: {note}.\n"
    else:
        addition = f"{note}\n"
    path.write_bytes(data + addition.encode("utf-8"))


def _find_projects(root: Path) -> list[Path]:
    """Folders below ``root`` holding a ``.claude`` folder (hidden folders are not entered)."""
    found = []
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                subdirs = [e for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        for entry in subdirs:
            if entry.name == ".claude":
                found.append(Path(folder))
            elif not entry.name.startswith("."):
                stack.append(entry.path)
    return sorted(found)


def _artifact_files(claude: Path) -> list[Path]:
    files = []
    for type_dir in TYPE_DIRS.values():
        for dirpath, dirnames, filenames in os.walk(claude / type_dir):
            dirnames.sort()
            files.extend(Path(dirpath, name) for name in filenames)
    return sorted(files)


def edit_files(root: Path, count: int, seed: int = 0) -> list[Path]:
    """Change one artifact file in each of ``count`` different projects under ``root``
    (content and size both change); returns the changed files. Deterministic for a
    given tree and seed.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    projects = _find_projects(Path(root))
    rng = random.Random(f"skillmeat-corpus-edit:{seed}")
    rng.shuffle(projects)
    chosen: list[Path] = []
    for project in projects:
        if len(chosen) == count:
            break
        files = _artifact_files(project / ".claude")
        if files:
            chosen.append(rng.choice(files))
    if len(chosen) < count:
        raise ValueError(f"cannot edit {count} projects: only {len(chosen)} under {root} have artifact files")
    for path in chosen:
        _edit_file(path, rng)
    return chosen


def main(argv: list[str] | None = None) -> int:
    """The command line: generate a corpus (or edit an existing one) and print one line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.corpus", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to write (missing or empty)")
    parser.add_argument("--projects", type=int, default=100, help="project folders to write (default 100)")
    parser.add_argument("--artifacts", type=int, default=20, help="artifacts per project (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--edits", type=int, default=0, help="deployed artifacts to modify after deployment")
    parser.add_argument("--marketplace", type=Path, help="also write marketplace entries for the corpus here")
    parser.add_argument(
        "--edit-existing", type=int, metavar="K", help="write nothing new: change K artifact files in K projects"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        if args.edit_existing is not None:
            changed = edit_files(args.root, args.edit_existing, args.seed)
            projects = len({path.parts[: path.parts.index(".claude")] for path in changed})
            print(
                f"{args.root}: changed {len(changed)} files in {projects} projects, seed {args.seed}, "
                f"{time.perf_counter() - started:.1f} s"
            )
            return 0
        info = generate(args.root, args.projects, args.artifacts, args.seed, edits=args.edits)
        if args.marketplace is not None:
            args.marketplace.write_text(json.dumps(marketplace_entries(args.seed), indent=2) + "\n", encoding="utf-8")
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{info.summary()}, {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

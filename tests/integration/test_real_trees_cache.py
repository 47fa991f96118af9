"""Real-tree rules through the scan service into SQLite and PostgreSQL: the cache holds
exactly what the scanner reads, ids survive rescans, warnings stay visible, secrets
never reach the database, and concurrent scans of one tree all succeed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import factory_for, write_file
from sqlalchemy import text

from skillmeat_cache import migrate
from skillmeat_cache.scanner import read_project
from skillmeat_cache.services import scan


def md(**fields: str) -> str:
    return "---\n" + "\n".join(f"{k}: {v}" for k, v in fields.items()) + "\n---\n# Body\n"


def build_tree(root: Path) -> Path:
    """One project holding a case of every rule, and a second one beside it."""
    project = root / "app"
    c = project / ".claude"
    write_file(c / ".skillmeat-project.toml", '[project]\nname = "App"\ndescription = "The app"\n')
    write_file(c / "skills" / "pdf" / "SKILL.md", md(description="claude pdf", tags="pdf, docs"))
    write_file(c / "skills" / "lower" / "skill.md", md(description="lower-case manifest"))
    write_file(project / ".codex" / "skills" / "pdf" / "SKILL.md", md(description="codex pdf"))
    write_file(c / "agents" / "pm" / "prd-writer.md", md(description="PRD"))
    write_file(c / "agents" / "ai" / "broken.md", "---\nname: broken\ndescription: Use when: asked\n---\n")
    write_file(c / "agents" / "README.md", "# docs")
    write_file(c / "commands" / "dev" / "x.md", md(description="dev x"))
    write_file(c / "commands" / "ops" / "x.md", md(description="ops x"))
    write_file(c / "commands" / "ship" / "COMMAND.md", md(description="ship"))
    write_file(c / "hooks" / "fmt.sh", "#!/bin/sh\n")
    hooks = {
        "PostToolUse": [
            {
                "matcher": "Write",
                "hooks": [{"type": "command", "command": '"$CLAUDE_PROJECT_DIR"/.claude/hooks/fmt.sh'}],
            }
        ],
        "Stop": [{"hooks": [{"type": "command", "command": "echo done"}]}],
    }
    write_file(c / "settings.json", json.dumps({"hooks": hooks}))
    servers = {"gh": {"command": "npx", "env": {"GITHUB_TOKEN": "ghp_TOPSECRET"}}, "web": {"url": "https://x.test"}}
    write_file(project / ".mcp.json", json.dumps({"mcpServers": servers}))
    prd = hashlib.sha256((c / "agents" / "pm" / "prd-writer.md").read_bytes()).hexdigest()
    write_file(
        c / ".skillmeat-deployed.toml",
        "[[deployed]]\n"
        'artifact_name = "prd-writer"\nartifact_type = "agent"\nartifact_path = "agents/pm/prd-writer.md"\n'
        f'content_hash = "{prd}"\nfrom_collection = "default"\n\n'
        "[[deployed]]\n"
        'artifact_name = "gone"\nartifact_type = "agent"\nartifact_path = "agents/gone.md"\n',
    )
    write_file(root / "lib" / ".gemini" / "commands" / "g.md", md(description="gemini"))
    return root


def cached(factory, key=os.path.basename) -> dict[tuple[str, str, str, str], tuple[str, str | None]]:
    with factory(read_only=True) as uow:
        out = {}
        for project in uow.projects.list():
            for artifact in uow.artifacts.list_for_project(project.id):
                out[(key(project.path), artifact.type, artifact.path, artifact.name)] = (
                    artifact.id,
                    artifact.content_hash,
                )
        return out


def on_disk(root: Path) -> dict[tuple[str, str, str, str], str]:
    out = {}
    for folder in (root / "app", root / "lib"):
        project = read_project(folder)
        for a in project.artifacts:
            out[(folder.name, a.type, a.rel, a.name)] = a.content_hash
    return out


@pytest.fixture
def tree(tmp_path) -> Path:
    return build_tree(tmp_path / "tree")


def test_the_cache_holds_exactly_what_the_tree_holds(db_url, tree):
    engine, factory = factory_for(db_url)
    try:
        summary = scan(factory, [tree])
        stored = cached(factory)
        assert {key: digest for key, (_id, digest) in stored.items()} == on_disk(tree)
        assert summary.artifacts_added == len(stored) == 13
        keys = set(stored)
        assert ("app", "command", ".claude/commands/dev/x.md", "x") in keys
        assert ("app", "command", ".claude/commands/ops/x.md", "x") in keys
        assert ("app", "skill", ".codex/skills/pdf", "pdf") in keys
        assert ("lib", "command", ".gemini/commands/g.md", "g") in keys
        assert sum(1 for k in keys if k[1] == "hook") == 2 and sum(1 for k in keys if k[1] == "mcp") == 2
        with factory(read_only=True) as uow:
            project = uow.projects.get_by_path(str((tree / "app").resolve()))
            broken = uow.artifacts.get_by_key(project.id, "agent", "broken")
            assert uow.metadata.get(broken.id).description == "Use when: asked"
            pdf = uow.artifacts.get_by_key(project.id, "skill", "pdf", ".claude/skills/pdf")
            assert uow.metadata.get(pdf.id).tags == ["pdf", "docs"]
        with engine.connect() as conn:
            documents = " ".join(str(row[0]) for row in conn.execute(text("SELECT metadata FROM artifact_metadata")))
        assert "TOPSECRET" not in documents and "GITHUB_TOKEN" in documents
    finally:
        engine.dispose()


def test_rescans_keep_ids_and_report_stored_warnings(db_url, tree):
    engine, factory = factory_for(db_url)
    try:
        first = scan(factory, [tree])
        ids = {key: id_ for key, (id_, _h) in cached(factory).items()}
        expected = sorted((w.path, w.message) for w in first.warnings)
        assert any("deployed artifact missing on disk" in m for _p, m in expected)
        assert any("recovered from the top-level lines" in m for _p, m in expected)
        again = scan(factory, [tree])
        assert again.projects_unchanged == 2
        assert sorted((w.path, w.message) for w in again.warnings) == expected
        full = scan(factory, [tree], full=True)
        assert (full.artifacts_added, full.artifacts_updated, full.artifacts_removed) == (0, 0, 0)
        assert {key: id_ for key, (id_, _h) in cached(factory).items()} == ids
        # A moved file keeps its id; a second file of one name beside it is a new artifact.
        c = tree / "app" / ".claude"
        os.rename(c / "agents" / "pm" / "prd-writer.md", c / "agents" / "prd-writer.md")
        moved = scan(factory, [tree])
        assert (moved.artifacts_added, moved.artifacts_removed) == (0, 0)
        after = {key: id_ for key, (id_, _h) in cached(factory).items()}
        assert (
            after[("app", "agent", ".claude/agents/prd-writer.md", "prd-writer")]
            == ids[("app", "agent", ".claude/agents/pm/prd-writer.md", "prd-writer")]
        )
    finally:
        engine.dispose()


def test_warnings_are_stored_with_the_project(db_url, tree):
    engine, factory = factory_for(db_url)
    try:
        scan(factory, [tree])
        with factory(read_only=True) as uow:
            app = uow.projects.get_by_path(str((tree / "app").resolve()))
            lib = uow.projects.get_by_path(str((tree / "lib").resolve()))
            messages = [w["message"] for w in app.warnings]
            assert "deployed artifact missing on disk: .claude/agents/gone.md" in messages
            assert lib.warnings is None
        (tree / "app" / ".claude" / ".skillmeat-deployed.toml").unlink()
        (tree / "app" / ".claude" / "agents" / "ai" / "broken.md").write_text(md(description="fixed"))
        scan(factory, [tree])
        with factory(read_only=True) as uow:
            assert uow.projects.get_by_path(str((tree / "app").resolve())).warnings is None
    finally:
        engine.dispose()


def _scan_process(url: str, tree: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "skillmeat_cache", "--db", url, "scan", str(tree), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_scans_of_one_tree_all_succeed(backend, tmp_path, request):
    root = tmp_path / "many"
    for n in range(12):
        build_tree(root / f"group{n:02}")
    if backend == "postgres":
        url = request.getfixturevalue("fresh_pg_url")
    else:
        url = "sqlite:///" + str(tmp_path / "fresh.db")
    migrate(url)
    processes = [_scan_process(url, root) for _ in range(3)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in processes]
    for code, out, err in results:
        assert code == 0, err
        assert json.loads(out)["projects_seen"] == 24
    engine, factory = factory_for(url)
    try:
        stored = cached(factory, key=str)
        with factory(read_only=True) as uow:
            assert uow.projects.count() == 24
    finally:
        engine.dispose()
    single_url = "sqlite:///" + str(tmp_path / "single.db")
    migrate(single_url)
    engine, factory = factory_for(single_url)
    try:
        scan(factory, [root])
        assert {k: h for k, (_i, h) in stored.items()} == {k: h for k, (_i, h) in cached(factory, key=str).items()}
    finally:
        engine.dispose()

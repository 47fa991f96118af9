"""The layout rules of real trees (SkillMeat's and Claude Code's), one test tree per rule.

Scanner level: what read_project and discover_projects find. The same trees through the
scan service on SQLite and PostgreSQL are in test_real_trees_cache.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import write_file

from skillmeat_cache.hashing import content_hash
from skillmeat_cache.scanner import discover_projects, is_project_folder, project_fingerprint, read_project


def md(**fields: str) -> str:
    lines = [f"{key}: {value}" for key, value in fields.items()]
    return "---\n" + "\n".join(lines) + "\n---\n# Body\n"


def keys(project) -> list[tuple[str, str, str]]:
    return [(a.type, a.name, a.rel) for a in project.artifacts]


def one(project, type_: str, name: str):
    matches = [a for a in project.artifacts if (a.type, a.name) == (type_, name)]
    assert len(matches) == 1, keys(project)
    return matches[0]


def messages(project) -> list[str]:
    return [w.message for w in project.warnings]


# --------------------------------------------------------------------------- 1. profile roots


def test_profile_roots_make_projects_only_when_they_hold_artifact_folders(tmp_path):
    write_file(tmp_path / "codex-only" / ".codex" / "skills" / "s" / "SKILL.md", md(name="s"))
    write_file(tmp_path / "gemini-only" / ".gemini" / "commands" / "c.md", md(name="c"))
    write_file(tmp_path / "cursor-agents" / ".cursor" / "agents" / "a.md", md(name="a"))
    write_file(tmp_path / "editor-settings" / ".cursor" / "settings.json", "{}")
    write_file(tmp_path / "editor-rules" / ".codex" / "config.toml", "")
    (tmp_path / "bare-claude" / ".claude").mkdir(parents=True)
    found = [p.name for p in discover_projects([tmp_path])]
    assert found == ["bare-claude", "codex-only", "cursor-agents", "gemini-only"]
    assert not is_project_folder(tmp_path / "editor-settings")
    assert is_project_folder(tmp_path / "codex-only")


def test_artifacts_are_read_from_every_profile_root_present(tmp_path):
    project = tmp_path / "p"
    write_file(project / ".claude" / "skills" / "pdf" / "SKILL.md", md(description="claude"))
    write_file(project / ".codex" / "skills" / "pdf" / "SKILL.md", md(description="codex"))
    write_file(project / ".gemini" / "agents" / "g.md", md(description="gemini"))
    write_file(project / ".cursor" / "settings.json", "{}")  # not a profile: no artifact folder
    result = read_project(project)
    assert result.profiles == [".claude", ".codex", ".gemini"]
    assert keys(result) == [
        ("agent", "g", ".gemini/agents/g.md"),
        ("skill", "pdf", ".claude/skills/pdf"),
        ("skill", "pdf", ".codex/skills/pdf"),
    ]
    assert result.warnings == []


def test_project_without_claude_but_with_codex_is_read_without_warning(tmp_path):
    project = tmp_path / "p"
    write_file(project / ".codex" / "commands" / "go.md", md(description="Go"))
    result = read_project(project)
    assert result.claude == "ok"
    assert keys(result) == [("command", "go", ".codex/commands/go.md")]
    assert result.warnings == []


# --------------------------------------------------------------------------- 2. skills, agents, commands


def test_skill_manifest_name_in_any_case(tmp_path):
    project = tmp_path / "p"
    write_file(project / ".claude" / "skills" / "upper" / "SKILL.md", md(description="u"))
    write_file(project / ".claude" / "skills" / "lower" / "skill.md", md(description="l"))
    write_file(project / ".claude" / "skills" / "mixed" / "Skill.MD", md(description="m"))
    result = read_project(project)
    assert [(a.name, a.description) for a in result.artifacts] == [("lower", "l"), ("mixed", "m"), ("upper", "u")]
    assert result.warnings == []


def test_agents_and_commands_at_any_depth(tmp_path):
    c = tmp_path / "p" / ".claude"
    write_file(c / "agents" / "pm" / "prd-writer.md", md(description="PRD"))
    write_file(c / "agents" / "a" / "b" / "c" / "deep.md", md(description="deep"))
    write_file(c / "commands" / "dev" / "x.md", md(description="dev x"))
    write_file(c / "commands" / "ops" / "x.md", md(description="ops x"))
    write_file(c / "commands" / "QUICKSTART.md", "Just text")
    write_file(c / "commands" / "upper.MD", "x")
    result = read_project(tmp_path / "p")
    assert keys(result) == [
        ("agent", "deep", ".claude/agents/a/b/c/deep.md"),
        ("agent", "prd-writer", ".claude/agents/pm/prd-writer.md"),
        ("command", "QUICKSTART", ".claude/commands/QUICKSTART.md"),
        ("command", "upper", ".claude/commands/upper.MD"),
        ("command", "x", ".claude/commands/dev/x.md"),
        ("command", "x", ".claude/commands/ops/x.md"),
    ]
    assert result.warnings == []


@pytest.mark.parametrize("doc", ["README.md", "readme.md", "CHANGELOG.md", "License.md", "CONTRIBUTING.MD"])
def test_documentation_files_are_not_artifacts(tmp_path, doc):
    c = tmp_path / "p" / ".claude"
    write_file(c / "agents" / doc, "# docs")
    write_file(c / "commands" / "dev" / doc, "# docs")
    write_file(c / "commands" / "dev" / "real.md", md(name="real"))
    result = read_project(tmp_path / "p")
    assert keys(result) == [("command", "real", ".claude/commands/dev/real.md")]
    assert result.warnings == []


def test_hidden_entries_below_agents_and_commands_are_skipped(tmp_path):
    c = tmp_path / "p" / ".claude"
    write_file(c / "agents" / ".hidden.md", md(name="h"))
    write_file(c / "agents" / ".archive" / "old.md", md(name="old"))
    write_file(c / "agents" / "kept.md", md(name="kept"))
    assert keys(read_project(tmp_path / "p")) == [("agent", "kept", ".claude/agents/kept.md")]


@pytest.mark.parametrize("manifest", ["AGENT.md", "agent.md"])
def test_folder_form_is_one_artifact_and_its_files_are_part_of_it(tmp_path, manifest):
    c = tmp_path / "p" / ".claude"
    write_file(c / "agents" / "planner" / manifest, md(description="Plans"))
    write_file(c / "agents" / "planner" / "notes.md", "part of the planner")
    write_file(c / "commands" / "ship" / "COMMAND.md", md(description="Ships"))
    write_file(c / "commands" / "ship" / "steps" / "one.md", "part of ship")
    result = read_project(tmp_path / "p")
    assert keys(result) == [
        ("agent", "planner", ".claude/agents/planner"),
        ("command", "ship", ".claude/commands/ship"),
    ]
    planner = one(result, "agent", "planner")
    assert planner.description == "Plans"
    assert planner.content_hash == content_hash(c / "agents" / "planner")


def test_older_hook_and_mcp_folder_forms_keep_working(tmp_path):
    c = tmp_path / "p" / ".claude"
    write_file(c / "hooks" / "pre-commit" / "HOOK.md", md(description="Hooks"))
    write_file(c / "hooks" / "lower" / "hook.md", md(description="lower"))
    write_file(c / "mcp" / "files" / "MCP.md", md(description="Files"))
    write_file(c / "mcp" / "gh" / "mcp.json", json.dumps({"description": "GitHub"}))
    result = read_project(tmp_path / "p")
    assert keys(result) == [
        ("hook", "lower", ".claude/hooks/lower"),
        ("hook", "pre-commit", ".claude/hooks/pre-commit"),
        ("mcp", "files", ".claude/mcp/files"),
        ("mcp", "gh", ".claude/mcp/gh"),
    ]


# --------------------------------------------------------------------------- 3. hooks in settings


def settings_with_hooks(hooks: dict) -> str:
    return json.dumps({"permissions": {"allow": ["Read"]}, "hooks": hooks}, indent=2)


HOOKS = {
    "PreToolUse": [
        {"matcher": "Write|Edit", "hooks": [{"type": "command", "command": "echo pre"}]},
    ],
    "PostToolUse": [
        {
            "matcher": "Write|Edit",
            "hooks": [
                {"type": "command", "command": '"$CLAUDE_PROJECT_DIR"/.claude/hooks/format.sh', "timeout": 30},
                {"type": "command", "command": "python3 scripts/lint.py --fix"},
            ],
        }
    ],
    "SessionStart": [{"hooks": [{"type": "command", "command": "echo hi"}]}],
}


@pytest.fixture
def hooked(tmp_path) -> Path:
    project = tmp_path / "p"
    write_file(project / ".claude" / "settings.json", settings_with_hooks(HOOKS))
    write_file(project / ".claude" / "hooks" / "format.sh", "#!/bin/sh\nprettier --write\n")
    write_file(project / "scripts" / "lint.py", "print('lint')\n")
    return project


def test_one_hook_per_inner_entry_with_its_event_matcher_entry_and_file(hooked):
    result = read_project(hooked)
    assert result.warnings == []  # format.sh under hooks/ is a hook's code, not junk
    hooks = [a for a in result.artifacts if a.type == "hook"]
    assert len(hooks) == 4
    assert {a.rel for a in hooks} == {".claude/settings.json"}
    assert len({a.name for a in hooks}) == 4
    pre = next(a for a in hooks if a.name.startswith("PreToolUse:"))
    assert pre.name.startswith("PreToolUse:Write|Edit:")
    assert pre.data == {
        "event": "PreToolUse",
        "matcher": "Write|Edit",
        "hook": {"type": "command", "command": "echo pre"},
        "file": ".claude/settings.json",
    }
    assert pre.description == "echo pre"
    start = next(a for a in hooks if a.name.startswith("SessionStart:"))
    assert start.name.startswith("SessionStart:*:")
    assert start.data["matcher"] is None


def test_hook_names_are_stable_when_other_hooks_change(hooked):
    before = {a.data["hook"]["command"]: a.name for a in read_project(hooked).artifacts}
    changed = {**HOOKS, "Stop": [{"hooks": [{"type": "command", "command": "echo bye"}]}]}
    changed["PreToolUse"] = [
        {"matcher": "Bash", "hooks": [{"type": "command", "command": "echo new"}]},
        *HOOKS["PreToolUse"],
    ]
    write_file(hooked / ".claude" / "settings.json", settings_with_hooks(changed))
    after = {a.data["hook"]["command"]: a.name for a in read_project(hooked).artifacts}
    assert all(after[command] == name for command, name in before.items())
    assert len(set(after.values())) == len(after) == 6


def test_the_same_hook_twice_in_the_project_gets_distinct_names(tmp_path):
    project = tmp_path / "p"
    same = {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "echo x"}] * 2}]}
    write_file(project / ".claude" / "settings.json", settings_with_hooks(same))
    write_file(project / ".claude" / "settings.local.json", settings_with_hooks(same))
    result = read_project(project)
    names = [a.name for a in result.artifacts]
    base = names[0]
    assert sorted(names) == sorted([base, f"{base}~2", f"{base}~3", f"{base}~4"])
    assert sorted({a.rel for a in result.artifacts}) == [".claude/settings.json", ".claude/settings.local.json"]


def test_hook_hash_holds_the_bytes_of_the_script_its_command_names(hooked):
    def hashes() -> dict[str, str]:
        return {a.data["hook"]["command"]: a.content_hash for a in read_project(hooked).artifacts}

    before = hashes()
    write_file(hooked / ".claude" / "hooks" / "format.sh", "#!/bin/sh\nprettier --check\n")
    after = hashes()
    fmt = HOOKS["PostToolUse"][0]["hooks"][0]["command"]
    lint = HOOKS["PostToolUse"][0]["hooks"][1]["command"]
    assert after[fmt] != before[fmt]
    assert after[lint] == before[lint] and after["echo pre"] == before["echo pre"]
    write_file(hooked / "scripts" / "lint.py", "print('lint2')\n")
    assert hashes()[lint] != after[lint]


def test_hook_command_naming_a_file_outside_the_project_is_not_read(tmp_path):
    outside = write_file(tmp_path / "secret.sh", "secret")
    project = tmp_path / "p"
    hooks = {"Stop": [{"hooks": [{"type": "command", "command": f"sh {outside} ../secret.sh"}]}]}
    write_file(project / ".claude" / "settings.json", settings_with_hooks(hooks))
    first = read_project(project).artifacts[0].content_hash
    write_file(outside, "changed")
    assert read_project(project).artifacts[0].content_hash == first


@pytest.mark.parametrize(
    ("hooks", "fragment"),
    [
        ({"PreToolUse": {"matcher": "x", "hooks": []}}, "hooks.PreToolUse is not a list"),
        ({"PreToolUse": [{"matcher": "x"}]}, "has no 'hooks' list"),
        ({"PreToolUse": [{"hooks": ["echo"]}]}, "is not an object"),
        (["echo"], "'hooks' is not an object"),
    ],
)
def test_hooks_not_in_claude_codes_shape_warn_and_yield_no_hook(tmp_path, hooks, fragment):
    project = tmp_path / "p"
    write_file(project / ".claude" / "settings.json", settings_with_hooks(hooks))
    result = read_project(project)
    assert result.artifacts == []
    assert len(result.warnings) == 1 and fragment in result.warnings[0].message


def test_malformed_settings_file_is_a_warning(tmp_path):
    project = tmp_path / "p"
    write_file(project / ".claude" / "settings.json", "{not json")
    result = read_project(project)
    assert result.artifacts == []
    assert ["malformed JSON" in m for m in messages(result)] == [True]


def test_fingerprint_follows_settings_files(hooked):
    before = project_fingerprint(hooked)
    write_file(hooked / ".claude" / "settings.local.json", "{}")
    middle = project_fingerprint(hooked)
    assert middle != before
    write_file(hooked / ".claude" / "settings.json", settings_with_hooks({}))
    assert project_fingerprint(hooked) != middle


# --------------------------------------------------------------------------- 4. MCP servers


MCP = {
    "mcpServers": {
        "github": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-github"],
            "env": {"GITHUB_TOKEN": "ghp_SECRETSECRET", "LOG": "debug-SECRET2"},
        },
        "remote": {"type": "http", "url": "https://example.test/mcp", "headers": {"Authorization": "Bearer SECRET3"}},
    }
}


def test_mcp_servers_come_from_the_project_mcp_json_and_keep_no_secret(tmp_path):
    project = tmp_path / "p"
    (project / ".claude").mkdir(parents=True)
    write_file(project / ".mcp.json", json.dumps(MCP))
    result = read_project(project)
    assert keys(result) == [("mcp", "github", ".mcp.json"), ("mcp", "remote", ".mcp.json")]
    github, remote = result.artifacts
    assert github.data == {
        "command": "npx",
        "args": ["-y", "@modelcontextprotocol/server-github"],
        "env": ["GITHUB_TOKEN", "LOG"],
    }
    assert remote.data["headers"] == ["Authorization"]
    stored = json.dumps([a.__dict__ for a in result.artifacts], default=str)
    assert "SECRET" not in stored


def test_mcp_secret_values_do_not_reach_the_content_hash(tmp_path):
    project = tmp_path / "p"
    (project / ".claude").mkdir(parents=True)
    write_file(project / ".mcp.json", json.dumps(MCP))
    first = [a.content_hash for a in read_project(project).artifacts]
    rotated = json.loads(json.dumps(MCP))
    rotated["mcpServers"]["github"]["env"]["GITHUB_TOKEN"] = "ghp_OTHER"
    write_file(project / ".mcp.json", json.dumps(rotated))
    assert [a.content_hash for a in read_project(project).artifacts] == first
    rotated["mcpServers"]["github"]["args"].append("--read-only")
    write_file(project / ".mcp.json", json.dumps(rotated))
    assert read_project(project).artifacts[0].content_hash != first[0]


def test_mcp_servers_in_settings_and_loose_files_under_mcp_are_not_mcp_artifacts(tmp_path):
    project = tmp_path / "p"
    write_file(project / ".claude" / "settings.json", json.dumps({"mcpServers": {"x": {"command": "y"}}}))
    write_file(project / ".claude" / "mcp" / "loose.json", json.dumps({"command": "y"}))
    result = read_project(project)
    assert result.artifacts == []
    assert [w.path for w in result.warnings] == [str(project.resolve() / ".claude" / "mcp" / "loose.json")]


def test_mcp_json_of_the_wrong_shape_warns(tmp_path):
    project = tmp_path / "p"
    (project / ".claude").mkdir(parents=True)
    write_file(project / ".mcp.json", json.dumps({"mcpServers": {"ok": {"command": "a"}, "bad": "npx x"}}))
    result = read_project(project)
    assert keys(result) == [("mcp", "ok", ".mcp.json")]
    assert ["mcpServers.bad is not an object" in m for m in messages(result)] == [True]


# --------------------------------------------------------------------------- 5/6. names, SkillMeat's files


def deployed(*records: dict) -> str:
    out = []
    for record in records:
        out.append("[[deployed]]")
        out.extend(f"{k} = {json.dumps(v)}" for k, v in record.items())
        out.append("")
    return "\n".join(out)


def test_project_toml_project_table_as_skillmeat_writes_it(tmp_path):
    project = tmp_path / "p"
    write_file(
        project / ".claude" / ".skillmeat-project.toml",
        '[project]\npath = "/elsewhere"\nname = "SkillMeat"\ndescription = "Real"\n'
        'created_at = "2025-12-31T13:55:58"\n',
    )
    result = read_project(project)
    assert (result.name, result.description, result.warnings) == ("SkillMeat", "Real", [])


def test_project_toml_older_top_level_form_keeps_working(tmp_path):
    project = tmp_path / "p"
    write_file(project / ".claude" / ".skillmeat-project.toml", 'name = "Old"\ndescription = "Top"\n')
    assert (read_project(project).name, read_project(project).description) == ("Old", "Top")


@pytest.fixture
def deployed_tree(tmp_path) -> Path:
    project = tmp_path / "p"
    c = project / ".claude"
    write_file(c / "agents" / "pm" / "prd-writer.md", md(description="PRD"))
    write_file(c / "skills" / "Design Principles" / "SKILL.md", md(description="Design"))
    write_file(c / "commands" / "artifacts" / "README.md", "# docs")
    write_file(c / "commands" / "dev" / "go.md", "go")
    write_file(project / ".codex" / "skills" / "pdf" / "SKILL.md", md(description="codex pdf"))
    prd_hash = hashlib.sha256((c / "agents" / "pm" / "prd-writer.md").read_bytes()).hexdigest()
    write_file(
        c / ".skillmeat-deployed.toml",
        deployed(
            {
                "artifact_name": "prd-writer-renamed",
                "artifact_type": "agent",
                "artifact_path": "agents/pm/prd-writer.md",
                "content_hash": prd_hash,
                "local_modifications": False,
                "from_collection": "default",
                "profile_root_dir": ".claude",
            },
            {
                "artifact_name": "design-principles",
                "artifact_type": "skill",
                "artifact_path": "skills/Design Principles",
                "content_hash": "0" * 64,
                "from_collection": "default",
            },
            {
                "artifact_name": "design-again",
                "artifact_type": "skill",
                "artifact_path": "skills/Design Principles",
                "content_hash": "1" * 64,
            },
            {"artifact_name": "README", "artifact_type": "command", "artifact_path": "commands/artifacts/README.md"},
            {"artifact_name": "gone", "artifact_type": "agent", "artifact_path": "agents/gone.md"},
        ),
    )
    write_file(
        project / ".codex" / ".skillmeat-deployed.toml",
        deployed(
            {
                "artifact_name": "pdf",
                "artifact_type": "skill",
                "artifact_path": "skills/pdf",
                "content_hash": content_hash(project / ".codex" / "skills" / "pdf"),
            }
        ),
    )
    return project


def test_deployed_records_match_by_path_and_name_the_artifact(deployed_tree):
    result = read_project(deployed_tree)
    assert keys(result) == [
        ("agent", "prd-writer-renamed", ".claude/agents/pm/prd-writer.md"),
        ("command", "go", ".claude/commands/dev/go.md"),
        ("skill", "design-principles", ".claude/skills/Design Principles"),
        ("skill", "pdf", ".codex/skills/pdf"),
    ]
    by_rel = {a.rel: a for a in result.artifacts}
    assert by_rel[".claude/agents/pm/prd-writer.md"].local_modified is False
    assert by_rel[".claude/agents/pm/prd-writer.md"].data["from_collection"] == "default"
    assert by_rel[".claude/skills/Design Principles"].local_modified is True
    assert by_rel[".codex/skills/pdf"].local_modified is False


def test_deployed_records_that_cannot_be_matched_are_warnings(deployed_tree):
    found = messages(read_project(deployed_tree))
    assert any("names .claude/skills/Design Principles again" in m for m in found)
    assert any("commands/artifacts/README.md, a documentation file" in m for m in found)
    assert any(m == "deployed artifact missing on disk: .claude/agents/gone.md" for m in found)
    assert len(found) == 3


def test_an_unchanged_tree_reads_the_same_twice(deployed_tree):
    first, second = read_project(deployed_tree), read_project(deployed_tree)
    assert [(a.type, a.name, a.rel, a.content_hash) for a in first.artifacts] == [
        (a.type, a.name, a.rel, a.content_hash) for a in second.artifacts
    ]


# --------------------------------------------------------------------------- 7. frontmatter as Claude Code loads it


def test_unquoted_colon_in_description_is_recovered_with_a_warning(tmp_path):
    project = tmp_path / "p"
    text = "---\nname: gemini-orchestrator\ndescription: Use this agent when: you need Gemini\nmodel: opus\n---\nBody\n"
    write_file(project / ".claude" / "agents" / "ai" / "gemini.md", text)
    result = read_project(project)
    agent = one(result, "agent", "gemini")
    assert agent.description == "Use this agent when: you need Gemini"
    assert agent.data == {"name": "gemini-orchestrator", "description": "Use this agent when: you need Gemini"}
    assert len(result.warnings) == 1
    assert "malformed frontmatter" in result.warnings[0].message
    assert "recovered" in result.warnings[0].message


@pytest.mark.parametrize(
    ("tags", "expected"),
    [("py, data ,csv", ["py", "data", "csv"]), ("single", ["single"]), ("[a, b]", ["a", "b"]), ("'a,b'", ["a", "b"])],
)
def test_tags_as_one_comma_separated_string_are_split(tmp_path, tags, expected):
    project = tmp_path / "p"
    write_file(project / ".claude" / "skills" / "s" / "SKILL.md", md(tags=tags))
    assert read_project(project).artifacts[0].tags == expected


def test_version_and_tags_under_nested_metadata_are_used_when_top_level_has_none(tmp_path):
    project = tmp_path / "p"
    nested = "---\nname: s\nmetadata:\n  version: 1.10\n  tags: [pdf, docs]\n---\n"
    top = "---\nname: t\nversion: 2.0\ntags: top\nmetadata:\n  version: 9.9\n  tags: [nested]\n---\n"
    write_file(project / ".claude" / "skills" / "s" / "SKILL.md", nested)
    write_file(project / ".claude" / "skills" / "t" / "SKILL.md", top)
    s, t = read_project(project).artifacts
    assert (s.deployed_version, s.tags) == ("1.10", ["pdf", "docs"])
    assert (t.deployed_version, t.tags) == ("2.0", ["top"])


# --------------------------------------------------------------------------- symlinks


def test_a_skill_linked_from_one_profile_into_another_counts_under_each(tmp_path):
    project = tmp_path / "p"
    write_file(project / ".codex" / "skills" / "pdf" / "SKILL.md", md(description="shared"))
    (project / ".cursor" / "skills").mkdir(parents=True)
    os.symlink("../../.codex/skills/pdf", project / ".cursor" / "skills" / "pdf")
    result = read_project(project)
    assert keys(result) == [("skill", "pdf", ".codex/skills/pdf"), ("skill", "pdf", ".cursor/skills/pdf")]
    assert len({a.content_hash for a in result.artifacts}) == 1
    assert result.warnings == []


def test_symlinked_agent_folder_inside_the_project_is_followed_and_a_loop_is_survived(tmp_path):
    project = tmp_path / "p"
    write_file(project / "shared" / "agents" / "team" / "lead.md", md(description="Lead"))
    (project / ".claude" / "agents").mkdir(parents=True)
    os.symlink("../../shared/agents/team", project / ".claude" / "agents" / "team")
    os.symlink("..", project / "shared" / "agents" / "team" / "loop")
    result = read_project(project)
    assert keys(result) == [("agent", "lead", ".claude/agents/team/lead.md")]
    assert ["loop" in m for m in messages(result)] == [True]


def test_symlink_leaving_the_project_or_dangling_is_a_warning(tmp_path):
    outside = write_file(tmp_path / "outside.md", md(description="outside"))
    project = tmp_path / "p"
    (project / ".claude" / "commands").mkdir(parents=True)
    os.symlink(outside, project / ".claude" / "commands" / "out.md")
    os.symlink(project / "nowhere.md", project / ".claude" / "commands" / "dangling.md")
    result = read_project(project)
    assert result.artifacts == []
    assert sorted(messages(result)) == ["broken symlink; skipped", "symlink resolves outside the project; skipped"]

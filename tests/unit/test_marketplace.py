"""Marketplace files in both formats, versions as written, the one-line errors, and
check-updates that never mixes authors: on the fake, SQLite and PostgreSQL."""

# Long JSON literals read best on one line each.
# ruff: noqa: E501
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import succeeded, write_file

from skillmeat_cache import Artifact, Project
from skillmeat_cache.marketplace import (
    MAX_MARKETPLACE_BYTES,
    InputError,
    check_updates,
    import_marketplace,
    load_marketplace_file,
)

CLAUDE_CODE = Path(__file__).parents[1] / "data" / "claude-marketplace" / ".claude-plugin" / "marketplace.json"


def test_claude_code_marketplace_becomes_one_entry_per_component():
    rows, skipped = load_marketplace_file(CLAUDE_CODE)
    got = {r["id"]: (r["type"], r["name"], r["version"], r["source"]) for r in rows}
    assert got == {
        "claude-code-plugins/feature-dev/agent/code-explorer": (
            "agent", "code-explorer", "1.0.0", "claude-code-plugins:plugins/feature-dev"),
        "claude-code-plugins/feature-dev/agent/code-reviewer": (
            "agent", "code-reviewer", "1.0.0", "claude-code-plugins:plugins/feature-dev"),
        "claude-code-plugins/feature-dev/command/feature-dev": (
            "command", "feature-dev", "1.0.0", "claude-code-plugins:plugins/feature-dev"),
        "claude-code-plugins/backend-development/agent/backend-architect": (
            "agent", "backend-architect", "1.20", "github:wshobson/agents"),
        "claude-code-plugins/backend-development/agent/code-reviewer": (
            "agent", "code-reviewer", "1.20", "github:wshobson/agents"),
        "claude-code-plugins/backend-development/command/feature-development": (
            "command", "feature-development", "1.20", "github:wshobson/agents"),
        "claude-code-plugins/backend-development/skill/api-design-principles": (
            "skill", "api-design-principles", "1.20", "github:wshobson/agents"),
        "claude-code-plugins/pdf/skill/pdf": ("skill", "pdf", "0.3.0", "claude-code-plugins:plugins/pdf"),
    }  # fmt: skip
    assert skipped == ["remote-only"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"id": "a", "name": "n", "type": "skill", "version": ["1"]}]', "entry 0 (a): 'version' must be text, got a JSON list"),
        ('[{"id": "a", "name": {"x": 1}, "type": "skill"}]', "'name' must be text, got a JSON object"),
        ('[{"id": "a", "name": "n", "type": "skill"}, {"id": "a", "name": "m", "type": "agent"}]', "two entries have the id 'a'"),
        ('{"name": "m", "plugins": [{"name": "p", "agents": "./a.md"}, {"name": "p", "agents": ["./a.md"]}]}', "two entries have the id 'm/p/agent/a'"),
        ('{"name": "m", "plugins": [{"name": "p", "source": 7, "agents": ["a.md"]}]}', "'source' must be text or an object"),
        ('{"name": "m", "plugins": [{"name": "p", "agents": [1]}]}', "'agents' must be a list of paths"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"entries": []}', "expected a JSON list of marketplace entries or a Claude Code marketplace"),
    ],
)  # fmt: skip
def test_bad_marketplace_files_are_one_clear_error_and_change_nothing(any_uow, tmp_path, content, message):
    import_marketplace(any_uow, CLAUDE_CODE)
    bad = write_file(tmp_path / "bad.json", content)
    with pytest.raises(InputError) as caught:
        import_marketplace(any_uow, bad)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    with any_uow(read_only=True) as uow:
        assert len(uow.marketplace.list()) == 8


def test_versions_stay_as_written_and_a_bom_is_accepted(any_uow, tmp_path):
    path = tmp_path / "m.json"
    text = '[{"id": "x", "name": "n", "type": "skill", "version": 1.20}, {"id": "y", "name": "m", "type": "agent", "version": 2}]'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert import_marketplace(any_uow, path).entries == 2
    with any_uow(read_only=True) as uow:
        assert (uow.marketplace.get("x").version, uow.marketplace.get("y").version) == ("1.20", "2")


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = write_file(tmp_path / "big.json", "[]")
    monkeypatch.setattr("skillmeat_cache.marketplace.MAX_MARKETPLACE_BYTES", 1)
    opened = []
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a) or (_ for _ in ()).throw(AssertionError))
    with pytest.raises(InputError, match="marketplace files of at most"):
        load_marketplace_file(path)
    assert opened == [] and MAX_MARKETPLACE_BYTES == 32 * 1024 * 1024


def _seed(uow_factory, artifacts: list[dict]) -> None:
    with uow_factory() as uow:
        project = uow.projects.add(Project(name="p", path="/srv/p"))
        for fields in artifacts:
            uow.artifacts.add(Artifact(project_id=project.id, **fields))


def _entries(tmp_path, entries: list[dict]) -> Path:
    return write_file(tmp_path / "m.json", json.dumps(entries))


def test_a_name_match_across_authors_is_ambiguous_not_outdated(any_uow, tmp_path):
    _seed(any_uow, [{"type": "agent", "name": "code-reviewer", "deployed_version": "1.0.0"}])
    import_marketplace(
        any_uow,
        _entries(
            tmp_path,
            [
                {"id": "a", "name": "code-reviewer", "type": "agent", "version": "1.3.2", "source": "github:alice/x"},
                {"id": "b", "name": "code-reviewer", "type": "agent", "version": "1.1", "source": "github:bob/y"},
            ],
        ),
    )
    found = check_updates(any_uow)
    assert found.outdated == []
    assert [(m.artifact.name, m.sources) for m in found.ambiguous] == [
        ("code-reviewer", ["github:alice/x", "github:bob/y"])
    ]
    assert found.ambiguous[0].artifact.upstream_version is None


def test_a_name_match_of_one_author_counts(any_uow, tmp_path):
    _seed(any_uow, [{"type": "agent", "name": "code-reviewer", "deployed_version": "1.3"}])
    same = "github:alice/x"
    entries = [
        {"id": "a", "name": "code-reviewer", "type": "agent", "version": 1.20, "source": same},
        {"id": "b", "name": "code-reviewer", "type": "agent", "version": "1.1", "source": same},
    ]
    path = write_file(tmp_path / "m.json", json.dumps(entries).replace("1.2,", "1.20,"))
    import_marketplace(any_uow, path)
    found = check_updates(any_uow)
    # 1.20 > 1.3 (PEP 440); stored as 1.2 it would not be outdated.
    assert [(a.name, a.upstream_version) for a in found.outdated] == [("code-reviewer", "1.20")]
    assert found.ambiguous == []


def test_a_source_match_is_never_ambiguous(any_uow, tmp_path):
    _seed(any_uow, [{"type": "agent", "name": "code-reviewer", "deployed_version": "1.0", "source": "github:bob/y"}])
    import_marketplace(
        any_uow,
        _entries(
            tmp_path,
            [
                {"id": "a", "name": "code-reviewer", "type": "agent", "version": "9.0", "source": "github:alice/x"},
                {"id": "b", "name": "code-reviewer", "type": "agent", "version": "1.1", "source": "github:bob/y"},
            ],
        ),
    )
    found = check_updates(any_uow)
    assert [(a.name, a.upstream_version) for a in found.outdated] == [("code-reviewer", "1.1")]
    assert found.ambiguous == []


def test_cli_lists_ambiguous_matches_in_json_and_as_text(run, tmp_path):
    db = str(tmp_path / "cache.db")
    write_file(tmp_path / "tree" / "p" / ".claude" / "agents" / "code-reviewer.md", "---\nversion: 1.0\n---\n")
    succeeded(run("--db", db, "scan", str(tmp_path / "tree")))
    entries = [
        {"id": "a", "name": "code-reviewer", "type": "agent", "version": "2", "source": "github:alice/x"},
        {"id": "b", "name": "code-reviewer", "type": "agent", "version": "3"},
    ]
    succeeded(run("--db", db, "marketplace", "import", str(_entries(tmp_path, entries))))
    data = json.loads(succeeded(run("--db", db, "check-updates", "--json")).stdout)
    assert data["outdated"] == []
    assert [(a["name"], a["candidate_sources"]) for a in data["ambiguous"]] == [("code-reviewer", ["github:alice/x", None])]
    text = succeeded(run("--db", db, "check-updates")).stdout
    assert "0 outdated artifacts" in text and "github:alice/x, (none)" in text


def test_cli_imports_claude_codes_marketplace_and_names_skipped_plugins(run, tmp_path):
    db = str(tmp_path / "cache.db")
    result = succeeded(run("--db", db, "marketplace", "import", str(CLAUDE_CODE)))
    assert "imported 8 marketplace entries" in result.stdout
    assert "skipped 1 plugin " in result.stderr and "remote-only" in result.stderr


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('[{"id": "a", "name": "n", "type": "skill", "url": {"href": "x"}}]', "'url' must be text"),
    ],
)
def test_cli_bad_marketplace_file_is_one_error_line(run, tmp_path, content, fragment):
    path = write_file(tmp_path / "bad.json", content)
    result = run("--db", str(tmp_path / "cache.db"), "marketplace", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and fragment in result.stderr
    assert "Traceback" not in result.output

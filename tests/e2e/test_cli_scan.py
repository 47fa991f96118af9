"""The main job end to end: scan a generated tree into a real database through the CLI."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.corpus import edit_files, generate, marketplace_entries
from skillmeat_cache.cli import main


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "tree"
    generate(root, projects=12, artifacts=15, seed=7)
    return root


@pytest.fixture
def cli(tmp_path, monkeypatch, request):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SKILLMEAT_CACHE_URL", raising=False)
    monkeypatch.delenv("SKILLMEAT_CACHE_ENV", raising=False)
    runner = CliRunner()
    db = str(tmp_path / "cache.db")
    if getattr(request, "param", "sqlite") == "postgres":
        db = request.getfixturevalue("db_url_pg")
        result = runner.invoke(main, ["--db", db, "migrate"])
        assert result.exit_code == 0, result.output

    def run(*args: str, code: int = 0):
        result = runner.invoke(main, ["--db", db, *args])
        assert result.exit_code == code, (result.output, result.stderr)
        return result

    return run


def _json(result) -> object:
    return json.loads(result.stdout)


@pytest.mark.parametrize("cli", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_scan_rescan_edit_delete_and_check_updates(cli, tree, tmp_path):
    first = _json(cli("scan", str(tree), "--json"))
    assert (first["projects_seen"], first["projects_added"], first["artifacts_added"]) == (12, 12, 180)
    assert first["warnings"] == []

    again = _json(cli("scan", str(tree), "--json"))
    assert (again["projects_seen"], again["projects_unchanged"], again["projects_updated"]) == (12, 12, 0)
    assert (again["artifacts_added"], again["artifacts_updated"], again["artifacts_removed"]) == (0, 0, 0)

    before = {a["id"]: a for a in _json(cli("artifacts", "--json"))}
    edited = edit_files(tree, 1, seed=3)
    edited_scan = _json(cli("scan", str(tree), "--json"))
    assert (edited_scan["projects_updated"], edited_scan["projects_unchanged"]) == (1, 11)
    assert edited_scan["artifacts_updated"] == 1
    after = {a["id"]: a for a in _json(cli("artifacts", "--json"))}
    changed = [i for i in after if after[i]["updated_at"] != before[i]["updated_at"]]
    assert len(changed) == 1
    assert after[changed[0]]["content_hash"] != before[changed[0]]["content_hash"]
    assert edited[0].exists()

    # an edit to a deployed artifact flips local_modified
    deployed_toml = next(tree.rglob(".skillmeat-deployed.toml"))
    record = tomllib.loads(deployed_toml.read_text())["deployed"][0]
    target = deployed_toml.parent / record["artifact_path"]
    target_file = (
        target
        / next(
            n for n in ("SKILL.md", "AGENT.md", "COMMAND.md", "HOOK.md", "MCP.md", "mcp.json") if (target / n).exists()
        )
        if target.is_dir()
        else target
    )
    target_file.write_bytes(target_file.read_bytes() + b"\nlocal tweak\n")
    flip = _json(cli("scan", str(tree), "--json"))
    assert (flip["projects_updated"], flip["artifacts_updated"]) == (1, 1)
    now = {(a["type"], a["name"], a["project_id"]): a for a in _json(cli("artifacts", "--json"))}
    hit = [a for a in now.values() if a["name"] == record["artifact_name"] and a["local_modified"]]
    assert len(hit) == 1 and not before[hit[0]["id"]]["local_modified"]

    victim = next(p for p in (tree.rglob("SKILL.md")) if ".claude" in p.parts)
    shutil.rmtree(victim.parent)
    removed = _json(cli("scan", str(tree), "--json"))
    assert (removed["artifacts_removed"], removed["projects_updated"]) == (1, 1)

    market = tmp_path / "market.json"
    market.write_text(json.dumps(marketplace_entries(seed=7)))
    cli("marketplace", "import", str(market))
    checked = _json(cli("check-updates", "--json"))
    outdated = checked["outdated"]
    assert outdated and all(a["is_outdated"] for a in outdated)
    assert {a["id"] for a in _json(cli("artifacts", "--outdated", "--json"))} == {a["id"] for a in outdated}

    projects = _json(cli("projects", "--json"))
    assert len(projects) == 12
    assert sum(p["artifact_count"] for p in projects) == 179
    assert sum(p["outdated_count"] for p in projects) == len(outdated)
    assert all(p["last_fetched"].endswith("+00:00") for p in projects)


def test_project_folder_removed_is_marked_stale(cli, tree):
    cli("scan", str(tree))
    project = next(p.parent for p in sorted(tree.rglob(".claude")))
    shutil.rmtree(project)
    summary = _json(cli("scan", str(tree), "--json"))
    assert summary["projects_stale"] == 1
    stale = _json(cli("projects", "--status", "stale", "--json"))
    assert [p["path"] for p in stale] == [str(project.resolve())]
    assert _json(cli("projects", "--older-than", "1h", "--json")) == []


def test_plain_output_and_filters(cli, tree):
    out = cli("scan", str(tree)).stdout
    assert "projects: 12 seen, 0 unchanged, 12 added" in out
    assert "artifacts: 180 added, 0 updated, 0 removed" in out
    table = cli("projects").stdout
    assert "12 projects" in table
    skills = _json(cli("artifacts", "--type", "skill", "--json"))
    assert skills and {a["type"] for a in skills} == {"skill"}
    one = _json(cli("projects", "--json"))[0]
    mine = _json(cli("artifacts", "--project", one["path"], "--json"))
    assert len(mine) == one["artifact_count"] and {a["project_id"] for a in mine} == {one["id"]}
    cli("forget", one["id"])
    assert len(_json(cli("projects", "--json"))) == 11


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("artifacts", "--project", "/no/such/project"), "no cached project"),
        (("projects", "--older-than", "soon"), "duration"),
        (("marketplace", "purge", "--older-than", "x"), "duration"),
        (("forget", "nope"), "no cached project"),
    ],
)
def test_bad_input_gives_exit_1_and_one_error_line(cli, args, message):
    result = cli(*args, code=1)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_bad_marketplace_file_is_one_line_and_keeps_entries(cli, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"id": "a", "name": "x", "type": "skill", "version": "1"}]))
    cli("marketplace", "import", str(good))
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe not json")
    result = cli("marketplace", "import", str(bad), code=1)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert len(_json(cli("marketplace", "list", "--json"))) == 1


def test_scan_of_a_missing_root_warns(cli, tmp_path):
    summary = _json(cli("scan", str(tmp_path / "nowhere"), "--json"))
    assert summary["projects_seen"] == 0 and len(summary["warnings"]) == 1


@pytest.mark.postgres
def test_postgres_is_never_migrated_implicitly(fresh_pg_url, tree, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    runner = CliRunner()
    refused = runner.invoke(main, ["--db", fresh_pg_url, "scan", str(tree)])
    assert refused.exit_code == 1
    assert "skillmeat-cache migrate" in refused.stderr and refused.stderr.count("\n") == 1
    assert runner.invoke(main, ["--db", fresh_pg_url, "migrate"]).exit_code == 0
    done = runner.invoke(main, ["--db", fresh_pg_url, "scan", str(tree), "--json"])
    assert done.exit_code == 0 and json.loads(done.stdout)["projects_added"] == 12

"""Services against the fake unit of work: scanning, refreshing, upstream versions."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from skillmeat_cache import MarketplaceEntry, NotFoundError, ValidationError
from skillmeat_cache.durations import parse_duration
from skillmeat_cache.marketplace import upstream_for
from skillmeat_cache.models import Artifact
from skillmeat_cache.services import (
    InputError,
    check_updates,
    forget_project,
    import_marketplace,
    invalidate,
    refresh_upstream_versions,
    scan,
)
from skillmeat_cache.testing import FakeStore

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def sample(tmp_path) -> Path:
    root = tmp_path / "projects"
    shutil.copytree(EXAMPLES / "projects", root, symlinks=True)
    return root


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


def _skill(root: Path, project: str, name: str, body: str = "") -> Path:
    folder = root / project / ".claude" / "skills" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SKILL.md").write_text(f"---\nname: {name}\nversion: 1.0\ntags: [a]\n---\n{body}\n")
    return folder


def test_first_scan_adds_every_project_and_artifact(store, sample):
    summary = scan(store.unit_of_work, [sample])
    assert (summary.projects_seen, summary.projects_added, summary.projects_unchanged) == (4, 4, 0)
    assert summary.artifacts_added == 20
    assert [w.path.endswith("markdown-linter/SKILL.md") for w in summary.warnings] == [True]
    assert store.count("projects") == 4 and store.count("artifacts") == 20
    by_name = {r["name"]: r for r in store.rows("artifacts")}
    assert by_name["sql-optimizer"]["deployed_version"] == "1.10"
    assert by_name["pre-commit-lint"]["local_modified"] is True
    assert sum(r["local_modified"] for r in store.rows("artifacts")) == 1
    assert by_name["markdown-linter"]["deployed_version"] is None  # broken frontmatter, still cached
    metas = {r["artifact_id"]: r for r in store.rows("artifact_metadata")}
    assert metas[by_name["csv-cleaner"]["id"]]["data"]["from_collection"]
    assert (
        metas[by_name["csv-cleaner"]["id"]]["tags"] == ["py", "data", "csv"]
        or "py" in metas[by_name["csv-cleaner"]["id"]]["tags"]
    )
    names = {r["path"]: r["name"] for r in store.rows("projects")}
    assert names[str(sample.resolve() / "docs-site")] == "docs-site"
    assert names[str(sample.resolve() / "data-pipeline" / "tools" / "cli-helper")] == "cli-helper"


def test_rescan_of_an_unchanged_tree_skips_every_project_and_writes_no_artifact(store, sample):
    first = datetime(2026, 1, 1, tzinfo=UTC)
    scan(store.unit_of_work, [sample], now=first)
    before = store.rows("artifacts")
    version = store.version
    later = first + timedelta(hours=1)
    summary = scan(store.unit_of_work, [sample], now=later)
    assert (summary.projects_seen, summary.projects_unchanged, summary.projects_updated) == (4, 4, 0)
    assert (summary.artifacts_added, summary.artifacts_updated, summary.artifacts_removed) == (0, 0, 0)
    assert store.rows("artifacts") == before
    assert store.version == version + 1  # one batched last_fetched bump
    assert {r["last_fetched"] for r in store.rows("projects")} == {later}


def test_full_rescan_rereads_and_still_reports_unchanged(store, sample):
    scan(store.unit_of_work, [sample])
    before = store.rows("artifacts")
    summary = scan(store.unit_of_work, [sample], full=True)
    assert (summary.projects_unchanged, summary.projects_updated, summary.artifacts_updated) == (4, 0, 0)
    assert store.rows("artifacts") == before


def test_editing_one_file_updates_one_project_and_flips_local_modified(store, sample):
    scan(store.unit_of_work, [sample])
    script = sample / "web-app" / ".claude" / "skills" / "pdf-tools" / "scripts" / "fill_form.py"
    script.write_text(script.read_text() + "# edited\n")
    summary = scan(store.unit_of_work, [sample])
    assert (summary.projects_updated, summary.projects_unchanged) == (1, 3)
    assert (summary.artifacts_updated, summary.artifacts_added, summary.artifacts_removed) == (1, 0, 0)
    pdf = next(r for r in store.rows("artifacts") if r["name"] == "pdf-tools")
    assert pdf["local_modified"] is True


def test_touched_but_identical_project_counts_as_unchanged(store, sample):
    scan(store.unit_of_work, [sample])
    agent = sample / "web-app" / ".claude" / "agents" / "code-reviewer.md"
    os.utime(agent, ns=(1, 1))  # new mtime, same bytes: re-read, found identical
    summary = scan(store.unit_of_work, [sample])
    assert (summary.projects_unchanged, summary.projects_updated) == (4, 0)


def test_removed_and_added_artifacts(store, sample):
    scan(store.unit_of_work, [sample])
    shutil.rmtree(sample / "web-app" / ".claude" / "skills" / "frontend-design")
    _skill(sample, "web-app", "brand-new")
    summary = scan(store.unit_of_work, [sample])
    assert (summary.artifacts_removed, summary.artifacts_added, summary.projects_updated) == (1, 1, 1)
    names = {r["name"] for r in store.rows("artifacts")}
    assert "frontend-design" not in names and "brand-new" in names
    assert store.count("artifact_metadata") == 20


def test_project_whose_claude_folder_is_gone_is_marked_stale_not_deleted(store, sample):
    scan(store.unit_of_work, [sample])
    shutil.rmtree(sample / "docs-site" / ".claude")
    shutil.rmtree(sample / "web-app")
    summary = scan(store.unit_of_work, [sample])
    assert summary.projects_stale == 2 and summary.projects_seen == 2
    status = {Path(r["path"]).name: r["status"] for r in store.rows("projects")}
    assert status == {"docs-site": "stale", "web-app": "stale", "data-pipeline": "active", "cli-helper": "active"}
    assert store.count("artifacts") == 20  # kept, not deleted
    assert scan(store.unit_of_work, [sample]).projects_stale == 0  # not counted twice


def test_projects_outside_the_scanned_roots_or_beyond_depth_are_left_alone(store, sample, tmp_path):
    scan(store.unit_of_work, [sample])
    summary = scan(store.unit_of_work, [sample / "web-app"])
    assert summary.projects_seen == 1 and summary.projects_stale == 0
    summary = scan(store.unit_of_work, [sample], max_depth=1)
    assert summary.projects_seen == 3 and summary.projects_stale == 0  # cli-helper is deeper, still there


def test_rescan_keeps_upstream_versions(store, sample):
    scan(store.unit_of_work, [sample])
    import_marketplace(store.unit_of_work, EXAMPLES / "marketplace.json")
    refresh_upstream_versions(store.unit_of_work)
    before = {r["name"]: r["upstream_version"] for r in store.rows("artifacts")}
    (sample / "web-app" / ".claude" / "skills" / "pdf-tools" / "reference.md").write_text("changed\n")
    scan(store.unit_of_work, [sample])
    after = {r["name"]: (r["upstream_version"], r["is_outdated"]) for r in store.rows("artifacts")}
    assert after["pdf-tools"] == (before["pdf-tools"], True)


def test_check_updates_marks_what_the_marketplace_makes_outdated(store, sample):
    scan(store.unit_of_work, [sample])
    assert import_marketplace(store.unit_of_work, EXAMPLES / "marketplace.json").changed == 9
    found = check_updates(store.unit_of_work)
    changed, outdated = found.changed, found.outdated
    assert found.ambiguous == []
    assert sorted(a.name for a in outdated) == ["code-reviewer", "github", "pdf-tools", "technical-writer"]
    versions = {a.name: a.upstream_version for a in outdated}
    assert versions["pdf-tools"] == "1.3.0"  # newest of two entries with that source
    by_name = {r["name"]: r for r in store.rows("artifacts")}
    assert by_name["csv-cleaner"]["upstream_version"] == "0.4.0"  # source match beats the newer fork by name
    assert by_name["sql-optimizer"]["is_outdated"] is False  # 1.9 is older than 1.10
    assert changed >= 4
    assert check_updates(store.unit_of_work).changed == 0  # nothing left to change


@pytest.mark.parametrize(
    ("source", "expected"),
    [("github:x/y", "2.0"), ("https://x/y", "1.5"), ("entry-id", "1.1"), (None, "3.0"), ("unknown", "3.0")],
)
def test_upstream_matching_prefers_source_then_type_and_name(source, expected):
    entries = [
        MarketplaceEntry(id="a", name="other", type="skill", source="github:x/y", version="2.0"),
        MarketplaceEntry(id="b", name="other", type="skill", source="github:x/y", version="1.0"),
        MarketplaceEntry(id="c", name="other", type="skill", url="https://x/y", version="1.5"),
        MarketplaceEntry(id="entry-id", name="other", type="skill", version="1.1"),
        MarketplaceEntry(id="d", name="tool", type="skill", version="3.0"),
        MarketplaceEntry(id="e", name="tool", type="skill", version="2.9"),
        MarketplaceEntry(id="f", name="tool", type="agent", version="9.0"),
    ]
    from skillmeat_cache.marketplace import _indexes

    by_ref, by_key = _indexes(entries)
    artifact = Artifact(project_id="p", name="tool", type="skill", source=source)
    assert upstream_for(artifact, by_ref, by_key) == (expected, None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"id": "x"}', "expected a JSON list"),
        ('{"name": "m", "plugins": {}}', "needs a 'name' and a 'plugins' list"),
        ('[{"id": "x", "name": "y"}]', "lacks type"),
        ('[{"id": "x", "name": "y", "type": "plugin"}]', "type"),
        ("[1]", "is not an object"),
    ],
)
def test_bad_marketplace_files_are_refused_and_change_nothing(store, tmp_path, content, message):
    import_marketplace(store.unit_of_work, EXAMPLES / "marketplace.json")
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(InputError, match=message):
        import_marketplace(store.unit_of_work, bad)
    assert store.count("marketplace") == 9


def test_missing_marketplace_file(store, tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        import_marketplace(store.unit_of_work, tmp_path / "missing.json")


def test_unreadable_project_is_recorded_as_error_and_others_go_on(store, sample, monkeypatch):
    import skillmeat_cache.reader as reader_module  # the readers import it when a project is read

    real = reader_module.read_project

    def flaky(path):
        if Path(path).name == "docs-site":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(reader_module, "read_project", flaky)
    summary = scan(store.unit_of_work, [sample])
    assert (summary.projects_error, summary.projects_added, summary.projects_seen) == (1, 3, 4)
    docs = next(r for r in store.rows("projects") if r["name"] == "docs-site")
    assert docs["status"] == "error" and "Permission denied" in docs["error_message"]
    monkeypatch.setattr(reader_module, "read_project", real)
    summary = scan(store.unit_of_work, [sample])  # readable again: recovers
    assert summary.projects_updated == 1
    assert next(r for r in store.rows("projects") if r["name"] == "docs-site")["status"] == "active"


def test_forget_project_by_path_or_id(store, sample):
    scan(store.unit_of_work, [sample])
    gone = forget_project(store.unit_of_work, str(sample / "web-app"))
    assert gone.name == "web-app" and store.count("projects") == 3 and store.count("artifacts") == 13
    other = store.rows("projects")[0]
    forget_project(store.unit_of_work, other["id"])
    with pytest.raises(NotFoundError):
        forget_project(store.unit_of_work, "nope")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("6h", timedelta(hours=6)),
        ("7d", timedelta(days=7)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "-1d", "1.5h", "3y"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValidationError):
        parse_duration(text)


def test_summary_json_shape(store, sample):
    data = scan(store.unit_of_work, [sample]).to_dict()
    json.dumps(data)
    assert {
        "projects_seen",
        "projects_unchanged",
        "projects_added",
        "projects_updated",
        "projects_error",
        "projects_stale",
        "artifacts_added",
        "artifacts_updated",
        "artifacts_removed",
        "warnings",
        "seconds",
    } <= set(data)
    assert set(data["warnings"][0]) == {"path", "message"}


def test_invalidate_marks_stale_and_the_next_scan_rereads_and_restores(store, sample):
    scan(store.unit_of_work, [sample])
    with store.unit_of_work(read_only=True) as uow:
        web = uow.projects.get_by_path(str((sample / "web-app").resolve()))
    assert invalidate(store.unit_of_work, web.id) == 1
    with store.unit_of_work(read_only=True) as uow:
        assert [p.path for p in uow.projects.list(status="stale")] == [web.path]
    again = scan(store.unit_of_work, [sample])
    assert again.projects_unchanged == 3 and again.projects_updated == 1  # re-read despite its fingerprint
    assert invalidate(store.unit_of_work) == 4
    with pytest.raises(NotFoundError):
        invalidate(store.unit_of_work, "nope")


def test_scan_remembers_its_roots_only_when_asked(store, sample, tmp_path):
    from skillmeat_cache.roots import remembered_roots

    scan(store.unit_of_work, [sample])
    assert remembered_roots(store.unit_of_work) == []
    scan(store.unit_of_work, [sample, tmp_path / "missing"], remember=True)
    scan(store.unit_of_work, [sample], remember=True)
    assert remembered_roots(store.unit_of_work) == [str(sample.resolve())]

"""The benchmark corpus generator (benchmarks/corpus.py) and the sample tree in examples/."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.version import InvalidVersion, Version

from skillmeat_cache.hashing import content_hash

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # plain `pytest` does not put the repository root on sys.path
    sys.path.insert(0, str(REPO))

from benchmarks.corpus import ARTIFACT_TYPES, edit_files, generate, main, marketplace_entries  # noqa: E402

EXAMPLES = REPO / "examples"
SAMPLE = EXAMPLES / "projects"


# --------------------------------------------------------------------------- helpers


def find_projects(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob(".claude") if p.is_dir())


def artifacts_on_disk(claude: Path) -> dict[tuple[str, str], tuple[str, Path]]:
    """(type, name) -> (form, the file holding the metadata), by SkillMeat's layout rules."""
    found: dict[tuple[str, str], tuple[str, Path]] = {}
    for skill in sorted((claude / "skills").glob("*/SKILL.md")):
        found["skill", skill.parent.name] = ("folder", skill)
    for type_, folder, marker in (("command", "commands", "COMMAND.md"), ("agent", "agents", "AGENT.md")):
        for file in sorted((claude / folder).glob("*.md")):
            found[type_, file.stem] = ("file", file)
        for file in sorted((claude / folder).glob(f"*/{marker}")):
            found[type_, file.parent.name] = ("folder", file)
    for hook in sorted((claude / "hooks").glob("*/HOOK.md")):
        found["hook", hook.parent.name] = ("folder", hook)
    for mcp in sorted((claude / "mcp").iterdir()) if (claude / "mcp").is_dir() else []:
        for marker in ("MCP.md", "mcp.json"):
            if (mcp / marker).is_file():
                found["mcp", mcp.name] = (marker, mcp / marker)
    return found


def frontmatter_text(path: Path) -> str | None:
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return None
    return text[4:].split("\n---\n", 1)[0]


def simple_metadata(path: Path) -> dict[str, str]:
    """Top-level ``key: value`` pairs (as text, quotes removed), or mcp.json's fields."""
    if path.suffix == ".json":
        return {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if isinstance(v, str)}
    meta = {}
    for line in (frontmatter_text(path) or "").splitlines():
        if line and not line[0].isspace() and not line.startswith("-"):
            key, _, value = line.partition(":")
            meta[key.strip()] = value.strip().strip("'\"")
    return meta


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def deployed_entries(project: Path) -> list[dict]:
    path = project / ".claude" / ".skillmeat-deployed.toml"
    return tomllib.loads(path.read_text(encoding="utf-8"))["deployed"] if path.is_file() else []


def newest(versions: list[str]) -> str:
    def key(v: str) -> tuple[int, object]:
        try:
            return (1, Version(v))
        except InvalidVersion:
            return (0, v)

    return max(versions, key=key)


def outdated(artifacts: list[tuple[str, str, dict[str, str]]], market: list[dict]) -> set[tuple[str, str, str]]:
    """(project, type, name) of artifacts behind the marketplace: entries matching the
    artifact's source (entry source, url or id) first, else its (type, name); newest wins."""
    by_ref: dict[str, list[str]] = {}
    by_key: dict[tuple[str, str], list[str]] = {}
    for entry in market:
        for ref in {entry.get("source"), entry.get("url"), entry["id"]} - {None}:
            by_ref.setdefault(ref, []).append(entry["version"])
        by_key.setdefault((entry["type"], entry["name"]), []).append(entry["version"])
    result = set()
    for project, type_, meta in artifacts:
        source = meta.get("source") or meta.get("upstream")
        candidates = by_ref[source] if source in by_ref else by_key.get((type_, meta["name"]), [])
        if candidates and meta.get("version") and Version(newest(candidates)) > Version(meta["version"]):
            result.add((project, type_, meta["name"]))
    return result


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("corpus") / "tree"
    return generate(root, 5, 10, seed=7, edits=3)


# --------------------------------------------------------------------------- generator


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    a = generate(tmp_path / "a", 5, 10, seed=3, edits=2)
    b = generate(tmp_path / "b", 5, 10, seed=3, edits=2)
    c = generate(tmp_path / "c", 5, 10, seed=4, edits=2)
    tree_a, tree_b, tree_c = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b"), tree_bytes(tmp_path / "c")
    assert tree_a == tree_b
    assert (a.files, a.bytes, a.deployed) == (b.files, b.bytes, b.deployed)
    assert [p.relative_to(tmp_path / "a") for p in a.edited] == [p.relative_to(tmp_path / "b") for p in b.edited]
    assert tree_c != tree_a
    assert sorted(tree_c) != sorted(tree_a)
    assert c.files == len(tree_c) and a.files == len(tree_a)
    assert a.bytes == sum(map(len, tree_a.values()))


def test_counts_layout_and_forms(corpus):
    root = corpus.root
    projects = find_projects(root)
    assert len(projects) == corpus.projects == 5
    assert projects == sorted(corpus.project_paths)
    assert {len(p.relative_to(root).parts) for p in projects} <= {2, 3}
    assert corpus.artifacts == 50 and corpus.artifacts_per_project == 10 and corpus.locally_modified == 3
    by_type = dict.fromkeys(ARTIFACT_TYPES, 0)
    forms = set()
    for project in projects:
        claude = project / ".claude"
        found = artifacts_on_disk(claude)
        assert len(found) == 10, project
        for (type_, _name), (form, _file) in found.items():
            by_type[type_] += 1
            forms.add((type_, form))
        meta = tomllib.loads((claude / ".skillmeat-project.toml").read_text(encoding="utf-8"))
        assert meta["name"] == project.name and meta["description"] and meta["created_at"]
        assert (project / "README.md").is_file()
    assert by_type == corpus.by_type == {t: 10 for t in ARTIFACT_TYPES}
    assert {("command", "file"), ("command", "folder"), ("agent", "file"), ("agent", "folder")} <= forms
    assert {("mcp", "MCP.md"), ("mcp", "mcp.json"), ("skill", "folder"), ("hook", "folder")} <= forms


def test_frontmatter_is_realistic(corpus):
    sources = total = 0
    for project in find_projects(corpus.root):
        for (type_, name), (_form, file) in artifacts_on_disk(project / ".claude").items():
            meta = simple_metadata(file)
            assert meta["name"] == name
            assert len(meta["description"].split()) >= 3
            assert re.fullmatch(r"1\.\d+\.\d+", meta["version"])
            assert meta["author"] and meta["license"]
            if file.suffix == ".md":
                tags = re.search(r"^tags: \[(.*)\]$", frontmatter_text(file), re.M).group(1).split(", ")
            else:
                tags = json.loads(file.read_text(encoding="utf-8"))["tags"]
            assert len(set(tags)) == 3, (type_, name)
            total += 1
            sources += bool(meta.get("source"))
    assert 0.25 * total <= sources <= 0.75 * total


def test_frontmatter_parses_as_yaml(corpus):
    yaml = pytest.importorskip("yaml")
    for project in find_projects(corpus.root):
        for _key, (_form, file) in artifacts_on_disk(project / ".claude").items():
            if file.suffix == ".md":
                data = yaml.safe_load(frontmatter_text(file))
                assert isinstance(data["version"], str) and isinstance(data["tags"], list)


def test_deployed_hashes_match_except_edited(corpus):
    edited = set(corpus.edited)
    assert len(edited) == 3
    deployed = mismatched = 0
    for project in find_projects(corpus.root):
        entries = deployed_entries(project)
        assert len(entries) == 5  # about half of 10
        on_disk = artifacts_on_disk(project / ".claude")
        created = tomllib.loads((project / ".claude" / ".skillmeat-project.toml").read_text(encoding="utf-8"))
        for entry in entries:
            assert (entry["artifact_type"], entry["artifact_name"]) in on_disk
            assert entry["local_modifications"] is False
            assert entry["version_lineage"][0] == entry["content_hash"]
            assert entry["deployed_at"] > created["created_at"]
            target = project / ".claude" / entry["artifact_path"]
            touched = any(path == target or target in path.parents for path in edited)
            assert (content_hash(target) == entry["content_hash"]) is not touched, target
            deployed += 1
            mismatched += touched
    assert deployed == corpus.deployed == 25
    assert mismatched == corpus.locally_modified == 3


def test_edit_files_changes_count_files_in_count_projects(tmp_path):
    root = tmp_path / "tree"
    generate(root, 5, 10, seed=1)
    before = tree_bytes(root)
    changed = edit_files(root, 3, seed=9)
    after = tree_bytes(root)
    assert sorted(before) == sorted(after)
    diff = {rel for rel in before if before[rel] != after[rel]}
    assert diff == {p.relative_to(root).as_posix() for p in changed}
    assert len(diff) == 3
    assert all(len(before[rel]) != len(after[rel]) for rel in diff)
    assert len({rel.split("/.claude/")[0] for rel in diff}) == 3
    assert all("/.claude/" in rel and not rel.split("/")[-1].startswith(".skillmeat") for rel in diff)
    # Still valid for its kind (JSON stays JSON, frontmatter stays in front).
    for path in changed:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".md" and before[path.relative_to(root).as_posix()].startswith(b"---\n"):
            assert simple_metadata(path)["name"]
    # Same tree and seed: the same choice of files.
    again = tmp_path / "again"
    generate(again, 5, 10, seed=1)
    assert [p.relative_to(again) for p in edit_files(again, 3, seed=9)] == [p.relative_to(root) for p in changed]
    with pytest.raises(ValueError, match="only 5"):
        edit_files(root, 6, seed=0)


def test_generate_refuses_bad_arguments(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        generate(tmp_path / "full", 1, 1)
    with pytest.raises(ValueError, match="only 2 are deployed"):
        generate(tmp_path / "few", 2, 2, edits=3)
    with pytest.raises(ValueError):
        generate(tmp_path / "neg", -1, 2)


def test_marketplace_entries_make_some_artifacts_outdated(corpus):
    market = marketplace_entries(7)
    assert len({e["id"] for e in market}) == len(market)
    assert {e["type"] for e in market} == set(ARTIFACT_TYPES)
    artifacts = [
        (str(project), type_, simple_metadata(file))
        for project in find_projects(corpus.root)
        for (type_, _name), (_form, file) in artifacts_on_disk(project / ".claude").items()
    ]
    assert outdated(artifacts, market)
    assert len(outdated(artifacts, market)) < len(artifacts)


def test_cli_prints_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "t"), "--projects", "3", "--artifacts", "4", "--seed", "2", "--edits", "1"]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1
    assert "3 projects, 12 artifacts (6 deployed, 1 locally modified)" in line
    assert main([str(tmp_path / "t"), "--edit-existing", "2"]) == 0
    assert "changed 2 files in 2 projects" in capsys.readouterr().out
    assert main([str(tmp_path / "t"), "--projects", "1"]) == 1  # not empty
    assert "error:" in capsys.readouterr().err


# --------------------------------------------------------------------------- examples/


def sample_artifacts() -> dict[str, dict[tuple[str, str], tuple[str, Path]]]:
    return {p.relative_to(SAMPLE).as_posix(): artifacts_on_disk(p / ".claude") for p in find_projects(SAMPLE)}


def test_sample_projects_and_types():
    found = sample_artifacts()
    assert sorted(found) == ["data-pipeline", "data-pipeline/tools/cli-helper", "docs-site", "web-app"]
    counts = {project: len(items) for project, items in found.items()}
    assert counts == {"web-app": 7, "data-pipeline": 6, "data-pipeline/tools/cli-helper": 2, "docs-site": 5}
    kinds = {(type_, form) for items in found.values() for (type_, _n), (form, _f) in items.items()}
    assert {t for t, _ in kinds} == set(ARTIFACT_TYPES)
    assert {("command", "file"), ("command", "folder"), ("agent", "file"), ("agent", "folder")} <= kinds
    assert {("mcp", "MCP.md"), ("mcp", "mcp.json")} <= kinds
    assert all(len(list(f.parent.iterdir())) > 1 for (t, _n), (_k, f) in found["web-app"].items() if t == "skill")
    assert (SAMPLE / "web-app" / ".claude" / "settings.json").is_file()
    assert (SAMPLE / "web-app" / "CLAUDE.md").is_file()
    for project in ("web-app", "data-pipeline", "data-pipeline/tools/cli-helper"):
        meta = tomllib.loads((SAMPLE / project / ".claude" / ".skillmeat-project.toml").read_text(encoding="utf-8"))
        assert set(meta) == {"name", "description", "created_at"}


def test_sample_metadata_details():
    text = (SAMPLE / "data-pipeline/.claude/skills/sql-optimizer/SKILL.md").read_text(encoding="utf-8")
    assert "\nversion: 1.10\n" in text  # unquoted: must stay the text "1.10"
    tag_lines = [
        frontmatter_text(f) or ""
        for items in sample_artifacts().values()
        for (_t, _n), (_k, f) in items.items()
        if f.suffix == ".md"
    ]
    assert any(re.search(r"^tags: \[.*\bpy\b", t, re.M) for t in tag_lines)
    assert any(re.search(r"^tags: \[.*\bpython\b", t, re.M) for t in tag_lines)
    pdf = simple_metadata(SAMPLE / "web-app/.claude/skills/pdf-tools/SKILL.md")
    assert pdf["source"] == "github:anthropics/skills/pdf-tools"
    assert any("upstream" in simple_metadata(f) for items in sample_artifacts().values() for _k, f in items.values())


def test_sample_bytes_are_stable():
    assert (EXAMPLES / ".gitattributes").read_text(encoding="utf-8").splitlines()[-1] == "* -text"
    for path in SAMPLE.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert data.endswith(b"\n") and b"\r" not in data, path


def test_sample_exactly_one_locally_modified_artifact():
    mismatched, deployed = [], 0
    for project in find_projects(SAMPLE):
        on_disk = artifacts_on_disk(project / ".claude")
        for entry in deployed_entries(project):
            deployed += 1
            assert (entry["artifact_type"], entry["artifact_name"]) in on_disk
            assert entry["local_modifications"] is False and entry["version_lineage"][0] == entry["content_hash"]
            if content_hash(project / ".claude" / entry["artifact_path"]) != entry["content_hash"]:
                mismatched.append(f"{project.relative_to(SAMPLE).as_posix()}:{entry['artifact_path']}")
    assert deployed == 10
    assert mismatched == ["data-pipeline:hooks/pre-commit-lint"]


def test_sample_exactly_one_malformed_file():
    yaml = pytest.importorskip("yaml")
    broken = []
    for items in sample_artifacts().values():
        for _key, (_form, file) in items.items():
            if file.suffix != ".md":
                continue
            try:
                data = yaml.safe_load(frontmatter_text(file))
            except yaml.YAMLError:
                broken.append(file.relative_to(SAMPLE).as_posix())
                continue
            assert {"name", "description", "version", "tags", "author", "license"} <= set(data), file
    assert broken == ["docs-site/.claude/skills/markdown-linter/SKILL.md"]


def test_marketplace_file_and_expected_outdated():
    market = json.loads((EXAMPLES / "marketplace.json").read_text(encoding="utf-8"))
    assert isinstance(market, list) and 8 <= len(market) <= 12
    for entry in market:
        assert isinstance(entry["id"], str) and entry["name"] and entry["type"] in ARTIFACT_TYPES
        assert set(entry) <= {"id", "name", "type", "url", "description", "version", "source"}
    assert len({e["id"] for e in market}) == len(market)
    artifacts = [
        (project, type_, simple_metadata(file))
        for project, items in sample_artifacts().items()
        for (type_, _name), (_form, file) in items.items()
    ]
    assert outdated(artifacts, market) == {
        ("web-app", "skill", "pdf-tools"),  # 1.2.0 < 1.3.0 (by source; the 1.2.5 mirror loses)
        ("web-app", "agent", "code-reviewer"),  # 2.0.1 < 2.1.0 (by type and name)
        ("web-app", "mcp", "github"),  # 0.6.2 < 0.7.0 (by source; the entry is named github-server)
        ("docs-site", "agent", "technical-writer"),  # 1.0.0 < 1.1.0 (by type and name)
    }

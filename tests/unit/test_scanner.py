"""The filesystem scanner, on real trees built under tmp_path."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import tracemalloc
from pathlib import Path

import pytest
from conftest import refuse_scandir, write_file

from skillmeat_cache.hashing import content_hash
from skillmeat_cache.models import ARTIFACT_TYPES
from skillmeat_cache.profiles import MAX_DEPTH
from skillmeat_cache.scanner import (
    FRONTMATTER_READ_LIMIT,
    ScanWarning,
    discover_projects,
    project_fingerprint,
    read_project,
)

# --------------------------------------------------------------------------- builders


def make_project(path: Path) -> Path:
    (path / ".claude").mkdir(parents=True, exist_ok=True)
    return path


def md(**fields: str) -> str:
    """Markdown with frontmatter; values are written verbatim (they are YAML source)."""
    lines = [f"{key}: {value}" for key, value in fields.items()]
    return "---\n" + "\n".join(lines) + "\n---\n# Body\n"


def found(roots, **kwargs) -> list[Path]:
    return list(discover_projects(roots, **kwargs))


def only(project, type_: str, name: str):
    matches = [a for a in project.artifacts if (a.type, a.name) == (type_, name)]
    assert len(matches) == 1, project.artifacts
    return matches[0]


def skill(tmp_path: Path, text: str | bytes, name: str = "pdf-tools"):
    """A project holding one skill whose SKILL.md is ``text``; returns the read project."""
    project = make_project(tmp_path / "proj")
    write_file(project / ".claude" / "skills" / name / "SKILL.md", text)
    return read_project(project)


# --------------------------------------------------------------------------- discovery


def test_finds_nested_projects_in_sorted_depth_first_order(tmp_path):
    root = tmp_path / "root"
    for rel in ["b", "a", "a/inner", "a/inner/deeper", "c/x/y"]:
        make_project(root / rel)
    (root / "a" / "src").mkdir()
    (root / "plain" / "folder").mkdir(parents=True)
    expected = [root / "a", root / "a/inner", root / "a/inner/deeper", root / "b", root / "c/x/y"]
    assert found([root]) == [p.resolve() for p in expected]


def test_claude_must_be_a_folder(tmp_path):
    write_file(tmp_path / "file-only" / ".claude", "not a folder")
    (tmp_path / "dangling").mkdir()
    (tmp_path / "dangling" / ".claude").symlink_to(tmp_path / "nowhere")
    make_project(tmp_path / "real")
    assert found([tmp_path]) == [(tmp_path / "real").resolve()]


def test_root_that_is_a_project_is_yielded(tmp_path):
    make_project(tmp_path / "r")
    make_project(tmp_path / "r" / "child")
    assert found([tmp_path / "r"]) == [(tmp_path / "r").resolve(), (tmp_path / "r" / "child").resolve()]


def test_accepts_one_root_given_as_text(tmp_path):
    make_project(tmp_path / "p")
    assert found(str(tmp_path)) == [(tmp_path / "p").resolve()]


def test_is_a_lazy_generator(tmp_path, monkeypatch):
    make_project(tmp_path / "a")
    for i in range(20):
        (tmp_path / "z" / f"sub{i}").mkdir(parents=True)
    listed: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path):
        listed.append(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    gen = discover_projects([tmp_path])
    assert listed == []  # nothing read before the first next()
    assert next(gen) == (tmp_path / "a").resolve()
    assert not any("sub" in p for p in listed)  # z/ not walked yet
    assert list(gen) == []
    assert sum("sub" in p for p in listed) == 20


@pytest.mark.parametrize("depth", [0, 1, 2, 4])
def test_max_depth_boundary(tmp_path, depth):
    root = tmp_path / "root"
    root.mkdir()
    at_n = root.joinpath(*["a"] * depth) if depth else root
    make_project(at_n)
    below = make_project(root.joinpath(*["b"] * (depth + 1)))
    result = found([root], max_depth=depth)
    assert result == [at_n.resolve()]
    assert below.resolve() not in result
    assert below.resolve() in found([root], max_depth=depth + 1)


def test_negative_max_depth_is_refused(tmp_path):
    with pytest.raises(ValueError, match="max_depth"):
        discover_projects([tmp_path], max_depth=-1)


@pytest.mark.parametrize("skipped", [".git", "node_modules", "venv", ".venv", "__pycache__", ".hidden", ".cache"])
def test_does_not_descend_into_skipped_folders(tmp_path, skipped):
    make_project(tmp_path / skipped / "proj")
    make_project(tmp_path / skipped)  # not even the skipped folder itself is a project
    make_project(tmp_path / f"x{skipped}" / "proj")  # a name merely containing it is walked
    assert found([tmp_path]) == [(tmp_path / f"x{skipped}" / "proj").resolve()]


def test_folder_holding_pyvenv_cfg_is_a_virtualenv(tmp_path):
    env = tmp_path / "env"
    write_file(env / "pyvenv.cfg", "home = /usr/bin\n")
    make_project(env)
    make_project(env / "lib" / "proj")
    make_project(tmp_path / "real")
    assert found([tmp_path]) == [(tmp_path / "real").resolve()]


def test_symlink_loops_are_survived(tmp_path):
    root = tmp_path / "root"
    make_project(root / "a")
    (root / "a" / "loop").symlink_to(root / "a", target_is_directory=True)
    (root / "self").symlink_to(root, target_is_directory=True)
    (root / "x").symlink_to(root / "y")
    (root / "y").symlink_to(root / "x")
    warnings: list[ScanWarning] = []
    assert found([root], max_depth=50, warnings=warnings) == [(root / "a").resolve()]
    assert warnings == []


def test_symlink_out_of_root_is_not_followed(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    make_project(outside / "secret")
    make_project(root / "mine")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "alias").symlink_to(root / "mine", target_is_directory=True)
    result = found([root])
    assert result == [(root / "mine").resolve()]  # the in-root alias does not duplicate it
    assert not any("outside" in str(p) for p in result)


def test_symlinked_root_is_resolved(tmp_path):
    make_project(tmp_path / "real" / "p")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert found([tmp_path / "link"]) == [(tmp_path / "real" / "p").resolve()]


def test_overlapping_roots_yield_each_project_once(tmp_path):
    make_project(tmp_path / "a")
    make_project(tmp_path / "a" / "b")
    assert found([tmp_path, tmp_path / "a", tmp_path / "a" / "b"]) == [
        (tmp_path / "a").resolve(),
        (tmp_path / "a" / "b").resolve(),
    ]


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bad_root_is_a_warning_not_an_exception(tmp_path, kind):
    bad = tmp_path / "bad"
    if kind == "file":
        bad.write_text("x")
    make_project(tmp_path / "good" / "p")
    warnings: list[ScanWarning] = []
    assert found([bad, tmp_path / "good"], warnings=warnings) == [(tmp_path / "good" / "p").resolve()]
    assert [w.path for w in warnings] == [str(bad)]
    assert "not" in warnings[0].message


def test_unreadable_folder_is_warned_and_skipped_simulated(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    make_project(locked / "inside")
    make_project(tmp_path / "open")
    refuse_scandir(monkeypatch, locked)
    warnings: list[ScanWarning] = []
    assert found([tmp_path], warnings=warnings) == [(tmp_path / "open").resolve()]
    assert len(warnings) == 1
    assert warnings[0].path == str(locked.resolve())
    assert "Permission denied" in warnings[0].message


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads through chmod 000")
def test_unreadable_folder_is_warned_and_skipped_for_real(tmp_path):
    locked = tmp_path / "locked"
    make_project(locked / "inside")
    make_project(tmp_path / "open")
    locked.chmod(0)
    try:
        warnings: list[ScanWarning] = []
        assert found([tmp_path], warnings=warnings) == [(tmp_path / "open").resolve()]
        assert [w.path for w in warnings] == [str(locked.resolve())]
    finally:
        locked.chmod(0o755)


# --------------------------------------------------------------------------- reading: layout


@pytest.fixture
def full_project(tmp_path) -> Path:
    project = make_project(tmp_path / "full")
    c = project / ".claude"
    write_file(c / "skills" / "pdf-tools" / "SKILL.md", md(name="PDF Tools", description="Read PDFs"))
    write_file(c / "skills" / "pdf-tools" / "scripts" / "run.py", "print(1)\n")
    write_file(c / "agents" / "reviewer.md", md(name="reviewer", description="Reviews"))
    write_file(c / "agents" / "planner" / "AGENT.md", md(description="Plans"))
    write_file(c / "commands" / "deploy.md", md(description="Deploys"))
    write_file(c / "commands" / "ship" / "COMMAND.md", md(description="Ships"))
    write_file(c / "hooks" / "pre-commit" / "HOOK.md", md(description="Hooks"))
    write_file(c / "mcp" / "files" / "MCP.md", md(description="Files server"))
    write_file(c / "mcp" / "github" / "mcp.json", json.dumps({"name": "gh", "description": "GitHub", "version": "3"}))
    return project


EXPECTED_LAYOUT = [
    ("agent", "planner", "agents/planner"),
    ("agent", "reviewer", "agents/reviewer.md"),
    ("command", "deploy", "commands/deploy.md"),
    ("command", "ship", "commands/ship"),
    ("hook", "pre-commit", "hooks/pre-commit"),
    ("mcp", "files", "mcp/files"),
    ("mcp", "github", "mcp/github"),
    ("skill", "pdf-tools", "skills/pdf-tools"),
]


def test_reads_every_type_and_form_sorted_by_type_then_name(full_project):
    project = read_project(full_project)
    assert project.warnings == []
    assert [(a.type, a.name) for a in project.artifacts] == [(t, n) for t, n, _ in EXPECTED_LAYOUT]
    assert {a.type for a in project.artifacts} == set(ARTIFACT_TYPES)


@pytest.mark.parametrize(("type_", "name", "rel"), EXPECTED_LAYOUT)
def test_artifact_path_and_content_hash(full_project, type_, name, rel):
    artifact = only(read_project(full_project), type_, name)
    expected = full_project.resolve() / ".claude" / rel
    assert artifact.path == expected
    assert artifact.path.is_absolute()
    assert artifact.content_hash == content_hash(expected)
    assert artifact.local_modified is False


@pytest.mark.parametrize(
    ("type_", "name", "description"),
    [
        ("skill", "pdf-tools", "Read PDFs"),
        ("agent", "planner", "Plans"),
        ("agent", "reviewer", "Reviews"),
        ("command", "ship", "Ships"),
        ("hook", "pre-commit", "Hooks"),
        ("mcp", "files", "Files server"),
        ("mcp", "github", "GitHub"),
    ],
)
def test_description_comes_from_the_metadata_file(full_project, type_, name, description):
    assert only(read_project(full_project), type_, name).description == description


def test_name_comes_from_disk_and_frontmatter_name_stays_in_data(full_project):
    project = read_project(full_project)
    pdf = only(project, "skill", "pdf-tools")
    assert pdf.data is not None and pdf.data["name"] == "PDF Tools"
    gh = only(project, "mcp", "github")
    assert gh.data == {"name": "gh", "description": "GitHub", "version": "3"}
    assert gh.deployed_version == "3"


def test_project_name_defaults_to_folder_and_reads_project_toml(full_project):
    assert read_project(full_project).name == "full"
    write_file(
        full_project / ".claude" / ".skillmeat-project.toml", 'name = "Web App"\ndescription = "Front end"\nx = 1\n'
    )
    project = read_project(full_project)
    assert (project.name, project.description) == ("Web App", "Front end")
    assert project.path == full_project.resolve()


def test_malformed_project_toml_warns_and_falls_back_to_folder_name(full_project):
    toml = write_file(full_project / ".claude" / ".skillmeat-project.toml", 'name = "unterminated\n')
    project = read_project(full_project)
    assert project.name == "full"
    assert [w.path for w in project.warnings] == [str(toml.resolve())]
    assert "TOML" in project.warnings[0].message


def test_other_claude_entries_and_hidden_entries_are_ignored_quietly(tmp_path):
    project = make_project(tmp_path / "p")
    c = project / ".claude"
    write_file(c / "settings.json", '{"permissions": {"allow": []}, "mcpServers": {"x": {"command": "y"}}}')
    write_file(c / "CLAUDE.md", "---\n: broken: [\n---\n")
    write_file(c / "hooks" / "format.sh", "#!/bin/sh\n")  # a hook's code, not junk
    write_file(c / "hooks" / "lib" / "util.py", "x")
    write_file(c / "commands" / ".drafts" / "wip.md", md(name="wip"))
    write_file(c / "plugins" / "thing" / "README.md", "x")
    write_file(c / "skills" / ".DS_Store", b"\x00\x01")
    write_file(c / "skills" / ".hidden" / "SKILL.md", md(name="h"))
    write_file(c / "skills" / "real" / "SKILL.md", md(name="r"))
    result = read_project(project)
    assert result.warnings == []
    assert [a.name for a in result.artifacts] == ["real"]


@pytest.mark.parametrize(
    ("rel", "offender", "fragment"),
    [
        ("skills/x/notes.md", "skills/x", "not a skill: no SKILL.md"),  # skills/x/ without SKILL.md
        ("skills/loose.md", "skills/loose.md", "SKILL.md"),  # a file directly in skills/
        ("commands/readme.txt", "commands/readme.txt", "not a command: expected a .md file"),
        ("agents/helper/notes.txt", "agents/helper/notes.txt", "not an agent"),
        ("mcp/srv/config.yaml", "mcp/srv", "mcp.json"),
        ("mcp/loose.json", "mcp/loose.json", "not an MCP server"),  # loose files under mcp/
    ],
)
def test_invalid_entries_of_type_folders_are_warned_and_skipped(tmp_path, rel, offender, fragment):
    project = make_project(tmp_path / "p")
    write_file(project / ".claude" / rel, "x")
    write_file(project / ".claude" / "skills" / "ok" / "SKILL.md", md(name="ok"))
    result = read_project(project)
    assert [a.name for a in result.artifacts] == ["ok"]
    assert [w.path for w in result.warnings] == [str(project.resolve() / ".claude" / offender)]
    assert fragment in result.warnings[0].message


def test_file_form_and_folder_form_of_one_name_are_both_kept(tmp_path):
    project = make_project(tmp_path / "p")
    write_file(project / ".claude" / "agents" / "dup.md", md(description="file"))
    write_file(project / ".claude" / "agents" / "dup" / "AGENT.md", md(description="folder"))
    result = read_project(project)
    assert [(a.name, a.rel, a.description) for a in result.artifacts] == [
        ("dup", ".claude/agents/dup", "folder"),
        ("dup", ".claude/agents/dup.md", "file"),
    ]
    assert result.warnings == []


def test_unreadable_artifact_folder_is_warned_and_skipped(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p")
    locked = write_file(project / ".claude" / "skills" / "locked" / "SKILL.md", md(name="l")).parent
    write_file(project / ".claude" / "skills" / "open" / "SKILL.md", md(name="o"))
    refuse_scandir(monkeypatch, locked)
    result = read_project(project)
    assert [a.name for a in result.artifacts] == ["open"]
    assert [w.path for w in result.warnings] == [str(locked.resolve())]


def test_type_folder_that_is_a_file_is_warned(tmp_path):
    project = make_project(tmp_path / "p")
    path = write_file(project / ".claude" / "skills", "not a folder")
    result = read_project(project)
    assert result.artifacts == []
    assert [w.path for w in result.warnings] == [str(path.resolve())]


def test_project_without_claude_folder_warns(tmp_path):
    (tmp_path / "p").mkdir()
    result = read_project(tmp_path / "p")
    assert result.artifacts == []
    assert "no .claude" in result.warnings[0].message


def test_missing_project_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_project(tmp_path / "gone")


# --------------------------------------------------------------------------- reading: frontmatter


@pytest.mark.parametrize(
    ("written", "expected"),
    [("1.10", "1.10"), ("2", "2"), ('"1.10"', "1.10"), ("1.0.0-beta.2", "1.0.0-beta.2"), ("0.10.0", "0.10.0")],
)
def test_version_is_kept_as_written(tmp_path, written, expected):
    artifact = skill(tmp_path, md(version=written)).artifacts[0]
    assert artifact.deployed_version == expected
    assert artifact.data == {"version": expected}
    json.dumps(artifact.data)


@pytest.mark.parametrize("written", ["", "~", "null"])
def test_empty_version_is_none(tmp_path, written):
    assert skill(tmp_path, md(version=written)).artifacts[0].deployed_version is None


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("[py, 3d, 2024]", ["py", "3d", "2024"]),
        ("[Python, python, PDF]", ["Python", "python", "PDF"]),
        ("[1.10, yes, null, '', py, py]", ["1.10", "yes", "py"]),
        ("Documents", ["Documents"]),
        ("\n  - a b\n  - C", ["a b", "C"]),
    ],
)
def test_tags_are_kept_exactly_as_written(tmp_path, written, expected):
    artifact = skill(tmp_path, md(tags=written, aliases=written)).artifacts[0]
    assert artifact.tags == expected
    assert artifact.aliases == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"source": "github.com/a/b"}, "github.com/a/b"),
        ({"upstream": "github.com/up/b"}, "github.com/up/b"),
        ({"source": "github.com/a/b", "upstream": "github.com/up/b"}, "github.com/a/b"),
        ({"upstream": "github.com/up/b", "source": "''"}, "github.com/up/b"),
        ({"name": "x"}, None),
    ],
)
def test_source_falls_back_to_upstream(tmp_path, fields, expected):
    assert skill(tmp_path, md(**fields)).artifacts[0].source == expected


def test_yaml_dates_become_iso_text_and_data_is_json_ready(tmp_path):
    text = md(
        created="2024-01-02",
        updated="2024-01-02T03:04:05Z",
        ratio="0.5",
        nan=".nan",
        blob="!!binary aGVsbG8=",
        things="!!set {a, b}",
        nested="{1: x, 2024-05-06: y, null: z, false: w}",
    )
    data = skill(tmp_path, text).artifacts[0].data
    assert data["created"] == "2024-01-02"
    assert data["updated"] == "2024-01-02T03:04:05+00:00"
    assert data["ratio"] == 0.5
    assert data["nan"] == "nan"
    assert isinstance(data["blob"], str) and isinstance(data["things"], str)
    assert data["nested"] == {"1": "x", "2024-05-06": "y", "null": "z", "false": "w"}
    assert json.loads(json.dumps(data, allow_nan=False)) == data


def test_file_without_frontmatter_has_no_data_and_no_warning(tmp_path):
    project = skill(tmp_path, "# Just markdown\n\n---\n\nA rule above.\n")
    artifact = project.artifacts[0]
    assert project.warnings == []
    assert (artifact.data, artifact.description, artifact.tags) == (None, None, [])


def test_empty_frontmatter_is_an_empty_mapping(tmp_path):
    project = skill(tmp_path, "---\n---\nbody\n")
    assert project.warnings == [] and project.artifacts[0].data == {}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (md(title="[unclosed", version="1"), "malformed frontmatter"),
        ("---\n- a\n- b\n---\n", "not a mapping"),
        ("---\njust text\n---\n", "not a mapping"),
        ("---\nname: x\nno closing line\n", "closing"),
        ("---\ndate: 2024-13-45\n---\n", "malformed frontmatter"),
        ("---\na: &a [*a]\n---\n", "recursive"),
        ("---\nname: caf\xe9\n---\n".encode("latin-1"), "UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ],
)
def test_broken_frontmatter_warns_and_still_returns_the_artifact(tmp_path, content, fragment):
    project = skill(tmp_path, content)
    artifact = project.artifacts[0]
    assert artifact.name == "pdf-tools"
    assert (artifact.data, artifact.description, artifact.deployed_version, artifact.tags) == (None, None, None, [])
    assert artifact.content_hash == content_hash(artifact.path)
    assert [w.path for w in project.warnings] == [str(artifact.path / "SKILL.md")]
    assert fragment in project.warnings[0].message
    assert "\n" not in project.warnings[0].message


def test_alias_bomb_is_refused_not_expanded(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    project = skill(tmp_path, "---\n" + "\n".join(lines) + "\n---\n")
    assert project.artifacts[0].data is None
    assert "too large" in project.warnings[0].message


def test_text_with_nul_bytes_is_made_storable(tmp_path):
    project = skill(tmp_path, md(description='"a\\0b"', tags='["\\0x", ok]'))
    artifact = project.artifacts[0]
    assert artifact.description == "a\ufffdb"
    assert artifact.tags == ["\ufffdx", "ok"]
    assert artifact.data == {"description": "a\ufffdb", "tags": ["\ufffdx", "ok"]}
    assert [w.message for w in project.warnings] == [
        "metadata text holds NUL bytes or invalid Unicode; replaced by U+FFFD"
    ]


def test_lone_surrogates_in_mcp_json_are_made_storable(tmp_path):
    project = make_project(tmp_path / "p")
    write_file(project / ".claude" / "mcp" / "s" / "mcp.json", '{"description": "x\\ud800", "\\udfffk": 1}')
    result = read_project(project)
    artifact = only(result, "mcp", "s")
    assert artifact.description == "x\ufffd"
    assert artifact.data == {"description": "x\ufffd", "\ufffdk": 1}
    json.dumps(artifact.data, ensure_ascii=False).encode("utf-8")
    assert len(result.warnings) == 1


def test_large_file_is_not_read_whole_for_frontmatter(tmp_path):
    body = b"x" * (8 * 1024 * 1024)
    content = md(name="big", version="1.10", tags="[a]").encode() + body
    path = tmp_path / "proj" / ".claude" / "skills" / "big" / "SKILL.md"
    write_file(path, content)
    tracemalloc.start()
    try:
        project = read_project(tmp_path / "proj")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    artifact = project.artifacts[0]
    assert (artifact.deployed_version, artifact.tags, project.warnings) == ("1.10", ["a"], [])
    assert artifact.content_hash == content_hash(path.parent)
    assert peak < 4 * 1024 * 1024  # 8 MiB file; the read is capped and the hash streams


def test_frontmatter_not_ending_within_the_read_limit_warns(tmp_path):
    long_value = "y" * (FRONTMATTER_READ_LIMIT + 10)
    project = skill(tmp_path, f"---\nname: x\ndescription: {long_value}\n---\nbody\n")
    assert project.artifacts[0].data is None
    assert "256 KiB" in project.warnings[0].message


def test_read_limit_cutting_a_multibyte_character_is_not_a_decoding_error(tmp_path):
    filler = "é" * FRONTMATTER_READ_LIMIT  # the limit falls inside a 2-byte character
    project = skill(tmp_path, md(version="1.10") + filler)
    assert project.warnings == []
    assert project.artifacts[0].deployed_version == "1.10"


# --------------------------------------------------------------------------- mcp.json


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("{not json", "malformed JSON"), ("[1, 2]", "not an object"), (b"\xff\xfe{}", "UTF-8")],
)
def test_malformed_mcp_json_warns(tmp_path, content, fragment):
    project = make_project(tmp_path / "p")
    path = write_file(project / ".claude" / "mcp" / "srv" / "mcp.json", content)
    result = read_project(project)
    artifact = only(result, "mcp", "srv")
    assert artifact.data is None
    assert [w.path for w in result.warnings] == [str(path.resolve())]
    assert fragment in result.warnings[0].message


def test_mcp_json_keeps_numbers_as_written(tmp_path):
    project = make_project(tmp_path / "p")
    doc = '{"version": 1.10, "tags": ["db", 2024, true], "upstream": "gh:x/y", "command": "npx", "port": 8080}'
    write_file(project / ".claude" / "mcp" / "db" / "mcp.json", doc)
    artifact = only(read_project(project), "mcp", "db")
    assert (artifact.deployed_version, artifact.tags, artifact.source) == ("1.10", ["db", "2024", "true"], "gh:x/y")
    assert artifact.data == {
        "version": "1.10",
        "tags": ["db", "2024", "true"],
        "upstream": "gh:x/y",
        "command": "npx",
        "port": 8080,
    }


def test_mcp_md_is_preferred_over_mcp_json(tmp_path):
    project = make_project(tmp_path / "p")
    write_file(project / ".claude" / "mcp" / "both" / "MCP.md", md(description="from md"))
    write_file(project / ".claude" / "mcp" / "both" / "mcp.json", '{"description": "from json"}')
    assert only(read_project(project), "mcp", "both").description == "from md"


# --------------------------------------------------------------------------- deployment record


def deployed_toml(*records: dict[str, str]) -> str:
    out = []
    for record in records:
        out.append("[[deployed]]")
        out += [f"{key} = {json.dumps(value)}" for key, value in record.items()]
    return "\n".join(out) + "\n"


@pytest.fixture
def deployed_project(tmp_path) -> Path:
    project = make_project(tmp_path / "p")
    c = project / ".claude"
    write_file(c / "skills" / "pdf" / "SKILL.md", md(name="pdf"))
    write_file(c / "agents" / "rev.md", "no frontmatter\n")
    write_file(c / "commands" / "broken.md", "---\n[oops\n---\n")
    write_file(c / "hooks" / "h" / "HOOK.md", md(name="h"))
    return project


@pytest.mark.parametrize(
    ("record_for", "rel", "modified"),
    [
        ("skill", "skills/pdf", False),
        ("skill", "skills/pdf", True),
        ("skill", "./skills/pdf/", True),
        ("skill", "skills/pdf/SKILL.md", True),
        ("agent", "agents/rev.md", False),
        ("agent", "agents/rev.md", True),
    ],
)
def test_local_modified_compares_the_recorded_hash(deployed_project, record_for, rel, modified):
    c = deployed_project / ".claude"
    target = c / rel.strip("./").removesuffix("/SKILL.md")
    recorded = "0" * 64 if modified else content_hash(target)
    write_file(c / ".skillmeat-deployed.toml", deployed_toml({"artifact_path": rel, "content_hash": recorded}))
    project = read_project(deployed_project)
    flags = {(a.type, a.name): a.local_modified for a in project.artifacts}
    name = "pdf" if record_for == "skill" else "rev"
    assert flags.pop((record_for, name)) is modified
    assert not any(flags.values())  # artifacts without a record are never modified


def test_record_without_artifact_path_matches_by_type_and_name(deployed_project):
    c = deployed_project / ".claude"
    write_file(
        c / ".skillmeat-deployed.toml",
        deployed_toml(
            {"artifact_type": "hook", "artifact_name": "h", "content_hash": "f" * 64},
            {"artifact_type": "skill", "artifact_name": "rev", "content_hash": "f" * 64},  # wrong type
        ),
    )
    project = read_project(deployed_project)
    assert only(project, "hook", "h").local_modified is True
    assert only(project, "agent", "rev").local_modified is False


def test_from_collection_goes_into_data(deployed_project):
    c = deployed_project / ".claude"
    records = [
        {"artifact_path": path, "from_collection": "team", "content_hash": "x"}
        for path in ("skills/pdf", "agents/rev.md", "commands/broken.md")
    ]
    write_file(c / ".skillmeat-deployed.toml", deployed_toml(*records))
    project = read_project(deployed_project)
    assert only(project, "skill", "pdf").data == {"name": "pdf", "from_collection": "team"}
    assert only(project, "agent", "rev").data == {"from_collection": "team"}  # frontmatter absent
    assert only(project, "command", "broken").data is None  # frontmatter broken
    assert only(project, "hook", "h").data == {"name": "h"}  # not deployed


def test_malformed_deployed_toml_warns_and_flags_nothing(deployed_project):
    c = deployed_project / ".claude"
    toml = write_file(c / ".skillmeat-deployed.toml", "[[deployed]\nartifact_path = 'skills/pdf'\n")
    project = read_project(deployed_project)
    assert not any(a.local_modified for a in project.artifacts)
    toml_warnings = [w for w in project.warnings if w.path == str(toml.resolve())]
    assert len(toml_warnings) == 1 and "TOML" in toml_warnings[0].message


# --------------------------------------------------------------------------- security


def test_symlink_out_of_the_project_is_skipped_with_a_warning(tmp_path):
    secret = write_file(tmp_path / "secret" / "SKILL.md", md(description="secret"))
    project = make_project(tmp_path / "p")
    skills = project / ".claude" / "skills"
    skills.mkdir()
    (skills / "stolen").symlink_to(secret.parent, target_is_directory=True)
    write_file(skills / "mixed" / "SKILL.md", md(description="mine"))
    (skills / "mixed" / "leak.txt").symlink_to(tmp_path / "secret" / "SKILL.md")
    write_file(project / "shared" / "SKILL.md", md(description="shared"))
    (skills / "linked").symlink_to(project / "shared", target_is_directory=True)
    result = read_project(project)
    assert [(a.name, a.description) for a in result.artifacts] == [("linked", "shared")]
    assert sorted(w.path for w in result.warnings) == sorted(
        [str(skills.resolve() / "stolen"), str(skills.resolve() / "mixed" / "leak.txt")]
    )


def test_claude_folder_linking_outside_is_not_read(tmp_path):
    outside = make_project(tmp_path / "other") / ".claude"
    write_file(outside / "skills" / "s" / "SKILL.md", md(name="s"))
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / ".claude").symlink_to(outside, target_is_directory=True)
    result = read_project(tmp_path / "p")
    assert result.artifacts == []
    assert "outside" in result.warnings[0].message


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_and_returned_by_read_project(full_project):
    first = project_fingerprint(full_project)
    assert project_fingerprint(full_project) == first
    assert read_project(full_project).fingerprint == first
    assert len(first) == 64


def test_fingerprint_reads_no_file_content(full_project, monkeypatch):
    expected = project_fingerprint(full_project)

    def no_open(*args, **kwargs):
        raise AssertionError("the fingerprint must not open files")

    monkeypatch.setattr(builtins, "open", no_open)
    monkeypatch.setattr(Path, "open", no_open)
    assert project_fingerprint(full_project) == expected


def _edit_same_size(project: Path) -> None:
    path = project / ".claude" / "skills" / "pdf-tools" / "scripts" / "run.py"
    before = path.stat()
    path.write_text("print(2)\n")
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))


def _add_file(project: Path) -> None:
    write_file(project / ".claude" / "skills" / "pdf-tools" / "extra.md", "x")


def _add_artifact(project: Path) -> None:
    write_file(project / ".claude" / "commands" / "new.md", "x")


def _remove_artifact(project: Path) -> None:
    (project / ".claude" / "agents" / "reviewer.md").unlink()


def _touch_toml(name: str):
    def touch_toml(project: Path) -> None:
        path = project / ".claude" / name
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    return touch_toml


def _add_folder(project: Path) -> None:
    (project / ".claude" / "hooks" / "empty").mkdir()


@pytest.mark.parametrize(
    "change",
    [
        _edit_same_size,
        _add_file,
        _add_artifact,
        _remove_artifact,
        _add_folder,
        _touch_toml(".skillmeat-project.toml"),
        _touch_toml(".skillmeat-deployed.toml"),
    ],
)
def test_fingerprint_changes_with_what_read_project_reads(full_project, change):
    write_file(full_project / ".claude" / ".skillmeat-project.toml", "")
    write_file(full_project / ".claude" / ".skillmeat-deployed.toml", "")
    before = project_fingerprint(full_project)
    change(full_project)
    assert project_fingerprint(full_project) != before


def test_fingerprint_changes_when_a_toml_appears(full_project):
    before = project_fingerprint(full_project)
    write_file(full_project / ".claude" / ".skillmeat-deployed.toml", "")
    assert project_fingerprint(full_project) != before


def test_fingerprint_ignores_what_read_project_ignores(full_project):
    before = project_fingerprint(full_project)
    write_file(full_project / ".claude" / "CLAUDE.md", "x")
    write_file(full_project / ".claude" / "plugins" / "p" / "x.md", "x")
    write_file(full_project / ".cursor" / "settings.json", "{}")  # not a profile: no skills/agents/commands
    write_file(full_project / "src" / "main.py", "x")
    assert project_fingerprint(full_project) == before


def test_fingerprint_does_not_stat_folders_below_the_type_folders(full_project):
    """A folder is in the digest by its name (its listing is): touching it changes nothing,
    what happens inside it does."""
    folder = full_project / ".claude" / "skills" / "pdf-tools"
    before = project_fingerprint(full_project)
    st = folder.stat()
    os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert project_fingerprint(full_project) == before
    (folder / "renamed.md").write_text("x")
    (folder / "renamed.md").rename(folder / "other.md")
    assert project_fingerprint(full_project) != before


def test_a_loop_through_a_symlinked_folder_is_caught_below_plain_folders(tmp_path):
    """Plain folders are walked without a stat; below a followed symlink they are stat'ed,
    so a link that leads back to a folder above is still caught (two such links in one
    folder would otherwise double the walk at every level down to the depth limit)."""
    project = make_project(tmp_path / "p")
    shared = project / "shared" / "team"
    write_file(shared / "deep" / "lead.md", "---\ndescription: lead\n---\n")
    (project / ".claude" / "agents").mkdir()
    os.symlink("../../shared/team", project / ".claude" / "agents" / "team")
    os.symlink("../..", shared / "deep" / "up")  # shared/: above team, through the link
    os.symlink("..", shared / "deep" / "back")  # team itself
    result = read_project(project)
    agents = sorted(str(a.path.relative_to(project)) for a in result.artifacts if a.type == "agent")
    assert agents == [".claude/agents/team/deep/lead.md"]
    loops = [w.path for w in result.warnings if "symlink loop" in w.message]
    assert loops == [str(project / ".claude/agents/team/deep/back"), str(project / ".claude/agents/team/deep/up/team")]
    assert project_fingerprint(project) == result.fingerprint


def _awkward_trees(root: Path) -> list[Path]:
    """Projects with what the fingerprint walks must agree on: links in and out, loops,
    dangling links, a FIFO, folders past the depth limit, several profile roots."""
    projects = []

    def project(name: str) -> Path:
        path = make_project(root / name)
        projects.append(path)
        return path

    plain = project("plain")
    write_file(plain / ".claude" / "skills" / "s" / "SKILL.md", "x")
    write_file(plain / ".claude" / "skills" / "s" / "scripts" / "run.py", "print(1)")
    write_file(plain / ".claude" / "agents" / "a.md", "x")
    write_file(plain / ".claude" / "settings.json", "{}")
    write_file(plain / ".mcp.json", "{}")
    links = project("links")
    write_file(links / "shared" / "team" / "deep" / "lead.md", "x")
    (links / ".claude" / "agents").mkdir()
    os.symlink("../../shared/team", links / ".claude" / "agents" / "team")
    os.symlink("../..", links / "shared" / "team" / "deep" / "up")
    os.symlink("..", links / "shared" / "team" / "deep" / "back")
    os.symlink("/", links / ".claude" / "agents" / "outside")
    os.symlink("missing.md", links / ".claude" / "agents" / "dangling.md")
    os.symlink("../../shared/team/deep/lead.md", links / ".claude" / "agents" / "file-link.md")
    os.symlink(".", links / ".claude" / "agents" / "self")
    os.mkfifo(links / ".claude" / "agents" / "fifo")
    deep = project("deep")
    folder = deep / ".claude" / "skills"
    for depth in range(MAX_DEPTH + 3):
        folder = folder / f"d{depth}"
    write_file(folder / "SKILL.md", "x")
    typed = project("typed")
    write_file(typed / "elsewhere" / "c.md", "x")
    os.symlink("../elsewhere", typed / ".claude" / "commands")
    write_file(typed / ".codex" / "skills" / "k" / "SKILL.md", "x")
    os.symlink("elsewhere", typed / ".gemini")
    write_file(typed / ".claude" / "hooks", "not a folder")
    os.symlink(".claude/settings.json", typed / ".mcp.json")
    project("empty")
    return projects


def test_the_fingerprint_walk_and_the_reading_walk_agree(tmp_path):
    """project_fingerprint (a rescan's check: no tree kept) gives what read_project's walk
    gives, whatever the tree holds."""
    from skillmeat_cache.fingerprint import _walk_project

    for project in _awkward_trees(tmp_path):
        real = os.path.realpath(project)
        assert project_fingerprint(project) == _walk_project(real, lambda path, message: None)[0], project.name
        assert project_fingerprint(project) == read_project(project).fingerprint, project.name


def test_fingerprint_differs_between_projects(tmp_path):
    a = make_project(tmp_path / "a")
    b = make_project(tmp_path / "b")
    write_file(a / ".claude" / "skills" / "s" / "SKILL.md", "x")
    write_file(b / ".claude" / "skills" / "t" / "SKILL.md", "x")
    assert project_fingerprint(a) != project_fingerprint(b)


def test_content_hash_of_a_file_artifact_is_sha256_of_its_bytes(tmp_path):
    project = make_project(tmp_path / "p")
    write_file(project / ".claude" / "agents" / "a.md", "---\nname: a\n---\nbody\n")
    artifact = read_project(project).artifacts[0]
    assert artifact.content_hash == hashlib.sha256(b"---\nname: a\n---\nbody\n").hexdigest()

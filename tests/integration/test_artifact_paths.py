"""Artifact paths (revision 0005) and stored project warnings, the same on the fake,
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from skillmeat_cache import Artifact, DuplicateError, Project, ValidationError


def _project(uow_factory) -> str:
    with uow_factory() as uow:
        return uow.projects.add(Project(name="p", path="/srv/p")).id


def test_a_path_defaults_to_the_conventional_one(any_uow):
    pid = _project(any_uow)
    with any_uow() as uow:
        uow.artifacts.add(Artifact(project_id=pid, type="agent", name="rev"))
        uow.artifacts.upsert_many([{"project_id": pid, "type": "skill", "name": "pdf"}])
    with any_uow(read_only=True) as uow:
        assert sorted(uow.artifacts.keys_for_project(pid)) == [
            ("agent", ".claude/agents/rev.md", "rev"),
            ("skill", ".claude/skills/pdf", "pdf"),
        ]


def test_one_type_and_name_at_two_paths_are_two_artifacts(any_uow):
    pid = _project(any_uow)
    rows = [
        {"project_id": pid, "type": "command", "name": "x", "path": ".claude/commands/ops/x.md", "source": "b"},
        {"project_id": pid, "type": "command", "name": "x", "path": ".claude/commands/dev/x.md", "source": "a"},
    ]
    with any_uow() as uow:
        assert uow.artifacts.upsert_many(rows) == 2
    with any_uow(read_only=True) as uow:
        listed = uow.artifacts.list_for_project(pid)
        assert [a.path for a in listed] == [".claude/commands/dev/x.md", ".claude/commands/ops/x.md"]
        assert uow.artifacts.get_by_key(pid, "command", "x").source == "a"  # the first path
        assert uow.artifacts.get_by_key(pid, "command", "x", ".claude/commands/ops/x.md").source == "b"
        assert uow.artifacts.get_by_key(pid, "command", "x", ".claude/commands/x.md") is None
    with pytest.raises(DuplicateError), any_uow() as uow:
        uow.artifacts.add(Artifact(project_id=pid, type="command", name="x", path=".claude/commands/dev/x.md"))


@pytest.mark.parametrize("bad", ["/abs/x.md", "a//b.md", "./a.md", "a/../b.md", "a/", "", "x\x00y"])
def test_bad_paths_are_refused_everywhere(any_uow, bad):
    pid = _project(any_uow)
    with pytest.raises(ValidationError, match="path"):
        Artifact(project_id=pid, type="skill", name="s", path=bad)
    with pytest.raises(ValidationError, match="path"), any_uow() as uow:
        uow.artifacts.upsert_many([{"project_id": pid, "type": "skill", "name": "s", "path": bad}])
    with any_uow(read_only=True) as uow:
        assert uow.artifacts.count() == 0


def test_a_loaded_artifact_can_move_and_keep_its_id(any_uow):
    pid = _project(any_uow)
    with any_uow() as uow:
        artifact = uow.artifacts.add(Artifact(project_id=pid, type="agent", name="rev"))
        id_ = artifact.id
    with any_uow() as uow:
        moved = uow.artifacts.get(id_)
        moved.path = ".claude/agents/pm/rev.md"
        row = {"project_id": pid, "type": "agent", "name": "rev", "path": ".claude/agents/pm/rev.md", "source": "s"}
        assert uow.artifacts.upsert_many([row]) == 1
    with any_uow(read_only=True) as uow:
        assert uow.artifacts.keys_for_project(pid) == {("agent", ".claude/agents/pm/rev.md", "rev"): id_}
        assert uow.artifacts.get(id_).source == "s"


def test_project_warnings_round_trip_and_are_checked(any_uow):
    warnings = [{"path": "/srv/p/.claude/x.md", "message": "malformed frontmatter: é"}]
    with any_uow() as uow:
        pid = uow.projects.add(Project(name="p", path="/srv/p", warnings=warnings)).id
    with any_uow(read_only=True) as uow:
        project = uow.projects.get(pid)
        assert project.warnings == warnings and project.to_dict()["warnings"] == warnings
    for bad in ("text", [{"path": "x"}], [{"path": 1, "message": "m"}]):
        with pytest.raises(ValidationError, match=r"warnings|path"):
            Project(name="p", path="/srv/q", warnings=bad)

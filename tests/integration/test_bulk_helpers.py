"""Repository methods the scan service leans on, as a contract: SQLite, PostgreSQL and
the fake must agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import named_keys

from skillmeat_cache import Artifact, ForeignKeyViolationError, Project, ReadOnlyError, ValidationError


def _seed(uow_factory):
    with uow_factory() as uow:
        a = uow.projects.add(Project(name="a", path="/w/a"))
        b = uow.projects.add(Project(name="b", path="/w/b", last_fetched=datetime(2026, 1, 1, tzinfo=UTC)))
        uow.projects.add(Project(name="c", path="/w/c", status="stale"))
        uow.artifacts.upsert_many(
            [
                {
                    "project_id": a.id,
                    "type": "skill",
                    "name": "s1",
                    "deployed_version": "1.0",
                    "upstream_version": "2.0",
                },
                {"project_id": a.id, "type": "skill", "name": "s2"},
                {"project_id": a.id, "type": "agent", "name": "g1", "deployed_version": "1", "upstream_version": "3"},
                {"project_id": b.id, "type": "hook", "name": "h1"},
            ]
        )
        return a.id, b.id


def test_summaries_count_artifacts_and_outdated_in_list_order(any_uow):
    _seed(any_uow)
    with any_uow(read_only=True) as uow:
        rows = [(s.project.name, s.artifact_count, s.outdated_count) for s in uow.projects.summaries()]
        assert rows == [("a", 3, 2), ("b", 1, 0), ("c", 0, 0)]
        assert [s.project.name for s in uow.projects.summaries(status="stale")] == ["c"]
        now = datetime(2026, 1, 1, 12, tzinfo=UTC)
        old = uow.projects.summaries(older_than=timedelta(hours=6), now=now)
        assert [s.project.name for s in old] == ["a", "b", "c"]
        assert [s.project.name for s in uow.projects.summaries(older_than=timedelta(days=1), now=now)] == ["a", "c"]


def test_touch_many_and_mark_stale(any_uow):
    a, b = _seed(any_uow)
    when = datetime(2026, 5, 5, tzinfo=UTC)
    with any_uow() as uow:
        before = uow.projects.get(a).updated_at
        assert uow.projects.touch_many([a, b, "ghost"], when) == 2
        assert uow.projects.get(a).last_fetched == when  # loaded entity refreshed
        assert uow.projects.get(a).updated_at >= before
        assert uow.projects.mark_stale([a, "ghost"]) == 1
        assert uow.projects.mark_stale([a]) == 0  # already stale: nothing changes
    with any_uow() as uow:
        assert uow.projects.get(b).last_fetched == when
        assert uow.projects.get(a).status == "stale"
        with pytest.raises(ValidationError):
            uow.projects.touch_many([a], datetime(2026, 1, 1))


def test_keys_for_project_and_delete_many(any_uow):
    a, _ = _seed(any_uow)
    with any_uow() as uow:
        keys = uow.artifacts.keys_for_project(a)
        assert set(keys) == {
            ("skill", ".claude/skills/s1", "s1"),
            ("skill", ".claude/skills/s2", "s2"),
            ("agent", ".claude/agents/g1.md", "g1"),
        }
        keys = named_keys(keys)
        uow.metadata.set(keys[("skill", "s1")], data={"x": 1}, tags=["t"])
        project = uow.projects.get(a)
        assert len(project.artifacts) == 3
        assert uow.artifacts.delete_many([keys[("skill", "s1")], keys[("agent", "g1")], "ghost"]) == 2
        assert [x.name for x in uow.projects.get(a).artifacts] == ["s2"]  # collection not stale
        assert uow.metadata.get(keys[("skill", "s1")]) is None
    with any_uow() as uow:
        assert uow.artifacts.keys_for_project(a) == {("skill", ".claude/skills/s2", "s2"): keys[("skill", "s2")]}
        assert uow.metadata.artifacts_with_tag("t") == []
        assert uow.artifacts.keys_for_project("ghost") == {}


def test_set_many_inserts_replaces_skips_identical_and_keeps_tags_exact(any_uow):
    a, _ = _seed(any_uow)
    with any_uow() as uow:
        keys = named_keys(uow.artifacts.keys_for_project(a))
        s1, s2 = keys[("skill", "s1")], keys[("skill", "s2")]
        rows = [
            {"artifact_id": s1, "data": {"v": (1, 2)}, "description": "one", "tags": ["py", "cli"], "aliases": []},
            {"artifact_id": s2, "data": None, "tags": ["python"]},
        ]
        assert uow.metadata.set_many(rows) == 2
        assert uow.metadata.set_many(rows) == 0  # identical: nothing written
        assert uow.metadata.get(s1).data == {"v": [1, 2]}
        assert [x.name for x in uow.metadata.artifacts_with_tag("py")] == ["s1"]
        changed = [
            {"artifact_id": s1, "data": {"v": [1, 2]}, "description": "one", "tags": ["cli"]},
            {"artifact_id": s1, "data": {"v": [1, 2]}, "description": "one", "tags": ["go"]},  # last wins
        ]
        assert uow.metadata.set_many(changed) == 1
    with any_uow() as uow:
        assert uow.metadata.artifacts_with_tag("py") == []
        assert [x.name for x in uow.metadata.artifacts_with_tag("go")] == ["s1"]
        assert uow.metadata.get_many([s1, s2, "ghost"]).keys() == {s1, s2}
        assert uow.metadata.get(s2).description is None
    with pytest.raises(ForeignKeyViolationError), any_uow() as uow:
        uow.metadata.set_many([{"artifact_id": "ghost", "data": {}}])
    with pytest.raises(ValidationError), any_uow() as uow:
        uow.metadata.set_many([{"artifact_id": s1, "data": {"bad": object()}}])
    with any_uow() as uow:
        assert uow.metadata.get(s1).tags == ["go"]  # nothing lost by the failed calls


def test_update_many_applies_changes_for_one_id_in_order(any_uow):
    a, _ = _seed(any_uow)
    with any_uow() as uow:
        s2 = named_keys(uow.artifacts.keys_for_project(a))[("skill", "s2")]
        uow.artifacts.update_many([{"id": s2, "deployed_version": "1.0", "upstream_version": "1.0"}])
        n = uow.artifacts.update_many(
            [
                {"id": s2, "deployed_version": "2.0", "source": "x"},
                {"id": s2, "upstream_version": "1.5", "source": "y", "local_modified": True},
                {"id": s2, "source": "z"},
            ]
        )
        assert n == 1
        got = uow.artifacts.get(s2)
        assert (got.deployed_version, got.upstream_version, got.source, got.is_outdated) == ("2.0", "1.5", "z", False)


def test_bulk_helpers_refuse_to_write_in_a_read_only_unit_of_work(any_uow):
    a, _ = _seed(any_uow)
    with any_uow(read_only=True) as uow:
        ids = list(uow.artifacts.keys_for_project(a).values())
        for call in (
            lambda: uow.artifacts.delete_many(ids),
            lambda: uow.projects.touch_many([a], datetime.now(UTC)),
            lambda: uow.projects.mark_stale([a]),
            lambda: uow.metadata.set_many([{"artifact_id": ids[0], "data": {}}]),
        ):
            with pytest.raises(ReadOnlyError):
                call()


def test_artifact_entities_are_json_ready(any_uow):
    a, _ = _seed(any_uow)
    with any_uow() as uow:
        art = uow.artifacts.add(Artifact(project_id=a, name="new", type="command"))
        assert art.to_dict()["type"] == "command"

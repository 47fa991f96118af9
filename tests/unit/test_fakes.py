"""What the in-memory fake promises beyond the repository contract: its store (rows,
counts, version), its counters, a private store per unit of work, commits of units of
work that overlap, and entity tracking. The contract itself is tested on the fake,
SQLite and PostgreSQL alike (``any_uow`` in test_repositories.py, test_uow.py and the
others, and tests/integration/test_fake_equals_real.py)."""

from __future__ import annotations

import time
from datetime import UTC, timedelta

import pytest

from skillmeat_cache import (
    Artifact,
    ArtifactRepository,
    DuplicateError,
    MarketplaceEntry,
    MarketplaceRepository,
    MetadataRepository,
    Project,
    ProjectRepository,
    ReadOnlyError,
    UnitOfWorkActiveError,
)
from skillmeat_cache.testing import FakeStore, FakeUnitOfWork


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def new_uow(store):
    return lambda read_only=False: FakeUnitOfWork(read_only=read_only, store=store)


@pytest.fixture
def seeded(new_uow):
    """A committed project 'p' with artifacts a (skill, with metadata+tags) and b (agent)."""
    with new_uow() as uow:
        p = _project(uow, "p")
        a = uow.artifacts.add(Artifact(project_id=p.id, name="a", type="skill", deployed_version="1.0"))
        b = uow.artifacts.add(Artifact(project_id=p.id, name="b", type="agent"))
        uow.metadata.set(a.id, data={"k": [1]}, description="Alpha tool", tags=["py", "cli"])
    return p, a, b


def _project(uow, name="p", path=None, **kw) -> Project:
    return uow.projects.add(Project(name=name, path=path or f"/work/{name}", **kw))


def test_counters_store_rows_and_version(new_uow, store):
    with new_uow() as uow:
        kept = _project(uow, "kept")
        uow.commit()
        _project(uow, "later")
    assert (uow.committed, uow.commits, uow.rollbacks, store.count("projects"), store.version) == (True, 2, 0, 2, 2)
    with new_uow(read_only=True) as reader:
        reader.projects.list()
    assert (reader.committed, reader.commits, store.version) == (True, 1, 2)  # nothing written: no new version
    failing = new_uow()
    with pytest.raises(ZeroDivisionError), failing:
        _project(failing, "lost")
        failing.rollback()
        _project(failing, "lost too")
        1 / 0  # noqa: B018
    assert (failing.committed, failing.rollbacks) == (False, 2)
    assert [r["name"] for r in store.rows("projects") if r["id"] == kept.id] == ["kept"]
    assert sorted(r["name"] for r in store.rows("projects")) == ["kept", "later"]
    with pytest.raises(KeyError):
        store.rows("no_such_table")


def test_store_rows_are_copies_and_list_tags_per_artifact(new_uow, store, seeded):
    _, a, _ = seeded
    assert store.rows("artifact_tags") == [{"artifact_id": a.id, "tag": "cli"}, {"artifact_id": a.id, "tag": "py"}]
    store.rows("artifact_metadata")[0]["data"]["k"].append(2)  # a copy: the store is unchanged
    assert store.rows("artifact_metadata")[0]["data"] == {"k": [1]}


def test_a_unit_of_work_without_a_store_has_its_own_kept_across_reentry():
    bases = {"projects": ProjectRepository, "artifacts": ArtifactRepository}
    bases.update(marketplace=MarketplaceRepository, metadata=MetadataRepository)
    uow, other = FakeUnitOfWork(), FakeUnitOfWork()
    with uow:
        assert all(isinstance(getattr(uow, attr), base) for attr, base in bases.items())
        _project(uow)
    assert not any(hasattr(uow, attr) for attr in bases)
    with uow:
        assert uow.projects.count() == 1
    with other:
        assert other.projects.count() == 0
    for call in (uow.commit, uow.rollback):
        with pytest.raises(UnitOfWorkActiveError):
            call()


def test_overlapping_units_of_work_merge_at_commit_or_conflict(new_uow, store):
    with new_uow() as outer:
        p = _project(outer, "outer")
        outer.commit()
        with new_uow() as inner:
            assert inner.projects.get(p.id).name == "outer"
            _project(inner, "inner")
        _project(outer, "outer2")  # committed after inner: both kept
    assert sorted(r["name"] for r in store.rows("projects")) == ["inner", "outer", "outer2"]
    with pytest.raises(DuplicateError), new_uow() as outer:
        _project(outer, "x", path="/same")
        with new_uow() as inner:
            _project(inner, "y", path="/same")
    assert sorted(r["name"] for r in store.rows("projects")) == ["inner", "outer", "outer2", "y"]


def test_returned_entities_are_one_per_row_and_their_changes_are_written(new_uow, store):
    with new_uow() as uow:
        p = _project(uow)
    created = p.updated_at
    time.sleep(0.002)
    with new_uow() as uow:
        got = uow.projects.get(p.id)
        assert got is uow.projects.get_by_path("/work/p") is uow.projects.list()[0]
        assert uow.projects.add(got) is got and uow.projects.count() == 1  # adding a loaded one: no-op
        got.status = "stale"
        assert uow.projects.count(status="stale") == 1  # written before the next call
        assert got.updated_at > created and got.updated_at.tzinfo == UTC
    assert store.rows("projects")[0]["status"] == "stale"


def test_a_primary_key_change_of_a_stored_entity_is_refused(new_uow, store, seeded):
    p, _, _ = seeded
    with pytest.raises(NotImplementedError), new_uow() as uow:
        uow.projects.get(p.id).id = "other"
    assert [r["id"] for r in store.rows("projects")] == [p.id]


def test_a_project_delete_cascades_to_the_stored_rows(new_uow, store, seeded):
    p, _, _ = seeded
    with new_uow() as uow:
        keep = _project(uow, "keep")
        kept = uow.artifacts.add(Artifact(project_id=keep.id, name="a", type="skill"))
        uow.metadata.set(kept.id, data=None, tags=["py"])
    with new_uow() as uow:
        uow.projects.delete(p.id)
    assert [r["id"] for r in store.rows("artifacts")] == [kept.id]
    assert [r["artifact_id"] for r in store.rows("artifact_metadata")] == [kept.id]
    assert store.rows("artifact_tags") == [{"artifact_id": kept.id, "tag": "py"}]


def test_setting_a_cache_value_it_already_holds_writes_nothing(new_uow, store):
    with new_uow() as uow:
        uow.metadata.set_value("scan", "1")
        uow.metadata.set_value("scan", "2")
    stamp = store.rows("cache_metadata")[0]["updated_at"]
    with new_uow() as uow:
        uow.metadata.set_value("scan", "2")  # same value: not written
    assert (store.rows("cache_metadata")[0]["updated_at"], store.version) == (stamp, 1)


WRITES = {
    "projects.add": lambda u, p, a: u.projects.add(Project(name="n", path="/n")),
    "projects.delete": lambda u, p, a: u.projects.delete(p.id),
    "artifacts.add": lambda u, p, a: u.artifacts.add(Artifact(project_id=p.id, name="n", type="hook")),
    "artifacts.delete": lambda u, p, a: u.artifacts.delete(a.id),
    "artifacts.upsert_many": lambda u, p, a: u.artifacts.upsert_many(
        [{"project_id": p.id, "type": "skill", "name": "n"}]
    ),
    "artifacts.update_many": lambda u, p, a: u.artifacts.update_many([{"id": a.id, "source": "x"}]),
    "marketplace.add": lambda u, p, a: u.marketplace.add(MarketplaceEntry(name="n", type="skill")),
    "marketplace.upsert_many": lambda u, p, a: u.marketplace.upsert_many([{"id": "i", "name": "n", "type": "hook"}]),
    "marketplace.purge_older_than": lambda u, p, a: u.marketplace.purge_older_than(timedelta(0)),
    "metadata.set": lambda u, p, a: u.metadata.set(a.id, data=None),
    "metadata.set_value": lambda u, p, a: u.metadata.set_value("k", "v"),
    "metadata.delete_value": lambda u, p, a: u.metadata.delete_value("k"),
    "entity change": lambda u, p, a: setattr(u.projects.get(p.id), "name", "renamed"),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_read_only_unit_refuses_every_write_and_the_store_stays(new_uow, store, seeded, write):
    p, a, _ = seeded
    before = {t: store.rows(t) for t in ("projects", "artifacts", "artifact_metadata", "marketplace")}
    with pytest.raises(ReadOnlyError), new_uow(read_only=True) as uow:
        assert uow.projects.get(p.id).name == "p"
        write(uow, p, a)
    assert {t: store.rows(t) for t in before} == before

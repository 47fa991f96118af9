"""The in-memory fakes of skillmeat_cache.testing: transactions, repositories, read-only."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm.attributes import flag_modified

from skillmeat_cache import (
    Artifact,
    ArtifactMetadata,
    ArtifactRepository,
    DuplicateError,
    ForeignKeyViolationError,
    MarketplaceEntry,
    MarketplaceRepository,
    MetadataRepository,
    NotFoundError,
    Project,
    ProjectRepository,
    ReadOnlyError,
    UnitOfWorkActiveError,
    ValidationError,
)
from skillmeat_cache.testing import FakeStore, FakeUnitOfWork

NOW = datetime(2026, 3, 1, tzinfo=UTC)


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


def _rows(project_id: str, n: int, **extra) -> list[dict]:
    return [{"project_id": project_id, "type": "skill", "name": f"s{i}", **extra} for i in range(n)]


def test_clean_exit_commits_and_an_exception_rolls_back(new_uow, store):
    with new_uow() as uow:
        kept = _project(uow, "kept")
    assert (uow.committed, uow.commits, store.count("projects")) == (True, 1, 1)
    failing = new_uow()
    with pytest.raises(ZeroDivisionError), failing:
        _project(failing, "lost")
        1 / 0  # noqa: B018
    assert (failing.committed, failing.rollbacks) == (False, 1)
    assert [r["id"] for r in store.rows("projects")] == [kept.id]


def test_rollback_discards_and_commit_inside_the_block_keeps(new_uow):
    with new_uow() as uow:
        kept = _project(uow, "kept")
        uow.commit()
        renamed = uow.projects.get(kept.id)
        renamed.name = "changed"
        _project(uow, "discarded")
        uow.rollback()
        assert renamed.name == "kept"  # expired and reloaded, like a session rollback
        later = _project(uow, "later")
    assert uow.commits == 2
    with new_uow() as uow:
        assert [p.id for p in uow.projects.list()] == [kept.id, later.id]


def test_default_uow_has_fakes_and_a_private_store_kept_across_reentry():
    bases = {"projects": ProjectRepository, "artifacts": ArtifactRepository}
    bases.update(marketplace=MarketplaceRepository, metadata=MetadataRepository)
    uow, other = FakeUnitOfWork(), FakeUnitOfWork()
    with uow:
        assert all(isinstance(getattr(uow, attr), base) for attr, base in bases.items())
        _project(uow)
    assert not any(hasattr(uow, attr) for attr in bases)
    with uow:
        assert uow.projects.count() == 1
        with pytest.raises(UnitOfWorkActiveError), uow:
            pass
        assert uow.active
    with other:
        assert other.projects.count() == 0
    with pytest.raises(UnitOfWorkActiveError):
        uow.commit()


def test_commits_become_visible_and_concurrent_ones_merge_or_conflict(new_uow, store):
    with new_uow() as outer:
        p = _project(outer, "outer")
        with new_uow(read_only=True) as reader:
            assert reader.projects.get(p.id) is None  # not committed yet
        outer.commit()
        with new_uow() as inner:
            assert inner.projects.get(p.id).name == "outer"
            _project(inner, "inner")
        _project(outer, "outer2")
    assert sorted(r["name"] for r in store.rows("projects")) == ["inner", "outer", "outer2"]
    with pytest.raises(DuplicateError), new_uow() as outer:
        _project(outer, "x", path="/same")
        with new_uow() as inner:
            _project(inner, "y", path="/same")
    assert sorted(r["name"] for r in store.rows("projects")) == ["inner", "outer", "outer2", "y"]


def test_taken_path_fails_the_call_or_the_flush_and_changes_nothing(new_uow, store):
    with new_uow() as uow:
        first = _project(uow, "a")
        with pytest.raises(DuplicateError) as info:
            _project(uow, "other", path="/work/a")
        assert info.value.table == "projects"
        second = _project(uow, "b")  # the unit of work stays usable
    with pytest.raises(DuplicateError), new_uow() as uow:
        uow.projects.get(second.id).path = "/work/a"
    assert {(r["id"], r["path"]) for r in store.rows("projects")} == {(first.id, "/work/a"), (second.id, "/work/b")}


def test_identity_map_and_entity_changes_are_flushed(new_uow, store):
    with new_uow() as uow:
        p = _project(uow)
    created = p.updated_at
    time.sleep(0.002)
    with new_uow() as uow:
        got = uow.projects.get(p.id)
        assert got is uow.projects.get_by_path("/work/p") is uow.projects.list()[0]
        assert uow.projects.add(got) is got and uow.projects.count() == 1  # adding a loaded one: no-op
        got.name = "p"  # same value: no write
        assert uow.projects.get(p.id).updated_at == created
        got.status = "stale"
        assert uow.projects.count(status="stale") == 1  # autoflush before a query
        assert got.updated_at > created and got.updated_at.tzinfo == UTC
    assert store.rows("projects")[0]["status"] == "stale"
    with new_uow() as uow, pytest.raises(ValidationError, match="last_fetched"):
        uow.projects.get(p.id).last_fetched = datetime(2026, 1, 1)  # naive


def test_project_order_paging_status_and_stale(new_uow):
    with new_uow() as uow:
        for name, path, kw in [
            ("b", "/w/b", {"last_fetched": NOW - timedelta(hours=5)}),
            ("a", "/z/a", {"status": "stale"}),
            ("a", "/w/a", {"last_fetched": NOW - timedelta(minutes=5)}),
            ("c", "/w/c", {"status": "error"}),
        ]:
            _project(uow, name, path, **kw)
    with new_uow() as uow:
        assert [p.path for p in uow.projects.list()] == ["/w/a", "/z/a", "/w/b", "/w/c"]
        assert [p.path for p in uow.projects.list(limit=2, offset=1)] == ["/z/a", "/w/b"]
        assert [p.path for p in uow.projects.list(status="stale")] == ["/z/a"]
        assert (uow.projects.count(), uow.projects.count(status="error")) == (4, 1)
        assert [p.path for p in uow.projects.stale(timedelta(hours=1), now=NOW)] == ["/z/a", "/w/b", "/w/c"]
        for call, field in [
            (lambda: uow.projects.list(status="gone"), "status"),
            (lambda: uow.projects.count(status="gone"), "status"),
            (lambda: uow.projects.list(limit=-1), "limit"),
            (lambda: uow.projects.list(offset=-1), "offset"),
            (lambda: uow.projects.stale(timedelta(1), now=datetime(2026, 1, 1)), "now"),
        ]:
            with pytest.raises(ValidationError) as info:
                call()
            assert info.value.field == field


def test_project_delete_cascades(new_uow, store, seeded):
    p, _, _ = seeded
    with new_uow() as uow:
        keep = _project(uow, "keep")
        kept = uow.artifacts.add(Artifact(project_id=keep.id, name="a", type="skill"))
        uow.metadata.set(kept.id, data=None, tags=["py"])
    with new_uow() as uow:
        uow.projects.delete(p.id)
        with pytest.raises(NotFoundError):
            uow.projects.delete(p.id)
    assert [r["id"] for r in store.rows("artifacts")] == [kept.id]
    assert [r["artifact_id"] for r in store.rows("artifact_metadata")] == [kept.id]
    assert store.rows("artifact_tags") == [{"artifact_id": kept.id, "tag": "py"}]


def test_relationships_are_filled_and_cascade(new_uow, store):
    with new_uow() as uow:
        p = Project(name="rel", path="/work/rel")
        p.artifacts.append(Artifact(project=p, name="b", type="agent"))
        p.artifacts.append(Artifact(project=p, name="a", type="agent"))
        uow.projects.add(p)
    with new_uow() as uow:
        loaded = uow.projects.get(p.id)
        assert [a.name for a in loaded.artifacts] == ["a", "b"]
        assert uow.artifacts.get_by_key(p.id, "agent", "a").project is loaded
        ArtifactMetadata(artifact=loaded.artifacts[0], description="via relationship")
        loaded.artifacts.remove(loaded.artifacts[1])  # delete-orphan
    assert [r["name"] for r in store.rows("artifacts")] == ["a"]
    assert store.rows("artifact_metadata")[0]["description"] == "via relationship"


def test_artifact_lists_order_and_errors(new_uow, store, seeded):
    p, a, _ = seeded
    with new_uow() as uow:
        q = _project(uow, "q")
        for type_, name in [("skill", "z"), ("agent", "y"), ("skill", "a")]:
            uow.artifacts.add(Artifact(project_id=q.id, name=name, type=type_))
        assert [x.name for x in uow.artifacts.list_for_project(q.id)] == ["y", "a", "z"]
        assert [x.name for x in uow.artifacts.list_for_project(q.id, type="skill")] == ["a", "z"]
        by_type = uow.artifacts.list_by_type("skill")
        assert [(x.project_id, x.name) for x in by_type] == sorted((x.project_id, x.name) for x in by_type)
        assert (uow.artifacts.count(), uow.artifacts.count(project_id=p.id)) == (5, 2)
        with pytest.raises(DuplicateError) as info:
            uow.artifacts.add(Artifact(project_id=p.id, name="a", type="skill"))
        assert info.value.table == "artifacts"
        with pytest.raises(ForeignKeyViolationError):
            uow.artifacts.add(Artifact(project_id="ghost", name="x", type="skill"))
        uow.artifacts.delete(a.id)
        with pytest.raises(NotFoundError):
            uow.artifacts.delete(a.id)
    assert store.count("artifacts") == 4 and store.count("artifact_metadata") == 0


def test_search(new_uow, seeded):
    p, a, _ = seeded
    with new_uow() as uow:
        odd = uow.artifacts.add(Artifact(project_id=p.id, name="100%_ALPHA", type="command"))
        assert [x.id for x in uow.artifacts.search("ALPHA")] == [odd.id, a.id]  # name, description
        assert [x.id for x in uow.artifacts.search("alpha", type="command")] == [odd.id]
        assert [x.id for x in uow.artifacts.search("%_")] == [odd.id]
        assert len(uow.artifacts.search("")) == 3
        assert [x.id for x in uow.artifacts.search("", limit=1, offset=2)] == [a.id]
        assert uow.artifacts.search("", project_id="other") == []
        with pytest.raises(ValidationError):
            uow.artifacts.search("a\x00")


def test_upsert_many_counts_and_skips_identical_rows(new_uow, store):
    with new_uow() as uow:
        p = _project(uow)
        assert uow.artifacts.upsert_many(_rows(p.id, 3, deployed_version="1.0")) == 3
    before = {r["name"]: r for r in store.rows("artifacts")}
    time.sleep(0.002)
    with new_uow() as uow:
        loaded = uow.artifacts.get_by_key(p.id, "skill", "s1")
        assert uow.artifacts.upsert_many(_rows(p.id, 3, deployed_version="1.0")) == 0
        changed = _rows(p.id, 3, deployed_version="1.0")
        changed[1].update(upstream_version="2.0", id="ignored", created_at=NOW)
        assert uow.artifacts.upsert_many(changed) == 1
        assert (loaded.upstream_version, loaded.is_outdated) == ("2.0", True)  # refreshed
    after = {r["name"]: r for r in store.rows("artifacts")}
    for name, row in before.items():
        assert (after[name]["id"], after[name]["created_at"]) == (row["id"], row["created_at"])
        assert (after[name]["updated_at"] > row["updated_at"]) is (name == "s1")


def test_upsert_many_last_row_wins_and_keeps_uncarried_columns(new_uow, seeded):
    p, a, _ = seeded
    rows = [
        {"project_id": p.id, "type": "skill", "name": "a", "upstream_version": "0.1", "source": "s"},
        {"project_id": p.id, "type": "skill", "name": "a", "upstream_version": "2.0", "local_modified": True},
    ]
    with new_uow() as uow:
        assert uow.artifacts.upsert_many(rows) == 1
        got = uow.artifacts.get(a.id)
        assert (got.deployed_version, got.upstream_version, got.is_outdated) == ("1.0", "2.0", True)
        assert (got.source, got.local_modified) == (None, True)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"type": "widget", "name": "x"}, ValidationError),
        ({"type": "skill", "name": "  "}, ValidationError),
        ({"type": "skill"}, ValidationError),
        ({"type": "skill", "name": "x", "colour": "red"}, ValidationError),
        ({"type": "skill", "name": "x", "created_at": datetime(2026, 1, 1)}, ValidationError),
        ({"type": "skill", "name": "x", "project_id": "ghost"}, ForeignKeyViolationError),
        ({"type": "skill", "name": "x", "id": "taken"}, DuplicateError),
    ],
)
def test_upsert_many_refuses_bad_rows_atomically(new_uow, store, bad, error):
    with new_uow() as uow:
        p = _project(uow)
        uow.artifacts.add(Artifact(id="taken", project_id=p.id, name="t", type="agent"))
    with pytest.raises(error), new_uow() as uow:
        uow.artifacts.upsert_many([*_rows(p.id, 2), {"project_id": p.id, **bad}])
    assert store.count("artifacts") == 1


def test_update_many(new_uow, store, seeded):
    _, a, b = seeded
    time.sleep(0.002)
    with new_uow() as uow:
        loaded = uow.artifacts.get(a.id)
        changes = [
            {"id": a.id, "upstream_version": "2.0"},
            {"id": b.id, "deployed_version": None},  # no change
            {"id": "unknown", "upstream_version": "9"},
        ]
        assert uow.artifacts.update_many(changes) == 1
        assert (loaded.is_outdated, loaded.updated_at > a.updated_at) == (True, True)
        assert (uow.artifacts.outdated(), uow.artifacts.outdated(project_id="other")) == ([loaded], [])
        loaded.deployed_version = "2.0"  # an entity change re-derives it too
        assert uow.artifacts.outdated() == []
        with pytest.raises(DuplicateError):
            uow.artifacts.update_many([{"id": b.id, "type": "skill", "name": "a", "path": a.path}])
        with pytest.raises(ValidationError):
            uow.artifacts.update_many([{"upstream_version": "1"}])
    rows = {r["id"]: r for r in store.rows("artifacts")}
    assert rows[b.id]["updated_at"] == b.updated_at and rows[b.id]["name"] == "b"


def test_marketplace(new_uow, store):
    with new_uow() as uow:
        uow.marketplace.add(MarketplaceEntry(id="m1", name="pdf", type="skill", description="PDF kit", url="u"))
        uow.marketplace.add(MarketplaceEntry(id="m2", name="lint", type="agent", cached_at=NOW - timedelta(days=40)))
        with pytest.raises(DuplicateError):
            uow.marketplace.add(MarketplaceEntry(id="m1", name="again", type="skill"))
        assert [e.id for e in uow.marketplace.list()] == ["m2", "m1"]
        assert [e.id for e in uow.marketplace.list(type="skill")] == ["m1"]
        assert [e.id for e in uow.marketplace.search("pdf KIT")] == ["m1"]
        rows = [{"id": "m1", "name": "pdf", "type": "skill", "version": "2"}, {"id": "m3", "name": "h", "type": "hook"}]
        assert uow.marketplace.upsert_many(rows) == 2
        m1 = uow.marketplace.get("m1")
        assert (m1.version, m1.url, m1.description) == ("2", "u", "PDF kit")
        assert uow.marketplace.get("m3").cached_at.tzinfo == UTC
        assert uow.marketplace.purge_older_than(timedelta(days=30), now=NOW) == 1
        with pytest.raises(ValidationError):
            uow.marketplace.upsert_many([{"id": "m4", "name": "n", "type": "widget"}])
    assert [r["id"] for r in store.rows("marketplace")] == ["m1", "m3"]


def test_metadata_set_replaces_and_checks_the_artifact(new_uow, store, seeded):
    _, a, _ = seeded
    with new_uow() as uow:
        meta = uow.metadata.get(a.id)
        assert (meta.data, meta.tags, meta.artifact.name) == ({"k": [1]}, ["py", "cli"], "a")
        assert uow.metadata.set(a.id, data={"v": (1, 2)}, tags=["x", "x"]) is meta
    with new_uow() as uow:
        meta = uow.metadata.get(a.id)
        assert (meta.data, meta.description, meta.tags, meta.aliases) == ({"v": [1, 2]}, None, ["x"], [])
        with pytest.raises(ForeignKeyViolationError):
            uow.metadata.set("ghost", data={})
        with pytest.raises(ValidationError):
            uow.metadata.set(a.id, data=None, tags=["ok", " "])
        assert meta.tags == ["x"]
        meta.data["v"].append(3)  # in place: not seen without flag_modified, as with a session
    assert store.rows("artifact_metadata")[0]["data"] == {"v": [1, 2]}
    with new_uow() as uow:
        uow.metadata.get(a.id).data["v"].append(3)
        flag_modified(uow.metadata.get(a.id), "data")
    assert store.rows("artifact_metadata")[0]["data"] == {"v": [1, 2, 3]}


@pytest.mark.parametrize(("tag", "names"), [("py", ["a"]), ("Py", ["b"]), ("python", ["b"]), ("pyth", [])])
def test_tag_lookup_is_exact(new_uow, seeded, tag, names):
    _, _, b = seeded
    with new_uow() as uow:
        uow.metadata.set(b.id, data=None, tags=["python", "Py"])
        assert [x.name for x in uow.metadata.artifacts_with_tag(tag)] == names


def test_key_value_store(new_uow, store):
    with new_uow() as uow:
        assert uow.metadata.get_value("scan") is None
        uow.metadata.set_value("scan", "1")
        uow.metadata.set_value("scan", "2")
        with pytest.raises(ValidationError):
            uow.metadata.set_value("scan", None)
    stamp = store.rows("cache_metadata")[0]["updated_at"]
    with new_uow() as uow:
        uow.metadata.set_value("scan", "2")  # same value: not written
        assert uow.metadata.get_value("scan") == "2"
    assert store.rows("cache_metadata")[0]["updated_at"] == stamp
    with new_uow() as uow:
        assert (uow.metadata.delete_value("scan"), uow.metadata.delete_value("scan")) == (True, False)
    assert store.count("cache_metadata") == 0


WRITES = {
    "projects.add": lambda u, p, a: u.projects.add(Project(name="n", path="/n")),
    "projects.delete": lambda u, p, a: u.projects.delete(p.id),
    "artifacts.add": lambda u, p, a: u.artifacts.add(Artifact(project_id=p.id, name="n", type="hook")),
    "artifacts.delete": lambda u, p, a: u.artifacts.delete(a.id),
    "artifacts.upsert_many": lambda u, p, a: u.artifacts.upsert_many(_rows(p.id, 1)),
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
def test_read_only_unit_refuses_every_write(new_uow, store, seeded, write):
    p, a, _ = seeded
    before = {t: store.rows(t) for t in ("projects", "artifacts", "artifact_metadata", "marketplace")}
    with pytest.raises(ReadOnlyError), new_uow(read_only=True) as uow:
        assert uow.projects.get(p.id).name == "p"
        write(uow, p, a)
    assert {t: store.rows(t) for t in before} == before

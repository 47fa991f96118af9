"""The driver-SQL bulk paths: batching at the parameter limit, atomic failed calls,
identical rows left alone, read-only refusal, identity-map upkeep, timestamp storage.

Contract tests run on SQLite, PostgreSQL and the fake (``any_uow``); the others on the
two real engines (``uow_factory``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import named_keys
from sqlalchemy import text

from skillmeat_cache import (
    Artifact,
    DuplicateError,
    ForeignKeyViolationError,
    NotFoundError,
    Project,
    ReadOnlyError,
    ValidationError,
)
from skillmeat_cache.repositories import bulk as bulk_module
from skillmeat_cache.repositories import rows as rows_module


@pytest.fixture
def small_batches(monkeypatch):
    """Two rows per multi-row VALUES statement and two ids per IN list: every call of a
    few rows runs several statements (and so needs its savepoint)."""
    monkeypatch.setattr(bulk_module, "BATCH_ROWS", 2)
    monkeypatch.setattr(bulk_module, "CHUNK_SIZE", 2)


def _rows(project_id: str, n: int, **extra) -> list[dict]:
    return [
        {"project_id": project_id, "type": "skill", "name": f"s{i}", "deployed_version": "1.0", **extra}
        for i in range(n)
    ]


def _seed(uow_factory, n: int = 5) -> tuple[str, dict[tuple[str, str], str]]:
    with uow_factory() as uow:
        p = uow.projects.add(Project(name="p", path="/w/p"))
        uow.artifacts.upsert_many(_rows(p.id, n, upstream_version="1.0"))
        return p.id, named_keys(uow.artifacts.keys_for_project(p.id))


def _count(uow, table: str) -> int:
    return uow.session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


# -- upsert_many ----------------------------------------------------------------------------


def test_upsert_many_in_several_statements_counts_exactly_and_skips_identical_rows(uow_factory, small_batches):
    pid, keys = _seed(uow_factory, 5)
    with uow_factory() as uow:
        before = {a.name: a.updated_at for a in uow.artifacts.list_for_project(pid)}
        rows = _rows(pid, 7, upstream_version="1.0")
        rows[1]["upstream_version"] = "2.0"  # changed
        assert uow.artifacts.upsert_many(rows) == 3  # s1 changed, s5 and s6 new
        assert uow.artifacts.upsert_many(rows) == 0
        got = {a.name: a for a in uow.artifacts.list_for_project(pid)}
        assert len(got) == 7
        assert got["s1"].is_outdated is True and got["s1"].updated_at > before["s1"]
        assert got["s0"].updated_at == before["s0"]  # identical row: not written
        assert got["s0"].id == keys[("skill", "s0")]  # an existing row keeps its id


def test_upsert_many_failing_in_a_later_statement_changes_nothing(uow_factory, small_batches):
    pid, _ = _seed(uow_factory, 2)
    with uow_factory() as uow:
        rows = _rows(pid, 5, source="new")
        rows[4]["project_id"] = "no-such-project"
        with pytest.raises(ForeignKeyViolationError):
            uow.artifacts.upsert_many(rows)
        assert _count(uow, "artifacts") == 2  # the first statements were undone too
        assert uow.artifacts.upsert_many(_rows(pid, 3)) == 1  # the unit of work goes on
    with uow_factory() as uow:
        assert sorted(a.name for a in uow.artifacts.list_for_project(pid)) == ["s0", "s1", "s2"]
        assert {a.source for a in uow.artifacts.list_for_project(pid)} == {None}


def test_upsert_many_with_rows_of_different_shapes(any_uow):
    pid, keys = _seed(any_uow, 2)
    with any_uow() as uow:
        changed = uow.artifacts.upsert_many(
            [
                {"project_id": pid, "type": "skill", "name": "s0", "upstream_version": "3.0"},  # versions read back
                {"project_id": pid, "type": "agent", "name": "a0", "local_modified": True, "content_hash": "h"},
                {"project_id": pid, "type": "hook", "name": "h0", "id": "given-id"},
            ]
        )
        assert changed == 3
        s0 = uow.artifacts.get(keys[("skill", "s0")])
        assert (s0.deployed_version, s0.upstream_version, s0.is_outdated) == ("1.0", "3.0", True)
        assert uow.artifacts.get("given-id").name == "h0"
        assert uow.artifacts.get_by_key(pid, "agent", "a0").local_modified is True


# -- update_many ----------------------------------------------------------------------------


def test_update_many_failing_in_a_later_execution_changes_nothing(uow_factory):
    _pid, keys = _seed(uow_factory, 3)
    with uow_factory() as uow:
        changes = [
            {"id": keys[("skill", "s0")], "upstream_version": "9.0"},
            {"id": keys[("skill", "s1")], "name": "s2", "path": ".claude/skills/s2"},  # the key is taken
        ]
        with pytest.raises(DuplicateError):
            uow.artifacts.update_many(changes)
        assert uow.artifacts.get(keys[("skill", "s0")]).upstream_version == "1.0"
        assert uow.artifacts.update_many(changes[:1]) == 1
    with uow_factory() as uow:
        assert uow.artifacts.get(keys[("skill", "s0")]).is_outdated is True


def test_update_many_refreshes_loaded_entities(any_uow):
    _pid, keys = _seed(any_uow, 2)
    with any_uow() as uow:
        loaded = uow.artifacts.get(keys[("skill", "s1")])
        assert loaded.upstream_version == "1.0"
        assert uow.artifacts.update_many([{"id": loaded.id, "upstream_version": "1.5", "source": "s"}]) == 1
        assert (loaded.upstream_version, loaded.source, loaded.is_outdated) == ("1.5", "s", True)


# -- metadata.set_many ----------------------------------------------------------------------


def test_set_many_treats_equal_documents_as_identical(any_uow):
    _pid, keys = _seed(any_uow, 2)
    s0, s1 = keys[("skill", "s0")], keys[("skill", "s1")]
    with any_uow() as uow:
        assert uow.metadata.set_many([{"artifact_id": s0, "data": {"a": 1, "b": [1, 2]}, "tags": ["x"]}]) == 1
        # Another key order, a tuple for a list, a float equal to the int: the same document.
        same = {"artifact_id": s0, "data": {"b": (1, 2), "a": 1.0}, "tags": ("x",), "aliases": None}
        assert uow.metadata.set_many([same]) == 0
        assert uow.metadata.set_many([{"artifact_id": s0, "data": {"a": 2, "b": [1, 2]}, "tags": ["x"]}]) == 1
        assert uow.metadata.set_many([{"artifact_id": s1, "data": None}, {"artifact_id": s1, "data": None}]) == 1
        assert uow.metadata.set_many([{"artifact_id": s1}]) == 0  # missing keys: None / empty


def test_set_many_failing_in_a_later_statement_changes_nothing(uow_factory, small_batches):
    _pid, keys = _seed(uow_factory, 4)
    ids = [keys[("skill", f"s{i}")] for i in range(4)]
    with uow_factory() as uow:
        assert uow.metadata.set_many([{"artifact_id": i, "data": {"v": 1}, "tags": ["old"]} for i in ids[:2]]) == 2
    with uow_factory() as uow:
        rows = [{"artifact_id": i, "data": {"v": 2}, "tags": ["new", "more"]} for i in ids]
        rows.append({"artifact_id": "ghost", "data": {}})
        with pytest.raises(ForeignKeyViolationError):
            uow.metadata.set_many(rows)
        assert _count(uow, "artifact_metadata") == 2
        assert [a.id for a in uow.metadata.artifacts_with_tag("old")] == ids[:2]
        assert uow.metadata.artifacts_with_tag("new") == []
        assert uow.metadata.set_many(rows[:-1]) == 4
    with uow_factory() as uow:
        assert len(uow.metadata.artifacts_with_tag("more")) == 4
        assert uow.metadata.artifacts_with_tag("old") == []
        assert uow.metadata.get(ids[3]).data == {"v": 2}


def test_set_many_refreshes_loaded_metadata_and_tags(any_uow):
    _pid, keys = _seed(any_uow, 1)
    s0 = keys[("skill", "s0")]
    with any_uow() as uow:
        uow.metadata.set(s0, data={"v": 1}, description="one", tags=["a"])
        meta = uow.metadata.get(s0)
        assert uow.metadata.set_many([{"artifact_id": s0, "data": {"v": 2}, "description": "two", "tags": ["b"]}]) == 1
        assert (meta.data, meta.description, meta.tags) == ({"v": 2}, "two", ["b"])
        assert [a.id for a in uow.metadata.artifacts_with_tag("b")] == [s0]


# -- projects.delete ------------------------------------------------------------------------


def test_project_delete_forgets_loaded_children(any_uow):
    pid, keys = _seed(any_uow, 2)
    s0 = keys[("skill", "s0")]
    with any_uow() as uow:
        uow.metadata.set_many([{"artifact_id": s0, "data": {"v": 1}, "tags": ["t"]}])
    with any_uow() as uow:
        assert uow.metadata.get(s0).tags == ["t"]  # loaded: metadata only, not its artifact
        assert len(uow.projects.get(pid).artifacts) == 2
        uow.projects.delete(pid)
        assert uow.projects.get(pid) is None
        assert uow.artifacts.get(s0) is None
        assert uow.metadata.get(s0) is None
        with pytest.raises(NotFoundError):
            uow.projects.delete(pid)
    with any_uow() as uow:
        assert uow.artifacts.count() == 0
        assert uow.metadata.artifacts_with_tag("t") == []


def test_project_delete_writes_pending_changes_first(any_uow):
    pid, _ = _seed(any_uow, 1)
    with any_uow() as uow:
        other = uow.projects.add(Project(name="other", path="/w/other"))
        uow.artifacts.upsert_many(_rows(other.id, 1))
        uow.projects.get(pid).name = "renamed"  # pending when the project goes
        uow.projects.delete(pid)
    with any_uow() as uow:
        assert [p.name for p in uow.projects.list()] == ["other"]
        assert uow.artifacts.count() == 1


# -- read-only units of work ----------------------------------------------------------------

WRITES = {
    "upsert_many": lambda u, pid, aid: u.artifacts.upsert_many(_rows(pid, 1, source="x")),
    "update_many": lambda u, pid, aid: u.artifacts.update_many([{"id": aid, "source": "x"}]),
    "set_many": lambda u, pid, aid: u.metadata.set_many([{"artifact_id": aid, "data": {"x": 1}}]),
    "delete_many": lambda u, pid, aid: u.artifacts.delete_many([aid]),
    "projects.delete": lambda u, pid, aid: u.projects.delete(pid),
    "touch_many": lambda u, pid, aid: u.projects.touch_many([pid], datetime.now(UTC)),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_read_only_unit_of_work_refuses_bulk_writes(any_uow, write):
    pid, keys = _seed(any_uow, 1)
    aid = keys[("skill", "s0")]
    with pytest.raises(ReadOnlyError), any_uow(read_only=True) as uow:
        write(uow, pid, aid)
    with any_uow(read_only=True) as uow:
        artifact = uow.artifacts.get(aid)
        assert (artifact.source, uow.metadata.get(aid), uow.projects.get(pid).last_fetched) == (None, None, None)


def test_read_only_unit_of_work_reads_after_a_refused_write(any_uow):
    pid, _keys = _seed(any_uow, 2)
    with any_uow(read_only=True) as uow:
        with pytest.raises(ReadOnlyError):
            uow.artifacts.upsert_many(_rows(pid, 1, source="x"))
        assert len(uow.artifacts.list_for_project(pid, "skill")) == 2
        assert [s.artifact_count for s in uow.projects.summaries()] == [2]


# -- timestamps -----------------------------------------------------------------------------


def test_sqlite_stores_timestamps_as_sqlalchemy_does_and_reads_other_forms(sqlite_url):
    from sqlalchemy.orm import sessionmaker

    from skillmeat_cache import UnitOfWork
    from skillmeat_cache.engine import create_engine_for_url

    engine = create_engine_for_url(sqlite_url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    moment = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)
    try:
        with UnitOfWork(factory) as uow:
            p = uow.projects.add(Project(name="p", path="/w/p", last_fetched=moment, created_at=moment))
            uow.artifacts.upsert_many([{**_rows(p.id, 1)[0], "created_at": moment + timedelta(hours=1)}])
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT last_fetched, created_at FROM projects").one()
            assert tuple(stored) == ("2026-03-04 05:06:07.000890", "2026-03-04 05:06:07.000890")
            assert conn.exec_driver_sql("SELECT created_at FROM artifacts").scalar() == "2026-03-04 06:06:07.000890"
        with engine.begin() as conn:  # text written by other tools
            conn.exec_driver_sql("UPDATE projects SET last_fetched = '2026-03-04 07:06:07+02:00'")
            conn.exec_driver_sql("UPDATE projects SET updated_at = '2026-03-04 05:06:07'")
        with UnitOfWork(factory, read_only=True) as uow:
            got = uow.projects.get(p.id)
            assert got.last_fetched == datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
            assert got.updated_at == datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
            assert got.last_fetched.tzinfo is UTC and got.created_at == moment
    finally:
        engine.dispose()


# -- validation fast paths ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        ([{"project_id": "p", "type": "skill", "name": "a", "created_at": datetime(2026, 1, 1)}], "created_at"),
        (
            [
                {"project_id": "p", "type": "skill", "name": "a", "updated_at": datetime(2026, 1, 1)},
                {"project_id": "p", "type": "bogus", "name": "b"},
            ],
            "updated_at",  # the first bad row's error, whatever the later rows hold
        ),
        ([{"project_id": "p", "type": "skill", "name": " "}], "name"),
        ([{"project_id": "p", "type": "skill", "name": "a\x00"}], "name"),
        ([{"project_id": "p", "type": "skill", "name": "a", "source": "\ud800"}], "source"),
        ([{"project_id": "p", "type": "skill", "name": "a", "local_modified": 1}], "local_modified"),
        ([{"project_id": "p", "type": ["skill"], "name": "a"}], "type"),
        ([{"project_id": "p", "type": "skill", "name": "a", "colour": "red"}], "colour"),
        ([{"project_id": None, "type": "skill", "name": "a"}], "project_id"),
    ],
)
def test_artifact_rows_report_the_first_bad_field(rows, field):
    with pytest.raises(ValidationError) as info:
        rows_module.artifact_rows(rows)
    assert info.value.field == field


def test_artifact_rows_keep_the_last_row_of_a_key_in_its_position():
    rows = [
        {"project_id": "p", "type": "skill", "name": "a", "source": "1"},
        {"project_id": "p", "type": "skill", "name": "b"},
        {"project_id": "p", "type": "skill", "name": "a", "source": "2", "is_outdated": True},
    ]
    got = rows_module.artifact_rows(iter(rows))
    assert [(r["name"], r.get("source")) for r in got] == [("b", None), ("a", "2")]
    assert all("is_outdated" not in r for r in got)
    assert rows[2]["is_outdated"] is True  # the caller's rows are not changed


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        ([{"artifact_id": "a", "data": {"x": float("nan")}}], "data"),
        ([{"artifact_id": "a", "data": {"x": object()}}], "data"),
        ([{"artifact_id": "a", "data": ["not", "a", "mapping"]}], "data"),
        ([{"artifact_id": "a", "tags": "py"}], "tags"),
        ([{"artifact_id": "a", "tags": ["ok"]}, {"artifact_id": "b", "aliases": [""]}], "aliases"),
        ([{"artifact_id": "", "tags": []}], "artifact_id"),
        ([{"artifact_id": "a", "description": 3}], "description"),
    ],
)
def test_metadata_params_refuse_what_metadata_rows_refuse(rows, field):
    for prepare in (rows_module.metadata_rows, rows_module.metadata_params):
        with pytest.raises(ValidationError) as info:
            prepare(rows)
        assert info.value.field == field


def test_metadata_params_match_metadata_rows():
    rows = [
        {"artifact_id": "a", "data": {"k": (1, 2), 3: "x"}, "tags": ("t", "u", "t"), "aliases": None},
        {"artifact_id": "b", "description": "d"},
        {"artifact_id": "a", "data": {"k": [1]}, "tags": ["v"], "description": "last wins"},
    ]
    for subset in (rows[:2], rows):  # without and with a repeated artifact
        params = rows_module.metadata_params(subset)
        expected = rows_module.metadata_rows(subset)
        assert [p[0] for p in params] == [r["artifact_id"] for r in expected]
        for p, r in zip(params, expected, strict=True):
            assert (None if p[1] is None else json.loads(p[1])) == r["data"]
            assert (p[2], p[3], json.loads(p[4]), p[5], json.loads(p[6])) == (
                r["description"],
                r["tags"],
                r["tags"],
                r["aliases"],
                r["aliases"],
            )


def test_artifact_entity_validation_still_applies_to_add(any_uow):
    pid, _ = _seed(any_uow, 1)
    with any_uow() as uow, pytest.raises(ValidationError):
        uow.artifacts.add(Artifact(project_id=pid, name="x", type="bogus"))


def test_upsert_many_ids_returns_the_ids_of_the_rows_it_wrote(any_uow):
    with any_uow() as uow:
        pid = uow.projects.add(Project(name="p", path="/w/ids")).id
        first = uow.artifacts.upsert_many_ids(_rows(pid, 3, upstream_version="1.0"))
        stored = uow.artifacts.keys_for_project(pid)
        assert first == {(pid, type_, name, path): id_ for (type_, path, name), id_ in stored.items()}
        rows = _rows(pid, 4, upstream_version="1.0")
        rows[1]["source"] = "changed"
        again = uow.artifacts.upsert_many_ids(rows)  # s0, s2 identical: not written, not returned
        assert sorted(key[2] for key in again) == ["s1", "s3"]
        s1 = ".claude/skills/s1"
        assert again[(pid, "skill", "s1", s1)] == stored[("skill", s1, "s1")]  # an updated row keeps its id
        assert uow.artifacts.upsert_many_ids([]) == {}


def test_projects_add_many_inserts_them_with_every_column(any_uow):
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with any_uow() as uow:
        ids = uow.projects.add_many(
            [
                Project(name="a", path="/w/many-a", description="first", last_fetched=when, fingerprint="f1",
                        warnings=[{"path": "/w/many-a/x", "message": "m"}]),
                Project(name="b", path="/w/many-b"),
            ]
        )  # fmt: skip
        assert len(set(ids)) == 2 and uow.projects.add_many([]) == []
    with any_uow(read_only=True) as uow:
        a, b = uow.projects.get(ids[0]), uow.projects.get(ids[1])
        assert (a.name, a.path, a.description, a.last_fetched, a.fingerprint, a.status) == (
            "a", "/w/many-a", "first", when, "f1", "active"
        )  # fmt: skip
        assert a.warnings == [{"path": "/w/many-a/x", "message": "m"}] and a.created_at is not None
        assert (b.description, b.last_fetched, b.warnings, b.status) == (None, None, None, "active")


def test_projects_add_many_with_a_taken_path_adds_none(uow_factory):
    with uow_factory() as uow:
        uow.projects.add(Project(name="taken", path="/w/taken"))
    with uow_factory() as uow:
        with pytest.raises(DuplicateError):
            uow.projects.add_many([Project(name="new", path="/w/new"), Project(name="again", path="/w/taken")])
        assert uow.projects.get_by_path("/w/new") is None  # all or none, and the unit of work goes on
        uow.projects.add_many([Project(name="new", path="/w/new")])
    with uow_factory(read_only=True) as uow:
        assert uow.projects.count() == 2

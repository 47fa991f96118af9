"""The repositories: contract tests (``any_uow``: SQLite file, PostgreSQL and the fake) and
the SQLAlchemy repositories against real databases."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import TABLES, units_of_work
from sqlalchemy import text

from skillmeat_cache import (
    Artifact,
    DuplicateError,
    ForeignKeyViolationError,
    MarketplaceEntry,
    NotFoundError,
    Project,
    ReadOnlyError,
    ValidationError,
)


def _project(uow, name="proj", path=None, **kw) -> Project:
    return uow.projects.add(Project(name=name, path=path or f"/work/{name}", **kw))


def _count(uow, table: str) -> int:
    return uow.session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


# -- projects ---------------------------------------------------------------------------


def test_project_add_get_and_lookup_by_path(any_uow):
    with any_uow() as uow:
        p = _project(uow, "alpha", description="first")
    with any_uow() as uow:
        got = uow.projects.get(p.id)
        assert (got.name, got.path, got.description, got.status) == ("alpha", "/work/alpha", "first", "active")
        assert uow.projects.get_by_path("/work/alpha").id == p.id
        assert uow.projects.get_by_path("/work/none") is None
        assert uow.projects.get("missing") is None


def test_project_list_has_no_hidden_limit_and_a_stable_order(any_uow):
    with any_uow() as uow:
        for i in reversed(range(150)):
            _project(uow, f"p{i:03d}")
        _project(uow, "p000", path="/other/p000")  # same name: path breaks the tie
    with any_uow(read_only=True) as uow:
        listed = uow.projects.list()
        assert len(listed) == 151
        assert [(p.name, p.path) for p in listed] == sorted((p.name, p.path) for p in listed)
        assert [p.path for p in listed[:2]] == ["/other/p000", "/work/p000"]
        page = uow.projects.list(limit=10, offset=5)
        assert [p.name for p in page] == [p.name for p in listed[5:15]]
        assert uow.projects.count() == 151


def test_project_list_and_count_by_status(any_uow):
    with any_uow() as uow:
        _project(uow, "a")
        _project(uow, "b", status="stale")
        _project(uow, "c", status="error", error_message="unreadable")
    with any_uow() as uow:
        assert [p.name for p in uow.projects.list(status="stale")] == ["b"]
        assert uow.projects.count(status="error") == 1
        with pytest.raises(ValidationError, match="status"):
            uow.projects.list(status="gone")
        for call, field in [
            (lambda: uow.projects.count(status="gone"), "status"),
            (lambda: uow.projects.list(limit=-1), "limit"),
            (lambda: uow.projects.list(offset=-1), "offset"),
        ]:
            with pytest.raises(ValidationError) as info:
                call()
            assert info.value.field == field


def test_stale_projects(any_uow):
    now = datetime(2026, 1, 10, tzinfo=UTC)
    with any_uow() as uow:
        _project(uow, "never")
        _project(uow, "old", last_fetched=now - timedelta(hours=5))
        _project(uow, "fresh", last_fetched=now - timedelta(minutes=5))
    with any_uow() as uow:
        assert [p.name for p in uow.projects.stale(timedelta(hours=1), now=now)] == ["never", "old"]
        assert [p.name for p in uow.projects.stale(timedelta(hours=6), now=now)] == ["never"]
        with pytest.raises(ValidationError) as info:
            uow.projects.stale(timedelta(hours=1), now=datetime(2026, 1, 1))  # naive
        assert info.value.field == "now"


def test_project_delete_cascades_to_artifacts_metadata_and_tags(uow_factory):
    with uow_factory() as uow:
        keep = _project(uow, "keep")
        gone = _project(uow, "gone")
        for project in (keep, gone):
            a = uow.artifacts.add(Artifact(project_id=project.id, name="pdf", type="skill"))
            uow.metadata.set(a.id, data={"name": "pdf"}, tags=["docs"])
    with uow_factory() as uow:
        uow.projects.delete(gone.id)
    with uow_factory() as uow:
        assert uow.projects.get(gone.id) is None
        assert _count(uow, "artifacts") == 1
        assert _count(uow, "artifact_metadata") == 1
        assert _count(uow, "artifact_tags") == 1
        assert [a.project_id for a in uow.metadata.artifacts_with_tag("docs")] == [keep.id]
        with pytest.raises(NotFoundError):
            uow.projects.delete(gone.id)


def test_project_with_artifacts_added_through_the_relationship(any_uow):
    with any_uow() as uow:
        p = Project(name="rel", path="/work/rel")
        p.artifacts.append(Artifact(project=p, name="b", type="agent"))
        p.artifacts.append(Artifact(project=p, name="a", type="agent"))
        uow.projects.add(p)
    with any_uow() as uow:
        assert [a.name for a in uow.projects.get(p.id).artifacts] == ["a", "b"]
        assert uow.artifacts.get_by_key(p.id, "agent", "a").project.name == "rel"


# -- artifacts --------------------------------------------------------------------------


def test_artifact_lists_filters_and_order(any_uow):
    with any_uow() as uow:
        p1, p2 = _project(uow, "one"), _project(uow, "two")
        for project in (p2, p1):
            for type_, name in [("skill", "zeta"), ("agent", "beta"), ("skill", "alpha")]:
                uow.artifacts.add(Artifact(project_id=project.id, name=name, type=type_))
    with any_uow() as uow:
        assert [(a.type, a.name) for a in uow.artifacts.list_for_project(p1.id)] == [
            ("agent", "beta"),
            ("skill", "alpha"),
            ("skill", "zeta"),
        ]
        assert [a.name for a in uow.artifacts.list_for_project(p1.id, type="skill")] == ["alpha", "zeta"]
        by_type = uow.artifacts.list_by_type("skill")
        assert [(a.project_id, a.name) for a in by_type] == sorted((a.project_id, a.name) for a in by_type)
        assert len(by_type) == 4
        assert uow.artifacts.count() == 6
        assert uow.artifacts.count(project_id=p2.id) == 3


def test_artifact_search_is_case_insensitive_on_name_and_description(any_uow):
    with any_uow() as uow:
        p = _project(uow)
        pdf = uow.artifacts.add(Artifact(project_id=p.id, name="PDF-Tools", type="skill"))
        other = uow.artifacts.add(Artifact(project_id=p.id, name="reviewer", type="agent"))
        odd = uow.artifacts.add(Artifact(project_id=p.id, name="100%_sure", type="command"))
        uow.metadata.set(other.id, data=None, description="Reviews PDF output")
    with any_uow() as uow:
        assert {a.id for a in uow.artifacts.search("pdf")} == {pdf.id, other.id}
        assert [a.id for a in uow.artifacts.search("pdf", type="skill")] == [pdf.id]
        assert [a.id for a in uow.artifacts.search("%_")] == [odd.id]  # wildcards are literal
        assert len(uow.artifacts.search("")) == 3
        assert len(uow.artifacts.search("", limit=2)) == 2
        assert len(uow.artifacts.search("", project_id="other")) == 0


def test_duplicate_artifact_key_and_missing_project(any_uow):
    with any_uow() as uow:
        p = _project(uow)
        uow.artifacts.add(Artifact(project_id=p.id, name="x", type="skill"))
    with pytest.raises(DuplicateError) as info, any_uow() as uow:
        uow.artifacts.add(Artifact(project_id=p.id, name="x", type="skill"))
    assert info.value.table == "artifacts"
    with pytest.raises(ForeignKeyViolationError), any_uow() as uow:
        uow.artifacts.add(Artifact(project_id="no-such-project", name="x", type="skill"))
    with any_uow() as uow:
        assert uow.artifacts.count() == 1  # nothing stored before was lost


def test_artifact_delete(uow_factory):
    with uow_factory() as uow:
        p = _project(uow)
        a = uow.artifacts.add(Artifact(project_id=p.id, name="x", type="skill"))
        uow.metadata.set(a.id, data={"k": 1}, tags=["t"])
    with uow_factory() as uow:
        uow.artifacts.delete(a.id)
        with pytest.raises(NotFoundError):
            uow.artifacts.delete(a.id)
    with uow_factory() as uow:
        assert uow.artifacts.get(a.id) is None
        assert uow.metadata.get(a.id) is None
        assert _count(uow, "artifact_tags") == 0


def test_outdated_is_derived_and_stored(any_uow):
    with any_uow() as uow:
        p = _project(uow)
        behind = uow.artifacts.add(
            Artifact(project_id=p.id, name="a", type="skill", deployed_version="1.2", upstream_version="1.10")
        )
        uow.artifacts.add(Artifact(project_id=p.id, name="b", type="skill", deployed_version="2.0"))
    with any_uow() as uow:
        assert [a.id for a in uow.artifacts.outdated()] == [behind.id]
        assert [a.id for a in uow.artifacts.outdated(project_id="other")] == []
        uow.artifacts.get(behind.id).deployed_version = "1.10"
    with any_uow() as uow:
        assert uow.artifacts.outdated() == []


def _rows(project_id: str, n: int, **extra) -> list[dict]:
    return [{"project_id": project_id, "type": "skill", "name": f"s{i}", **extra} for i in range(n)]


def test_upsert_many_inserts_updates_and_skips_identical_rows(any_uow):
    with any_uow() as uow:
        p = _project(uow)
        assert uow.artifacts.upsert_many(_rows(p.id, 5, deployed_version="1.0")) == 5
    with any_uow() as uow:
        before = {a.name: (a.id, a.created_at, a.updated_at) for a in uow.artifacts.list_for_project(p.id)}
    time.sleep(0.01)
    with any_uow() as uow:
        loaded = uow.artifacts.get_by_key(p.id, "skill", "s2")
        assert uow.artifacts.upsert_many(_rows(p.id, 5, deployed_version="1.0")) == 0
        changed = _rows(p.id, 5, deployed_version="1.0")
        changed[2]["deployed_version"] = "1.1"
        assert uow.artifacts.upsert_many(changed) == 1
        assert loaded.deployed_version == "1.1"  # a loaded entity is refreshed
    with any_uow() as uow:
        after = {
            a.name: (a.id, a.created_at, a.updated_at, a.deployed_version) for a in uow.artifacts.list_for_project(p.id)
        }
    for name, (id_, created, updated) in before.items():
        assert after[name][:2] == (id_, created)
        if name == "s2":
            assert after[name][2] > updated and after[name][3] == "1.1"
        else:
            assert after[name][2] == updated


def test_upsert_many_last_row_wins_and_keeps_what_a_row_does_not_carry(any_uow):
    with any_uow() as uow:
        p = _project(uow)
        uow.artifacts.upsert_many(
            [{"project_id": p.id, "type": "skill", "name": "x", "deployed_version": "1.0", "upstream_version": "1.0"}]
        )
    with any_uow() as uow:
        n = uow.artifacts.upsert_many(
            [
                {"project_id": p.id, "type": "skill", "name": "x", "deployed_version": "0.1"},
                {"project_id": p.id, "type": "skill", "name": "x", "deployed_version": "0.9", "local_modified": True},
            ]
        )
        assert n == 1
        a = uow.artifacts.get_by_key(p.id, "skill", "x")
        # upstream kept from the stored row, is_outdated re-derived from it
        assert (a.deployed_version, a.upstream_version, a.is_outdated, a.local_modified) == ("0.9", "1.0", True, True)


def test_upsert_many_refuses_bad_rows_and_keeps_stored_ones(any_uow):
    with any_uow() as uow:
        p = _project(uow)
        uow.artifacts.upsert_many(_rows(p.id, 2))
    for bad, field in [
        ({"project_id": p.id, "type": "widget", "name": "x"}, "type"),
        ({"project_id": p.id, "type": "skill", "name": "  "}, "name"),
        ({"project_id": p.id, "type": "skill"}, "name"),
        ({"project_id": p.id, "type": "skill", "name": "x", "colour": "red"}, "colour"),
        ({"project_id": p.id, "type": "skill", "name": "x", "created_at": datetime(2026, 1, 1)}, "created_at"),
    ]:
        with pytest.raises(ValidationError) as info, any_uow() as uow:
            uow.artifacts.upsert_many([*_rows(p.id, 1, source="changed"), bad])
        assert info.value.field == field
    with pytest.raises(ForeignKeyViolationError), any_uow() as uow:
        uow.artifacts.upsert_many(_rows("ghost", 1))
    with any_uow() as uow:
        taken = {"project_id": p.id, "type": "skill", "name": "x", "id": uow.artifacts.list_for_project(p.id)[0].id}
    with pytest.raises(DuplicateError), any_uow() as uow:
        uow.artifacts.upsert_many([*_rows(p.id, 1, source="changed"), taken])
    with any_uow() as uow:
        assert [a.source for a in uow.artifacts.list_for_project(p.id)] == [None, None]


def test_update_many_rederives_outdated_moves_updated_at_and_skips_unknown_ids(any_uow):
    with any_uow() as uow:
        p = _project(uow)
        uow.artifacts.upsert_many(_rows(p.id, 3, deployed_version="1.0"))
        arts = uow.artifacts.list_for_project(p.id)
    time.sleep(0.01)
    with any_uow() as uow:
        loaded = uow.artifacts.get(arts[0].id)  # an entity in the identity map is refreshed
        n = uow.artifacts.update_many(
            [
                {"id": arts[0].id, "upstream_version": "2.0"},
                {"id": arts[1].id, "upstream_version": "0.5"},
                {"id": arts[2].id, "deployed_version": "1.0"},  # no change
                {"id": "unknown", "upstream_version": "9"},
            ]
        )
        assert n == 2
        assert loaded.is_outdated is True and loaded.upstream_version == "2.0"
        with pytest.raises(ValidationError):
            uow.artifacts.update_many([{"upstream_version": "1"}])  # no id
    with any_uow() as uow:
        got = {a.id: a for a in uow.artifacts.list_for_project(p.id)}
        assert [got[a.id].is_outdated for a in arts] == [True, False, False]
        assert got[arts[0].id].updated_at > arts[0].updated_at
        assert got[arts[2].id].updated_at == arts[2].updated_at
        got[arts[0].id].deployed_version = "2.0"  # an entity change re-derives it too
        assert uow.artifacts.outdated(p.id) == []


# -- marketplace ------------------------------------------------------------------------


def test_marketplace_add_list_search_upsert_and_purge(any_uow):
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with any_uow() as uow:
        uow.marketplace.add(MarketplaceEntry(id="m1", name="pdf-tools", type="skill", description="PDF kit"))
        uow.marketplace.add(MarketplaceEntry(id="m2", name="linter", type="agent", cached_at=now - timedelta(days=40)))
        with pytest.raises(DuplicateError):
            uow.marketplace.add(MarketplaceEntry(id="m1", name="again", type="skill"))
    with any_uow() as uow:
        assert [e.id for e in uow.marketplace.list()] == ["m2", "m1"]  # by type, then name
        assert [e.id for e in uow.marketplace.list(type="skill")] == ["m1"]
        assert [e.id for e in uow.marketplace.search("pdf kit")] == ["m1"]
        assert (
            uow.marketplace.upsert_many(
                [
                    {"id": "m1", "name": "pdf-tools", "type": "skill", "version": "2.0", "data": {"stars": 5}},
                    {"id": "m3", "name": "hooker", "type": "hook", "cached_at": now},
                ]
            )
            == 2
        )
        assert uow.marketplace.get("m1").version == "2.0"
        assert uow.marketplace.get("m1").data == {"stars": 5}
        assert uow.marketplace.get("m1").description == "PDF kit"  # not carried: kept
        with pytest.raises(ValidationError):
            uow.marketplace.upsert_many([{"id": "m4", "name": "n", "type": "widget"}])
        assert uow.marketplace.purge_older_than(timedelta(days=30), now=now) == 1
    with any_uow() as uow:
        assert sorted(e.id for e in uow.marketplace.list()) == ["m1", "m3"]


# -- metadata ---------------------------------------------------------------------------


def test_metadata_set_replaces_and_round_trips_json(any_uow):
    with any_uow() as uow:
        p = _project(uow)
        a = uow.artifacts.add(Artifact(project_id=p.id, name="x", type="skill"))
        doc = {"name": "x", "version": "1.10", "nested": {"list": [1, 2.5, None, "ü"]}, "flag": True}
        uow.metadata.set(a.id, data=doc, description="d1", tags=["py", "cli"], aliases=["xx"])
    with any_uow() as uow:
        meta = uow.metadata.get(a.id)
        assert (meta.data, meta.description, meta.tags, meta.aliases) == (doc, "d1", ["py", "cli"], ["xx"])
        uow.metadata.set(a.id, data={"v": 2}, tags=["python"])
    with any_uow() as uow:
        meta = uow.metadata.get(a.id)
        assert (meta.data, meta.description, meta.tags, meta.aliases) == ({"v": 2}, None, ["python"], [])
        assert uow.metadata.get("nope") is None
    with pytest.raises(ForeignKeyViolationError), any_uow() as uow:
        uow.metadata.set("no-such-artifact", data={})
    with any_uow() as uow:
        meta = uow.metadata.get(a.id)
        assert uow.metadata.set(a.id, data={"v": (1, 2)}, tags=["x", "x"]) is meta
        assert (meta.data, meta.tags) == ({"v": [1, 2]}, ["x"])
        with pytest.raises(ValidationError):
            uow.metadata.set(a.id, data=None, tags=["ok", " "])
        assert meta.tags == ["x"]


def test_tag_lookup_is_exact(any_uow):
    with any_uow() as uow:
        p = _project(uow)
        short = uow.artifacts.add(Artifact(project_id=p.id, name="a", type="skill"))
        long = uow.artifacts.add(Artifact(project_id=p.id, name="b", type="skill"))
        uow.metadata.set(short.id, data=None, tags=["py"])
        uow.metadata.set(long.id, data=None, tags=["python", "Py"])
    with any_uow() as uow:
        assert [a.id for a in uow.metadata.artifacts_with_tag("py")] == [short.id]
        assert [a.id for a in uow.metadata.artifacts_with_tag("python")] == [long.id]
        assert [a.id for a in uow.metadata.artifacts_with_tag("Py")] == [long.id]
        assert uow.metadata.artifacts_with_tag("pyth") == []


def test_key_value_store(any_uow):
    with any_uow() as uow:
        assert uow.metadata.get_value("last_scan") is None
        uow.metadata.set_value("last_scan", "2026-01-01")
        uow.metadata.set_value("last_scan", "2026-02-02")
    with any_uow() as uow:
        assert uow.metadata.get_value("last_scan") == "2026-02-02"
        assert uow.metadata.delete_value("last_scan") is True
        assert uow.metadata.delete_value("last_scan") is False
    with any_uow() as uow:
        assert uow.metadata.get_value("last_scan") is None


# -- contract points found by tests/integration/test_fake_equals_real.py (fake, SQLite, PostgreSQL) ---


@pytest.mark.parametrize(("bad", "field"), [(7, "id"), ("", "id"), ("a\x00b", "id"), ("a\ud800", "id"), (None, "id")])
def test_lookup_keys_that_could_never_be_stored_are_validation_errors(any_uow, bad, field):
    # Was: PostgreSQL DatabaseError for a NUL, SQLite a raw UnicodeEncodeError for a surrogate.
    with any_uow() as uow:
        for call in (
            lambda: uow.artifacts.get(bad),
            lambda: uow.artifacts.delete(bad),
            lambda: uow.artifacts.delete_many(["ok", bad]),
            lambda: uow.projects.delete(bad),
            lambda: uow.projects.touch_many([bad], datetime(2026, 1, 1, tzinfo=UTC)),
            lambda: uow.marketplace.get(bad),
        ):
            with pytest.raises(ValidationError) as caught:
                call()
            assert caught.value.field == field
        for call in (lambda: uow.metadata.get_value(bad), lambda: uow.metadata.delete_value(bad)):
            with pytest.raises(ValidationError) as caught:
                call()
            assert caught.value.field == "key"
        too_long = "é" * 128  # over the 255-byte limit: could not be stored, so simply not found
        assert (uow.artifacts.get(too_long), uow.metadata.get_value(too_long), uow.metadata.get_many([too_long])) == (
            None,
            None,
            {},
        )
        with pytest.raises(NotFoundError):
            uow.projects.delete(too_long)


@pytest.mark.parametrize("bad", ["widget", 1, ""])
def test_type_filters_and_paging_arguments_are_checked(any_uow, bad):
    # Was: [] for an unknown type, a PostgreSQL error for a number; TypeError for limit="2".
    with any_uow(read_only=True) as uow:
        for call in (
            lambda: uow.artifacts.list_by_type(bad),
            lambda: uow.artifacts.list_for_project("p", bad),
            lambda: uow.artifacts.search("", type=bad),
            lambda: uow.marketplace.list(bad),
        ):
            with pytest.raises(ValidationError) as caught:
                call()
            assert caught.value.field == "type"
        for kwargs, field in (({"limit": "2"}, "limit"), ({"offset": 1.5}, "offset"), ({"limit": True}, "limit")):
            with pytest.raises(ValidationError) as caught:
                uow.projects.list(**kwargs)
            assert caught.value.field == field


def test_metadata_set_takes_lists_of_tags_and_refuses_a_single_text(any_uow):
    # Was: tags="py" stored as ["p", "y"]; data="text" a raw ValueError.
    with any_uow() as uow:
        project = _project(uow)
        artifact = uow.artifacts.add(Artifact(project_id=project.id, name="a", type="skill"))
        for kwargs, field in (({"tags": "py"}, "tags"), ({"aliases": "x"}, "aliases"), ({"data": "text"}, "data")):
            with pytest.raises(ValidationError) as caught:
                uow.metadata.set(artifact.id, **{"data": None, **kwargs})
            assert caught.value.field == field
        meta = uow.metadata.set(artifact.id, data=None, tags=None, aliases=("b", "a"))
        assert (meta.tags, meta.aliases) == ([], ["b", "a"])


def test_read_only_unit_checks_arguments_then_refuses_even_writes_that_change_nothing(any_uow):
    # Was: the SQL side let a no-op write through (same value, missing key, no rows) and the
    # fake refused a read-only write before looking at its (invalid) arguments.
    with any_uow() as uow:
        project = _project(uow)
        artifact = uow.artifacts.add(Artifact(project_id=project.id, name="a", type="skill"))
        uow.metadata.set(artifact.id, data=None, tags=["t"])
        uow.metadata.set_value("k", "v")
    with any_uow(read_only=True) as uow:
        for call in (
            lambda: uow.metadata.set_value("k", "v"),
            lambda: uow.metadata.delete_value("missing"),
            lambda: uow.metadata.set(artifact.id, data=None, tags=["t"]),
            lambda: uow.artifacts.upsert_many([]),
            lambda: uow.artifacts.delete("missing"),
            lambda: uow.projects.mark_stale([]),
        ):
            with pytest.raises(ReadOnlyError):
                call()
        with pytest.raises(ValidationError):
            uow.artifacts.upsert_many([{"project_id": project.id, "type": "widget", "name": "x"}])
        with pytest.raises(ValidationError):
            uow.metadata.set_value("k", None)


def test_search_ignores_ascii_case_only_and_takes_wildcards_literally(any_uow):
    # Was: the fake lowered every letter (É = é, the Kelvin sign = k), PostgreSQL's lower()
    # followed the database's collation, SQLite lowered ASCII only.
    names = ["École", "école", "Kelvin", "\u212aelvin", "STRASSE", "straße", "50%_off", "50 off"]
    with any_uow() as uow:
        project = _project(uow)
        for name in names:
            uow.artifacts.add(Artifact(project_id=project.id, name=name, type="skill"))
        uow.marketplace.add(MarketplaceEntry(id="m", name="Éclair", type="skill", description="ÉTÉ"))
    with any_uow(read_only=True) as uow:

        def found(text):
            return sorted(a.name for a in uow.artifacts.search(text))

        assert found("éCOLE") == ["école"]
        assert found("ÉCOLE") == ["École"]
        assert found("k") == ["Kelvin"]
        assert found("KELVIN") == ["Kelvin"]
        assert found("strasse") == ["STRASSE"]
        assert found("%_") == ["50%_off"]
        assert found("_") == ["50%_off"]
        assert [e.id for e in uow.marketplace.search("été")] == []
        assert [e.id for e in uow.marketplace.search("ÉcLAIR")] == ["m"]


@pytest.fixture(params=["sqlite", pytest.param("postgres-icu", marks=pytest.mark.postgres), "fake"])
def collated_uow(request, tmp_path, sqlite_template):
    """Unit-of-work factories like ``any_uow``, PostgreSQL on a database whose collation
    is not byte order (ICU en-US sorts "a" < "B" and sets accents aside)."""

    from skillmeat_cache.engine import create_engine_for_url
    from skillmeat_cache.testing import FakeStore

    if request.param == "fake":
        store = FakeStore()
        return lambda read_only=False: store.unit_of_work(read_only=read_only)
    if request.param == "sqlite":
        url = "sqlite:///" + str(tmp_path / "cache.db")
        shutil.copyfile(sqlite_template, tmp_path / "cache.db")
    else:
        url = request.getfixturevalue("collated_pg_url")
    engine = create_engine_for_url(url)
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
    request.addfinalizer(engine.dispose)
    return units_of_work(engine)


def test_orders_are_code_point_orders_whatever_the_database_collation(collated_uow):
    # Was: PostgreSQL ordered by the database collation (on an en_US / ICU database
    # "a" < "B" < "b" and "É" next to "E"), SQLite and the fake by code point.
    names = ["b", "B", "a", "É", "E", "e", "z", "_", "日本", "ä"]
    expected = sorted(names)
    assert expected == ["B", "E", "_", "a", "b", "e", "z", "É", "ä", "日本"]
    with collated_uow() as uow:
        for i, name in enumerate(names):
            project = uow.projects.add(Project(id=name.upper() + str(i), name=name, path=f"/w/{i}"))
            uow.artifacts.add(Artifact(id=f"a{i}", project_id=project.id, name=name, type="skill"))
            uow.marketplace.add(MarketplaceEntry(id=name, name="same", type="skill"))
        for i, name in enumerate(names):
            uow.artifacts.add(Artifact(id=f"x{i}", project_id="B1", name=name, type="agent"))
    with collated_uow(read_only=True) as uow:
        assert [p.name for p in uow.projects.list()] == expected
        assert [s.project.name for s in uow.projects.summaries()] == expected
        assert [a.name for a in uow.artifacts.list_for_project("B1", "agent")] == expected
        assert [a.project_id for a in uow.artifacts.list_by_type("skill")] == sorted(
            n.upper() + str(i) for i, n in enumerate(names)
        )
        assert [e.id for e in uow.marketplace.list()] == expected
        assert [a.name for a in uow.projects.get("B1").artifacts if a.type == "agent"] == expected


def test_a_failed_flush_of_an_entity_change_rolls_back_and_the_unit_of_work_goes_on(any_uow):
    # Was: on SQLite and PostgreSQL every later call raised SQLAlchemy's PendingRollbackError
    # (not one of our errors) while the fake kept the work before the failed change.
    with any_uow() as uow:
        _project(uow, "a")
        _project(uow, "b")
    with any_uow() as uow:
        _project(uow, "c")
        moved = uow.projects.get_by_path("/work/b")
        moved.path = "/work/a"
        with pytest.raises(DuplicateError):
            uow.projects.count()
        assert uow.projects.count() == 2  # rolled back to the last commit: "c" is gone too
        assert uow.projects.get_by_path("/work/b").path == "/work/b"
        moved.path = "/work/z"
    with any_uow(read_only=True) as uow:
        assert sorted(p.path for p in uow.projects.list()) == ["/work/a", "/work/z"]


def test_adding_an_entity_with_the_id_of_one_added_before_is_a_duplicate(any_uow):
    # Was: SQLAlchemy warned about an identity conflict with the instance added earlier in
    # the session (an error under our warning filter) before the INSERT; the fake raised
    # DuplicateError.
    with any_uow() as uow:
        uow.projects.add(
            Project(id="p", name="a", path="/work/a", artifacts=[Artifact(project_id="p", name="x", type="skill")])
        )
        again = Project(id="p", name="b", path="/work/b", artifacts=[Artifact(project_id="p", name="y", type="skill")])
        with pytest.raises(DuplicateError):
            uow.projects.add(again)
        assert [(p.path, len(p.artifacts)) for p in uow.projects.list()] == [("/work/a", 1)]


def test_keys_over_the_length_limit_find_nothing_but_update_many_ids_are_values(any_uow):
    """Lookups by a key too long to be stored simply find nothing; an update_many change
    is checked as a value to store, id included."""
    long_tag, long_id = "t" * 256, "i" * 256
    with any_uow() as uow:
        assert uow.metadata.artifacts_with_tag(long_tag) == []
        assert uow.artifacts.get(long_id) is None
        assert uow.artifacts.delete_many([long_id]) == 0
        with pytest.raises(ValidationError) as info:
            uow.artifacts.update_many([{"id": long_id, "upstream_version": "2"}])
        assert info.value.field == "id"

"""Model construction, validation and derived fields (no database needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from skillmeat_cache import (
    Artifact,
    ArtifactMetadata,
    CacheMetadata,
    MarketplaceEntry,
    Project,
    ValidationError,
    derive_outdated,
)


@pytest.mark.parametrize(
    ("deployed", "upstream", "outdated"),
    [
        ("1.0", "1.1", True),
        ("1.2", "1.10", True),  # version ordering, not text ordering
        ("1.10", "1.2", False),
        ("1.0", "1.0.0", False),  # equal versions
        ("2.0", "1.9", False),
        ("1.0", "2.0rc1", True),
        (None, "1.0", False),
        ("1.0", None, False),
        ("main", "main", False),  # unparseable: outdated means "differ"
        ("main", "dev", True),
        ("1.0", "latest", True),
    ],
)
def test_derive_outdated(deployed, upstream, outdated):
    assert derive_outdated(deployed, upstream) is outdated


def test_is_outdated_follows_version_changes_on_the_entity():
    a = Artifact(project_id="p", name="x", type="skill", deployed_version="1.0", upstream_version="1.1")
    assert a.is_outdated is True
    a.deployed_version = "1.1"
    assert a.is_outdated is False
    a.upstream_version = "2.0"
    assert a.is_outdated is True
    a.upstream_version = None
    assert a.is_outdated is False
    assert Artifact(project_id="p", name="y", type="agent", is_outdated=True).is_outdated is False


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: Artifact(project_id="p", name="x", type="widget"), "type"),
        (lambda: Artifact(project_id="p", name="x", type="mcp_server"), "type"),
        (lambda: Artifact(project_id="p", name="", type="skill"), "name"),
        (lambda: Artifact(project_id="p", name="   ", type="skill"), "name"),
        (lambda: Artifact(project_id="p", type="skill"), "name"),
        (lambda: Artifact(name="x", type="skill"), "project_id"),
        (lambda: Artifact(project_id="p", name="a\x00b", type="skill"), "name"),
        (lambda: Artifact(project_id="p", name="\ud800", type="skill"), "name"),
        (lambda: Project(name="p", path="relative/path"), "path"),
        (lambda: Project(name="p"), "path"),
        (lambda: Project(name="", path="/abs"), "name"),
        (lambda: Project(name="p", path="/abs", status="gone"), "status"),
        (lambda: Project(name="p", path="/abs", last_fetched=datetime(2026, 1, 1)), "last_fetched"),
        (lambda: Project(name="p", path="/abs", created_at="2026-01-01"), "created_at"),
        (lambda: MarketplaceEntry(name="m", type="plugin"), "type"),
        (lambda: ArtifactMetadata(artifact_id="a", tags="py,cli"), "tags"),
        (lambda: ArtifactMetadata(artifact_id="a", aliases=["ok", ""]), "aliases"),
        (lambda: CacheMetadata(key="k"), "value"),
    ],
)
def test_construction_validates_and_names_the_field(factory, field):
    with pytest.raises(ValidationError) as info:
        factory()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="colour"):
        Project(name="p", path="/abs", colour="red")


def test_defaults_ids_and_timestamps():
    p = Project(name="p", path="/abs")
    q = Project(name="q", path="/abs2")
    assert p.id and q.id and p.id != q.id and isinstance(p.id, str)
    assert p.status == "active" and p.last_fetched is None
    assert p.created_at.tzinfo is not None and p.created_at.utcoffset() == timedelta(0)
    assert Project(id="given", name="p", path="/abs").id == "given"
    a = Artifact(project=p, name="x", type="hook")
    assert a.project_id == p.id and a.local_modified is False and a.is_outdated is False


def test_aware_timestamps_are_normalised_to_utc():
    moment = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=5)))
    p = Project(name="p", path="/abs", last_fetched=moment)
    assert p.last_fetched.tzinfo == UTC and p.last_fetched.hour == 7


def test_is_stale():
    now = datetime(2026, 1, 2, tzinfo=UTC)
    ttl = timedelta(hours=1)
    assert Project(name="p", path="/a").is_stale(ttl, now=now) is True
    assert Project(name="p", path="/a", last_fetched=now - timedelta(minutes=59)).is_stale(ttl, now=now) is False
    assert Project(name="p", path="/a", last_fetched=now - timedelta(minutes=61)).is_stale(ttl, now=now) is True
    recent = Project(name="p", path="/a", last_fetched=datetime.now(UTC))
    assert recent.is_stale(ttl) is False
    with pytest.raises(ValidationError):
        recent.is_stale(ttl, now=datetime(2026, 1, 1))


def test_to_dict_is_json_serialisable_with_iso_timestamps():
    p = Project(name="p", path="/abs", last_fetched=datetime(2026, 1, 1, tzinfo=UTC))
    a = Artifact(project=p, name="x", type="skill", deployed_version="1.10")
    m = ArtifactMetadata(artifact=a, data={"version": "1.10"}, tags=("b", "a", "b"), aliases=["x2"])
    for entity in (p, a, m, MarketplaceEntry(name="m", type="agent"), CacheMetadata(key="k", value="v")):
        json.dumps(entity.to_dict())
    assert p.to_dict()["last_fetched"] == "2026-01-01T00:00:00+00:00"
    assert a.to_dict()["deployed_version"] == "1.10"
    assert m.to_dict()["tags"] == ["b", "a"]  # as written, duplicates dropped
    assert set(a.to_dict()) >= {"id", "project_id", "name", "type", "is_outdated", "updated_at"}


@pytest.mark.parametrize(
    ("model", "given"),
    [
        (Project, {"name": "p", "path": "/abs"}),
        (Artifact, {"project_id": "p", "name": "x", "type": "skill"}),  # path: from type and name
        (ArtifactMetadata, {"artifact_id": "a"}),
        (MarketplaceEntry, {"name": "m", "type": "agent"}),
        (CacheMetadata, {"key": "k", "value": ""}),
    ],
)
def test_the_constructor_fills_or_requires_every_not_null_column(model, given):
    """Column defaults fill the NOT NULL columns not given; each one given is required."""
    entity = model(**given)
    for key, column in model.__mapper__.columns.items():
        if not column.nullable:
            assert getattr(entity, key) is not None, key
    for key in given:
        with pytest.raises(ValidationError) as info:
            model(**{**given, key: None})
        assert info.value.field == key


def test_an_artifact_content_hash_may_be_set_to_none_as_the_column_allows():
    artifact = Artifact(project_id="p", type="skill", name="n", content_hash="abc")
    artifact.content_hash = None
    assert artifact.content_hash is None
    assert Artifact(project_id="p", type="skill", name="n", content_hash=None).content_hash is None

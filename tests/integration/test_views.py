"""Read models (skillmeat_cache.views) return what the repository methods they mirror
return, on both databases; and the CLI's read path imports nothing heavy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from conftest import factory_for
from sqlalchemy import text

from skillmeat_cache import Artifact, Base, NotFoundError, Project, SchemaVersionError, ValidationError
from skillmeat_cache.views import ARTIFACT_COLUMNS, PROJECT_COLUMNS, Reader, artifact_listing, project_summaries


def _seed(uow_factory) -> None:
    with uow_factory() as uow:
        a = uow.projects.add(Project(name="a", path="/w/a", description="first", fingerprint="f1"))
        b = uow.projects.add(
            Project(name="b", path="/w/b", last_fetched=datetime(2026, 1, 1, 3, 4, 5, 678901, tzinfo=UTC))
        )
        uow.projects.add(Project(name="c", path="/w/c", status="error", error_message="boom"))
        uow.projects.add(Project(name="a", path="/w/a2"))  # same name: ordered by path
        uow.artifacts.upsert_many(
            [
                {"project_id": a.id, "type": "skill", "name": "s1", "deployed_version": "1", "upstream_version": "2"},
                {"project_id": a.id, "type": "skill", "name": "s2"},
                {"project_id": b.id, "type": "hook", "name": "h1", "deployed_version": "1", "upstream_version": "3"},
            ]
        )
        uow.artifacts.add(Artifact(project_id=b.id, type="agent", name="g1"))


def _from_repository(uow_factory, **kwargs) -> list[dict]:
    with uow_factory(read_only=True) as uow:
        return [
            {**s.project.to_dict(), "artifact_count": s.artifact_count, "outdated_count": s.outdated_count}
            for s in uow.projects.summaries(**kwargs)
        ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"status": "error"},
        {"older_than": timedelta(hours=6), "now": datetime(2026, 1, 1, 12, tzinfo=UTC)},
        {"older_than": timedelta(days=1), "now": datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))},
        {"status": "active", "older_than": timedelta(0), "now": datetime(2026, 1, 1, 3, 4, 6, tzinfo=UTC)},
    ],
    ids=["all", "status", "older-than", "older-than-offset-now", "both"],
)
def test_project_summaries_equal_the_repository(engine, uow_factory, kwargs):
    _seed(uow_factory)
    expected = _from_repository(uow_factory, **kwargs)
    assert expected, "the case must return something to compare"
    with engine.connect() as conn:
        assert project_summaries(conn, **kwargs) == expected


@pytest.mark.postgres
def test_project_summaries_sort_by_code_point_whatever_the_collation(collated_pg_url):
    """An ICU en-US database sorts "a" < "B" < "é" < "f"; the repositories and the view
    sort by code point ("B" < "a" < "f" < "é"), as Python does."""
    engine, uows = factory_for(collated_pg_url)
    names = ["é", "f", "a", "B"]
    with uows() as uow:
        for name in names:
            uow.projects.add(Project(name=name, path=f"/collated/{name}"))
    try:
        with engine.connect() as conn:
            rows = project_summaries(conn)
        assert rows == _from_repository(uows)
        ours = [r["name"] for r in rows if r["path"].startswith("/collated/")]  # the database is shared
        assert ours == sorted(names) == ["B", "a", "f", "é"]
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM projects WHERE path LIKE '/collated/%'"))
        engine.dispose()


def test_project_summaries_read_timestamps_written_with_an_offset_by_someone_else(engine, uow_factory):
    _seed(uow_factory)
    if engine.dialect.name == "sqlite":  # text with an offset, as another tool might write it
        with engine.begin() as conn:
            conn.execute(text("UPDATE projects SET last_fetched = '2026-01-01T05:04:05+02:00' WHERE name = 'b'"))
    with engine.connect() as conn:
        rows = project_summaries(conn)
    assert next(r["last_fetched"] for r in rows if r["name"] == "b").startswith("2026-01-01T03:04:05")
    assert rows == _from_repository(uow_factory)


def test_project_summaries_refuse_bad_arguments(engine):
    with engine.connect() as conn:
        with pytest.raises(ValidationError) as info:
            project_summaries(conn, status="gone")
        assert info.value.field == "status"
        with pytest.raises(ValidationError) as info:
            project_summaries(conn, older_than=timedelta(1), now=datetime(2026, 1, 1))
        assert info.value.field == "now"


def test_projects_command_imports_no_models_repositories_alembic_or_fastapi(tmp_path):
    db = tmp_path / "cache.db"
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['skillmeat-cache', '--db', {str(db)!r}, 'projects', '--json']\n"
        "try:\n"
        "    runpy.run_module('skillmeat_cache', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'rich', 'tenacity', 'packaging',\n"
        "                                                             'fastapi', 'starlette', 'pydantic')\n"
        "               or m in ('skillmeat_cache.models', 'skillmeat_cache.uow', 'skillmeat_cache.repositories'))\n"
        "print(heavy, file=sys.stderr)\n"
        "assert heavy == [], heavy\n"
    )
    # The first run migrates the new file (that may import Alembic); the second is the read path.
    env = {**os.environ, "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-m", "skillmeat_cache", "--db", str(db), "status"], env=env, check=True)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_fastapi_imports_whole_after_the_container_hid_it():
    # container.py hides FastAPI and pydantic from dependency-injector's import; they must
    # come back whole, and Configuration.from_pydantic says what it said before (it needs
    # pydantic-settings, which is not installed).
    code = (
        "import sys\n"
        "import skillmeat_cache.container\n"
        "assert 'fastapi' not in sys.modules and sys.modules.get('fastapi.params', 0) == 0\n"
        "assert sys.modules.get('pydantic', 0) == 0\n"
        "from fastapi.params import Depends\n"
        "from starlette.requests import Request\n"
        "import pydantic\n"
        "from skillmeat_cache.api import create_app\n"
        "print(Depends.__module__, Request.__module__, pydantic.BaseModel.__module__)\n"
        "from dependency_injector import providers\n"
        "try:\n"
        "    providers.Configuration().from_pydantic(object())\n"
        "except Exception as exc:\n"
        "    print(str(exc).split(' - ')[1].split()[0])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["fastapi.params", "starlette.requests", "pydantic.main", "pydantic_settings"]


def test_every_export_is_lazy_listed_and_resolves():
    """``__all__``, the lazy table and the modules agree: no name is listed but missing,
    or exported but unlisted."""
    import importlib

    import skillmeat_cache

    assert set(skillmeat_cache.__all__) == set(skillmeat_cache._LAZY)
    for name in skillmeat_cache.__all__:
        module = importlib.import_module(f"skillmeat_cache.{skillmeat_cache._LAZY[name]}")
        assert getattr(skillmeat_cache, name) is getattr(module, name)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        skillmeat_cache.Nope  # noqa: B018


def test_view_columns_are_the_model_columns_in_order():
    """The views list their columns by hand (they must not import the ORM); this keeps the
    lists equal to the models, so a new column cannot be forgotten in a read model."""
    assert tuple(Project(name="p", path="/p").to_dict()) == PROJECT_COLUMNS
    assert tuple(Artifact(project_id="p", type="skill", name="n").to_dict()) == ARTIFACT_COLUMNS
    assert set(ARTIFACT_COLUMNS) == {c.name for c in Base.metadata.tables["artifacts"].columns}


def _seed_listing(uow_factory) -> dict[str, str]:
    with uow_factory() as uow:
        a = uow.projects.add(Project(name="a", path="/w/a"))
        b = uow.projects.add(Project(name="b", path="/w/B"))  # "B" < "a": code point order
        uow.artifacts.upsert_many(
            [
                {"project_id": a.id, "type": "skill", "name": "pdf", "deployed_version": "1", "upstream_version": "2"},
                {"project_id": a.id, "type": "skill", "name": "Zed", "path": ".claude/skills/zed"},
                {"project_id": a.id, "type": "agent", "name": "review_bot", "local_modified": True},
                {"project_id": b.id, "type": "skill", "name": "pdf", "deployed_version": "3", "upstream_version": "3"},
                {"project_id": b.id, "type": "skill", "name": "pdf", "path": ".codex/skills/pdf"},
                {"project_id": b.id, "type": "command", "name": "100%_done"},
            ]
        )
        ids = {
            f"{label}:{t}:{n}:{path}": i
            for label, p in (("a", a.id), ("b", b.id))
            for (t, path, n), i in uow.artifacts.keys_for_project(p).items()
        }
        rows = []
        for label, id_ in ids.items():
            if label.startswith("a:skill:pdf"):
                rows.append({"artifact_id": id_, "description": "Reads PDF files", "tags": ["docs", "pdf"]})
            elif label.startswith("a:agent"):
                rows.append({"artifact_id": id_, "description": "A REVIEW helper", "tags": ["review"]})
            elif label.startswith("b:skill:pdf:.claude"):
                rows.append({"artifact_id": id_, "description": None, "tags": ["pdf"]})
        uow.metadata.set_many(rows)
    return {"a": a.id, "b": b.id}


def _listing_from_repositories(uow_factory, project=None, type=None, outdated=False, tag=None, text=None):
    """What the CLI computed before the view: search, then filters and order in Python."""
    from skillmeat_cache.services import find_project

    with uow_factory(read_only=True) as u:
        project_id = find_project(u, project).id if project else None
        found = u.artifacts.search(text or "", project_id=project_id, type=type)
        if outdated:
            found = [a for a in found if a.is_outdated]
        if tag is not None:
            tagged = {a.id for a in u.metadata.artifacts_with_tag(tag)}
            found = [a for a in found if a.id in tagged]
        paths = {p.id: p.path for p in u.projects.list()}
        found.sort(key=lambda a: (paths[a.project_id], a.type, a.name, a.path))
        meta = u.metadata.get_many(a.id for a in found)
        return [
            {
                **a.to_dict(),
                "description": meta[a.id].description if a.id in meta else None,
                "tags": list(meta[a.id].tags or []) if a.id in meta else [],
                "project_path": paths[a.project_id],
            }
            for a in found
        ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"type": "skill"},
        {"outdated": True},
        {"tag": "pdf"},
        {"text": "PDF"},
        {"text": "review"},
        {"text": "%_"},
        {"project": "/w/B", "type": "skill"},
        {"project": "a", "tag": "review", "text": "help"},
    ],
    ids=["all", "type", "outdated", "tag", "text-case", "text-description", "text-wildcards", "project", "combined"],
)
def test_artifact_listing_equals_the_repositories(engine, uow_factory, kwargs):
    ids = _seed_listing(uow_factory)
    if kwargs.get("project") == "a":
        kwargs = {**kwargs, "project": ids["a"]}
    expected = _listing_from_repositories(uow_factory, **kwargs)
    assert expected, "the case must return something to compare"
    with engine.connect() as conn:
        listed = artifact_listing(
            conn,
            **{k: v for k, v in kwargs.items() if k != "text"},
            text_=kwargs.get("text"),
        )
    assert listed == expected
    assert Reader(engine).artifacts(**kwargs) == expected


def test_artifact_listing_wildcards_are_literal_and_order_is_by_code_point(engine, uow_factory):
    _seed_listing(uow_factory)
    reader = Reader(engine)
    assert [a["name"] for a in reader.artifacts(text="%_")] == ["100%_done"]
    assert [a["name"] for a in reader.artifacts(text="_")] == ["100%_done", "review_bot"]
    assert [(a["project_path"], a["name"]) for a in reader.artifacts(type="skill")] == [
        ("/w/B", "pdf"),
        ("/w/B", "pdf"),
        ("/w/a", "Zed"),
        ("/w/a", "pdf"),
    ]


def test_artifact_listing_refuses_an_unknown_project_and_bad_filters(engine, uow_factory):
    _seed_listing(uow_factory)
    reader = Reader(engine)
    with pytest.raises(NotFoundError, match="no cached project with id or path '/w/nope'"):
        reader.artifacts(project="/w/nope")
    with pytest.raises(ValidationError) as info:
        reader.artifacts(type="plugin")
    assert info.value.field == "type"
    with pytest.raises(ValidationError) as info:
        reader.artifacts(tag="")
    assert info.value.field == "tag"


def test_reader_status_counts_every_table(engine, uow_factory):
    _seed_listing(uow_factory)
    status = Reader(engine).status()
    assert status["counts"] == {
        "projects": 2,
        "artifacts": 6,
        "artifact_metadata": 3,
        "marketplace": 0,
        "cache_metadata": 0,
    }
    assert status["revision"] == status["head"]
    assert (status["size_bytes"] is None) == (engine.dialect.name == "postgresql")


def test_reader_refuses_a_database_without_the_schema(tmp_path):
    from skillmeat_cache.engine import create_engine_for_url

    engine = create_engine_for_url(str(tmp_path / "empty.db"))
    try:
        for read in (Reader(engine).project_summaries, Reader(engine).artifacts, Reader(engine).status):
            with pytest.raises(SchemaVersionError, match="migrate"):
                read()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_artifact_listing_sorts_by_code_point_whatever_the_collation(collated_pg_url):
    engine, uows = factory_for(collated_pg_url)
    names = ["é", "f", "a", "B"]
    with uows() as uow:
        project = uow.projects.add(Project(name="collated", path="/collated/artifacts"))
        uow.artifacts.upsert_many([{"project_id": project.id, "type": "skill", "name": n} for n in names])
    try:
        listed = Reader(engine).artifacts(project="/collated/artifacts")
        assert [a["name"] for a in listed] == sorted(names) == ["B", "a", "f", "é"]
        assert listed == _listing_from_repositories(uows, project="/collated/artifacts")
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM projects WHERE path LIKE '/collated/%'"))
        engine.dispose()

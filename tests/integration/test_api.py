"""The HTTP API in process (FastAPI's TestClient runs the app and its lifespan), on a
real SQLite file and the local PostgreSQL, over a copy of the example projects."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from skillmeat_cache import Artifact, MarketplaceEntry, Project
from skillmeat_cache.api import PREFIX, Settings, create_app
from skillmeat_cache.api.schemas import (
    ArtifactOut,
    InvalidateOut,
    JobOut,
    MarketplaceOut,
    Page,
    ProjectDetail,
    ProjectSummary,
    SearchHit,
    StatusOut,
)
from skillmeat_cache.container import Container
from skillmeat_cache.values import utcnow
from skillmeat_cache.views import project_summaries

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "projects"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    shutil.copytree(EXAMPLES, root)
    return root


def _container(url: str, **config: Any) -> Container:
    container = Container()
    container.config.from_dict({"database_url": url, "busy_timeout": 2, **config})
    return container


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class Api:
    """A TestClient on a running app, with helpers."""

    def __init__(self, client: TestClient, container: Container) -> None:
        self.client = client
        self.container = container
        self.live = client.app.state.skillmeat_cache

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(PREFIX + path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.client.post(PREFIX + path, **kwargs)

    def ok(self, path: str, **params: Any) -> Any:
        response = self.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def idle(self) -> None:
        assert self.live.jobs.wait_idle(30)


@pytest.fixture
def open_api(db_url: str, tree: Path) -> Iterator[Callable[..., Api]]:
    """Opens the app on the test database (startup refresh of ``tree`` done); closes it after."""
    opened: list[tuple[TestClient, Container]] = []

    def open_(config: dict[str, Any] | None = None, **settings: Any) -> Api:
        container = _container(db_url, **(config or {}))
        settings.setdefault("roots", [str(tree)])
        settings.setdefault("watch", False)
        client = TestClient(create_app(container, Settings(**settings)), raise_server_exceptions=False)
        client.__enter__()
        opened.append((client, container))
        api = Api(client, container)
        api.idle()
        return api

    yield open_
    for client, container in reversed(opened):
        client.__exit__(None, None, None)
        container.shutdown_resources()


@pytest.fixture
def api(open_api: Callable[..., Api]) -> Api:
    return open_api()


def _problem(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["type"].endswith(":" + kind), body
    assert "Traceback" not in body["detail"] and "\n" not in body["detail"]
    return body


# ----------------------------------------------------------------------------- reads


def test_status_after_the_startup_refresh(api: Api, tree: Path) -> None:
    body = api.ok("/status")
    StatusOut.model_validate(body)
    assert body["projects"] == {"active": 4, "stale": 0, "error": 0}
    assert body["artifacts"] == 20 and body["outdated"] == 0
    assert body["revision"] == body["head"]
    assert body["refresh"]["running"] is False and body["refresh"]["last_finished"] is not None
    assert body["refresh"]["ttl_seconds"] == 6 * 3600
    assert body["watcher"]["mode"] == "off"
    assert body["last_fetched"].endswith("+00:00")


def test_the_given_root_is_remembered(api: Api, tree: Path) -> None:
    from skillmeat_cache.roots import remembered_roots

    assert remembered_roots(api.container.unit_of_work) == [str(tree.resolve())]


def test_projects_pages_are_the_view_in_pages(api: Api) -> None:
    with api.live.engine.connect() as conn:
        expected = project_summaries(conn)
    whole = api.ok("/projects", limit=1000)
    Page[ProjectSummary].model_validate(whole)
    assert whole["items"] == expected and whole["total"] == 4
    assert (whole["skip"], whole["limit"]) == (0, 1000)
    pages = [api.ok("/projects", skip=skip, limit=3) for skip in (0, 3)]
    assert [len(p["items"]) for p in pages] == [3, 1] and {p["total"] for p in pages} == {4}
    assert pages[0]["items"] + pages[1]["items"] == expected
    past = api.ok("/projects", skip=10, limit=3)
    assert past == {"items": [], "total": 4, "skip": 10, "limit": 3}
    assert api.ok("/projects", status="error")["total"] == 0
    assert api.ok("/projects")["limit"] == 100  # the documented default, shown


def test_stale_lists_projects_older_than_the_ttl(api: Api) -> None:
    assert api.ok("/projects", stale="true")["total"] == 0
    with api.container.unit_of_work() as uow:
        project = uow.projects.list()[0]
        project.last_fetched = utcnow() - timedelta(hours=7)
    stale = api.ok("/projects", stale="true")
    assert [p["id"] for p in stale["items"]] == [project.id]


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"skip": -1}, "skip"),
        ({"status": "bogus"}, "status"),
        ({"stale": "maybe"}, "stale"),
    ],
)
def test_bad_list_parameters_are_422_problems(api: Api, params: dict[str, Any], where: str) -> None:
    body = _problem(api.get("/projects", params=params), 422, "ValidationError")
    assert body["errors"][0]["loc"] == ["query", where]


def test_project_detail_has_every_artifact_with_its_metadata(api: Api) -> None:
    web = next(p for p in api.ok("/projects", limit=10)["items"] if p["name"] == "web-app")
    detail = api.ok(f"/projects/{web['id']}")
    ProjectDetail.model_validate(detail)
    assert len(detail["artifacts"]) == web["artifact_count"] > 0
    pdf = next(a for a in detail["artifacts"] if a["name"] == "pdf-tools")
    assert pdf["type"] == "skill" and pdf["deployed_version"] == "1.2.0"
    assert isinstance(pdf["metadata"], dict) and pdf["metadata"].get("name") == "pdf-tools"
    assert pdf["project_path"] == web["path"]
    _problem(api.get("/projects/nope"), 404, "NotFoundError")


def test_artifacts_filters_sorts_and_pages(api: Api) -> None:
    everything = api.ok("/artifacts", limit=1000)
    Page[ArtifactOut].model_validate(everything)
    assert everything["total"] == 20
    skills = api.ok("/artifacts", type="skill", limit=1000)
    assert skills["total"] == sum(a["type"] == "skill" for a in everything["items"]) > 0
    by_name = api.ok("/artifacts", sort="name", limit=1000)["items"]
    assert [a["name"] for a in by_name] == sorted(a["name"] for a in everything["items"])
    updated = api.ok("/artifacts", sort="updated", limit=1000)["items"]
    assert [a["updated_at"] for a in updated] == sorted((a["updated_at"] for a in updated), reverse=True)
    pdf = api.ok("/artifacts", q="PDF")
    assert pdf["total"] >= 1 and all("pdf" in (a["name"] + (a["description"] or "")).lower() for a in pdf["items"])
    first = everything["items"][0]
    mine = api.ok("/artifacts", project_id=first["project_id"], limit=1000)
    assert {a["project_id"] for a in mine["items"]} == {first["project_id"]}
    _problem(api.get("/artifacts", params={"project_id": "nope"}), 404, "NotFoundError")
    _problem(api.get("/artifacts", params={"sort": "size"}), 422, "ValidationError")
    _problem(api.get("/artifacts", params={"type": "plugin"}), 422, "ValidationError")


def test_search_ranks_best_matches_first(api: Api) -> None:
    with api.container.unit_of_work() as uow:
        project = uow.projects.add(Project(name="ranked", path="/nowhere/ranked"))
        for name, description, tags in [
            ("zz-description", "handles a Lintern task", []),
            ("my-lintern", None, []),
            ("lintern-helper", None, []),
            ("lintern", None, []),
            ("zz-tagged", None, ["lintern"]),
        ]:
            artifact = uow.artifacts.add(Artifact(project_id=project.id, name=name, type="skill"))
            uow.metadata.set(artifact.id, data={"name": name}, description=description, tags=tags)
    hits = api.ok("/search", q="LINTERN")
    Page[SearchHit].model_validate(hits)
    assert [(h["name"], h["rank"]) for h in hits["items"]] == [
        ("lintern", 0),
        ("lintern-helper", 1),
        ("my-lintern", 2),
        ("zz-tagged", 3),
        ("zz-description", 4),
    ]
    assert api.ok("/search", q="lintern", skip=1, limit=2)["items"][0]["name"] == "lintern-helper"
    assert api.ok("/search", q="100%")["total"] == 0  # a LIKE wildcard is a literal
    _problem(api.get("/search"), 422, "ValidationError")
    _problem(api.get("/search", params={"q": "  "}), 422, "ValidationError")


def test_documents_come_back_exactly_whatever_the_json_writer(api: Api) -> None:
    # The stored frontmatter is embedded as stored (orjson.Fragment); what orjson cannot
    # write (an integer beyond 64 bits, parsed from a marketplace entry) falls back to json.
    document = {"big": 2**70, "nested": {"x": [1, 2.5, "é", None, True]}, "": "empty key"}
    web = next(p for p in api.ok("/projects", limit=10)["items"] if p["name"] == "web-app")
    with api.container.unit_of_work() as uow:
        artifact = uow.artifacts.list_for_project(web["id"])[0]
        uow.metadata.set(artifact.id, data=document, description="d", tags=["t"], aliases=["a"])
        uow.marketplace.add(MarketplaceEntry(id="big", name="big", type="skill", data={"n": 2**70, "s": "ü"}))
    detail = api.ok(f"/projects/{web['id']}")
    stored = next(a for a in detail["artifacts"] if a["id"] == artifact.id)
    assert stored["metadata"] == document and stored["aliases"] == ["a"] and stored["tags"] == ["t"]
    assert api.ok("/marketplace")["items"][0]["data"] == {"n": 2**70, "s": "ü"}


def test_marketplace_pages_by_type(api: Api) -> None:
    with api.container.unit_of_work() as uow:
        for i in range(5):
            uow.marketplace.add(MarketplaceEntry(id=f"m{i}", name=f"entry-{i}", type="skill" if i % 2 else "agent"))
    page = api.ok("/marketplace", limit=2)
    Page[MarketplaceOut].model_validate(page)
    assert page["total"] == 5 and [e["id"] for e in page["items"]] == ["m0", "m2"]
    assert api.ok("/marketplace", type="skill")["total"] == 2


def test_openapi_documents_every_endpoint_with_models(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    paths = {p.removeprefix(PREFIX) for p in spec["paths"]}
    assert paths == {
        "/status", "/projects", "/projects/{project_id}", "/artifacts", "/search", "/marketplace",
        "/refresh", "/refresh/{job_id}", "/invalidate", "/events",
    }
    for path in ("/projects", "/search", "/status", "/projects/{project_id}"):
        schema = spec["paths"][PREFIX + path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in schema, path
    assert api.client.get("/docs").status_code == 200


# ----------------------------------------------------------------------------- refresh


def test_refresh_answers_202_at_once_and_reports_the_scan(api: Api, tree: Path) -> None:
    response = api.post("/refresh", json={"force": True})
    assert response.status_code == 202
    job = JobOut.model_validate(response.json())
    assert job.state in ("queued", "running") and job.force and job.reason == "request"
    done = wait_for(lambda: (j := api.ok(f"/refresh/{job.id}"))["state"] == "done" and j)
    JobOut.model_validate(done)
    assert done["summary"]["projects_seen"] == 4 and done["summary"]["projects_updated"] == 0
    assert done["projects_done"] == 4 and done["finished_at"] is not None
    _problem(api.get("/refresh/r999"), 404, "NotFoundError")


def test_refresh_of_one_project_reads_only_that_project(api: Api, tree: Path) -> None:
    web = next(p for p in api.ok("/projects")["items"] if p["name"] == "web-app")
    (tree / "web-app" / ".claude" / "agents" / "new-agent.md").write_text("---\nname: new-agent\n---\nhi\n")
    job = api.post("/refresh", json={"project_id": web["id"]}).json()
    done = wait_for(lambda: (j := api.ok(f"/refresh/{job['id']}"))["state"] == "done" and j)
    assert done["project_id"] == web["id"]
    assert done["summary"]["projects_seen"] == 1 and done["summary"]["artifacts_added"] == 1
    assert api.ok(f"/projects/{web['id']}")["artifact_count"] == web["artifact_count"] + 1
    _problem(api.post("/refresh", json={"project_id": "nope"}), 404, "NotFoundError")


@pytest.mark.parametrize(
    "body",
    [{"project_id": 5}, {"force": "often"}, {"path": "/etc"}, [1, 2]],
)
def test_refresh_refuses_bad_bodies_and_never_takes_a_path(api: Api, body: Any) -> None:
    _problem(api.post("/refresh", json=body), 422, "ValidationError")


def test_malformed_json_is_a_422_problem(api: Api) -> None:
    response = api.post("/refresh", content=b"{not json", headers={"content-type": "application/json"})
    _problem(response, 422, "ValidationError")


def test_invalidate_marks_stale_then_the_refresh_brings_them_back(api: Api) -> None:
    response = api.post("/invalidate", json={})
    assert response.status_code == 202
    body = InvalidateOut.model_validate(response.json())
    assert body.invalidated == 4 and body.job.reason == "invalidate"
    api.idle()
    assert api.ok("/status")["projects"] == {"active": 4, "stale": 0, "error": 0}
    one = api.ok("/projects", limit=1)["items"][0]
    assert api.post("/invalidate", json={"project_id": one["id"]}).json()["invalidated"] == 1
    _problem(api.post("/invalidate", json={"project_id": "nope"}), 404, "NotFoundError")


def test_the_ttl_refresh_rereads_projects_older_than_the_ttl(open_api: Callable[..., Api]) -> None:
    # The project is made stale under a server whose TTL check is minutes away, so that
    # the second server's check (every 0.1 s, no refresh at start) is what re-reads it.
    first = open_api(ttl=timedelta(hours=1))
    with first.container.unit_of_work() as uow:
        old = uow.projects.list()[0]
        old.last_fetched = utcnow() - timedelta(hours=2)
    assert first.ok("/projects", stale="true")["total"] == 1
    api = open_api(ttl=timedelta(hours=1), ttl_check=timedelta(seconds=0.1), refresh_on_start=False)
    wait_for(lambda: api.ok("/projects", stale="true")["total"] == 0)
    assert first.ok("/projects", stale="true")["total"] == 0
    assert api.ok("/status")["refresh"]["next_run"] is not None


# ----------------------------------------------------------------------------- errors and security


def test_a_busy_database_is_503_with_retry_after(sqlite_url: str, tree: Path) -> None:
    import sqlite3

    container = _container(sqlite_url, busy_timeout=0.2)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        with TestClient(create_app(container, Settings(roots=[str(tree)], watch=False))) as client:
            assert client.app.state.skillmeat_cache.jobs.wait_idle(30)
            holder.execute("BEGIN EXCLUSIVE")
            response = client.post(PREFIX + "/invalidate", json={})
            body = _problem(response, 503, "DatabaseBusyError")
            assert response.headers["retry-after"] == "1" and "busy" in body["detail"].lower()
            holder.execute("ROLLBACK")
            assert client.post(PREFIX + "/invalidate", json={}).status_code == 202
            assert client.app.state.skillmeat_cache.jobs.wait_idle(30)
            assert client.get(PREFIX + "/status").json()["projects"]["active"] == 4  # nothing lost
    finally:
        holder.close()
        container.shutdown_resources()


def test_an_unexpected_error_is_a_bare_500_problem(api: Api) -> None:
    def boom() -> None:
        raise RuntimeError("secret driver detail: password=hunter2")

    api.client.app.add_api_route("/boom", boom)
    body = _problem(api.client.get("/boom"), 500, "InternalError")
    assert body["detail"] == "internal error"


def test_unknown_routes_are_404_problems(api: Api) -> None:
    _problem(api.client.get("/api/v1/cache/nothing-here"), 404, "NotFoundError")


def test_a_token_guards_every_request(open_api: Callable[..., Api]) -> None:
    token = "s3cret-token-of-some-length"
    api = open_api(token=token)
    client = api.client
    _problem(client.get(PREFIX + "/status"), 401, "Unauthorized")
    _problem(client.get("/"), 401, "Unauthorized")
    _problem(client.get(PREFIX + "/status", headers={"Authorization": "Bearer wrong"}), 401, "Unauthorized")
    assert client.get(PREFIX + "/status", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # The page: one visit with ?token= sets an HttpOnly cookie, which EventSource sends.
    first = client.get(f"/?token={token}", follow_redirects=False)
    assert first.status_code == 303 and "HttpOnly" in first.headers["set-cookie"]
    assert client.get("/").status_code == 200 and client.get(PREFIX + "/status").status_code == 200


def test_cors_is_off_unless_an_origin_is_configured(open_api: Callable[..., Api]) -> None:
    origin = {"Origin": "http://app.example"}
    plain = open_api()
    assert "access-control-allow-origin" not in plain.get("/status", headers=origin).headers
    allowed = open_api(cors_origins=["http://app.example"])
    assert allowed.get("/status", headers=origin).headers["access-control-allow-origin"] == "http://app.example"


@pytest.mark.postgres
def test_postgres_going_away_is_503_and_the_server_recovers(tree: Path) -> None:
    from skillmeat_cache import migrate
    from skillmeat_cache.engine import create_engine_for_url
    from tests.conftest import throwaway_pg_database

    with throwaway_pg_database("skillmeat_gone") as url:
        migrate(url)
        container = _container(url)
        app = create_app(container, Settings(roots=[str(tree)], watch=False))
        admin = create_engine_for_url(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        name = url.rsplit("/", 1)[1]
        try:
            with TestClient(app, raise_server_exceptions=False) as client:
                assert app.state.skillmeat_cache.jobs.wait_idle(30)
                assert client.get(PREFIX + "/projects").json()["total"] == 4
                with admin.connect() as conn:
                    conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                    conn.execute(
                        text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
                    )
                response = client.get(PREFIX + "/projects")
                _problem(response, 503, "DatabaseUnavailableError")
                assert response.headers["retry-after"] == "5"
                with admin.connect() as conn:
                    conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
                assert wait_for(lambda: client.get(PREFIX + "/projects").status_code == 200)
                assert client.get(PREFIX + "/projects").json()["total"] == 4
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            admin.dispose()
            container.shutdown_resources()


def test_event_subscribers_over_the_cap_get_503(api: Api) -> None:
    api.live.events.max_subscribers = 0
    response = api.get("/events")
    body = _problem(response, 503, "TooManySubscribers")
    assert response.headers["retry-after"] == "5" and "at most 0" in body["detail"]
    _problem(api.get("/events", headers={"Last-Event-ID": "-1"}), 422, "ValidationError")

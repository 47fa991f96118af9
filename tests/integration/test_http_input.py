"""Bad HTTP input, in process (TestClient runs the app and its lifespan): every kind gets
a specific 4xx problem+json, and nothing stored changes, nothing is scanned. The limits
that need real sockets (a body never finished, a client that stops reading) are in
``tests/e2e/test_http_limits.py``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from skillmeat_cache.api import PREFIX, Settings, create_app
from skillmeat_cache.api.guards import MAX_BODY_BYTES
from skillmeat_cache.container import Container
from skillmeat_cache.views import project_summaries
from tests.integration.test_api import EXAMPLES, Api, _container, _problem

JSON = {"content-type": "application/json"}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    shutil.copytree(EXAMPLES, root)
    return root


def _open(url: str, tree: Path, **settings: Any) -> Iterator[Api]:
    container: Container = _container(url)
    client = TestClient(create_app(container, Settings(roots=[str(tree)], watch=False, **settings)),
                        raise_server_exceptions=False)
    with client:
        api = Api(client, container)
        api.idle()
        yield api
    container.shutdown_resources()


@pytest.fixture
def api(db_url: str, tree: Path) -> Iterator[Api]:
    """The app on both engines: for the cases where the database is asked."""
    yield from _open(db_url, tree)


@pytest.fixture
def sqlite_api(sqlite_url: str, tree: Path) -> Iterator[Api]:
    """The app on SQLite: for the cases refused before the database is asked."""
    yield from _open(sqlite_url, tree)


def _stored(api: Api) -> list[dict[str, Any]]:
    with api.live.engine.connect() as conn:
        return project_summaries(conn)


def _unchanged(api: Api, before: list[dict[str, Any]]) -> None:
    """Nothing stored changed, and no refresh was started: the next job is the second
    (the first was the startup refresh)."""
    assert _stored(api) == before
    assert api.post("/refresh", json={}).json()["id"] == "r2"


# ----------------------------------------------------------------------------- query parameters


@pytest.mark.parametrize(
    ("method", "path", "unknown", "takes"),
    [
        ("GET", "/projects?limt=5", "limt", "limit, skip, stale, status"),
        ("GET", "/projects?limit=5&Limit=6", "Limit", "limit, skip, stale, status"),
        ("GET", "/status?verbose=1", "verbose", "no query parameters"),
        ("GET", "/artifacts?projectid=x", "projectid", "limit, outdated, project_id, q, skip, sort, tag, type"),
        ("GET", "/search?q=a&query=b", "query", "limit, q, skip"),
        ("GET", "/marketplace?kind=skill", "kind", "limit, skip, type"),
        ("GET", "/refresh/r1?verbose=1", "verbose", "no query parameters"),
        ("GET", "/projects/x?fields=name", "fields", "no query parameters"),
        ("GET", "/events?since=3", "since", "no query parameters"),
        ("POST", "/refresh?force=true", "force", "no query parameters"),
        ("POST", "/invalidate?project_id=x", "project_id", "no query parameters"),
    ],
)
def test_unknown_query_parameters_are_422_problems_naming_them(
    sqlite_api: Api, method: str, path: str, unknown: str, takes: str
) -> None:
    before = _stored(sqlite_api)
    response = sqlite_api.client.request(method, PREFIX + path, json={} if method == "POST" else None)
    body = _problem(response, 422, "ValidationError")
    assert body["detail"] == f"query.{unknown}: unknown parameter; this endpoint takes {takes}"
    assert body["errors"][0]["loc"] == ["query", unknown]
    assert sqlite_api.live.events.subscribers == 0
    _unchanged(sqlite_api, before)


def test_known_query_parameters_still_work(sqlite_api: Api) -> None:
    assert sqlite_api.ok("/projects", limit=2, skip=1, stale="false")["limit"] == 2
    assert sqlite_api.ok("/search", q="pdf")["total"] >= 1
    assert sqlite_api.client.get(PREFIX + "/status?").status_code == 200  # an empty query


# ----------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="malformed"),
        pytest.param(b'{"force": tru}', id="bad-literal"),
        pytest.param(b'{"project_id": "a', id="truncated"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"[" * 5000 + b"]" * 5000, id="nested-too-deep"),
        pytest.param(b'{"project_id": 5}', id="number-for-id"),
        pytest.param(b'{"project_id": ["a"]}', id="list-for-id"),
        pytest.param(b'{"project_id": {"$ne": null}}', id="object-for-id"),
        pytest.param(b'{"force": "yes"}', id="force-yes"),
        pytest.param(b'{"force": 1}', id="force-1"),
        pytest.param(b"[1, 2]", id="list-body"),
        pytest.param(b'"x"', id="string-body"),
        pytest.param(b'{"path": "/etc"}', id="unknown-field"),
    ],
)
@pytest.mark.parametrize("endpoint", ["/refresh", "/invalidate"])
def test_bad_bodies_are_422_problems_and_change_nothing(sqlite_api: Api, endpoint: str, body: bytes) -> None:
    before = _stored(sqlite_api)
    problem = _problem(sqlite_api.post(endpoint, content=body, headers=JSON), 422, "ValidationError")
    assert problem["detail"].startswith("body") and problem["errors"][0]["loc"][0] == "body"
    _unchanged(sqlite_api, before)


def test_a_body_without_a_json_content_type_is_refused(sqlite_api: Api) -> None:
    before = _stored(sqlite_api)
    for headers in ({}, {"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"}):
        _problem(sqlite_api.post("/invalidate", content=b"{}", headers=headers), 422, "ValidationError")
    _unchanged(sqlite_api, before)


def test_bodies_over_the_limit_are_413_problems(sqlite_api: Api) -> None:
    before = _stored(sqlite_api)
    over = b"{}" + b" " * (MAX_BODY_BYTES - 1)

    def chunked(total: int) -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        yield b"{}"
        for _ in range((total - 2) // 1024):
            yield b" " * 1024

    for response in (
        sqlite_api.post("/refresh", content=over, headers=JSON),
        sqlite_api.post("/invalidate", content=chunked(MAX_BODY_BYTES + 1024), headers=JSON),
        sqlite_api.client.request("GET", PREFIX + "/status", content=over),
    ):
        problem = _problem(response, 413, "ContentTooLarge")
        assert problem["detail"] == (
            f"the request body is over {MAX_BODY_BYTES:,} bytes; this server takes bodies of at most "
            f"{MAX_BODY_BYTES:,} bytes"
        )
        assert response.headers["connection"] == "close"
    _unchanged(sqlite_api, before)
    at_limit = sqlite_api.post("/invalidate", content=chunked(MAX_BODY_BYTES), headers=JSON)
    assert at_limit.status_code == 202 and at_limit.json()["invalidated"] == len(before)


# ----------------------------------------------------------------------------- hostile ids

# As sent on the wire (percent-escapes kept), and what the server may answer.
HOSTILE_PATH_IDS = [
    "%2e%2e", "..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "1'%20OR%20'1'='1",
    "1%27%3B%20DROP%20TABLE%20projects%3B--", "a%00b", "%ff%fe", "%c0%af", "%e2%80%ae", "x" * 4000,
]
HOSTILE_BODY_IDS = [
    "../../etc/passwd", "/etc", "..", ".", "~", "1' OR '1'='1", "1'; DROP TABLE projects;--", "a\x00b",
    "\ud800", "%2e%2e", "x" * 50_000, "*", "%",
]


def test_hostile_ids_in_paths_are_404_or_422_and_scan_nothing(api: Api) -> None:
    before = _stored(api)
    for raw in HOSTILE_PATH_IDS:
        for path in (f"/projects/{raw}", f"/refresh/{raw}"):
            response = api.client.get(PREFIX + path)
            assert response.status_code in (404, 422), (path[:60], response.text)
            kind = "NotFoundError" if response.status_code == 404 else "ValidationError"
            body = _problem(response, response.status_code, kind)
            assert len(body["detail"]) <= 303, path[:60]
    _unchanged(api, before)


def test_hostile_project_ids_in_bodies_are_404_or_422_and_scan_nothing(api: Api) -> None:
    before = _stored(api)
    for value in HOSTILE_BODY_IDS:
        for endpoint in ("/refresh", "/invalidate"):
            body = json.dumps({"project_id": value}).encode()  # ASCII escapes: a lone surrogate too
            response = api.post(endpoint, content=body, headers=JSON)
            assert response.status_code in (404, 422), (endpoint, value[:40], response.text)
            kind = "NotFoundError" if response.status_code == 404 else "ValidationError"
            _problem(response, response.status_code, kind)
    _unchanged(api, before)


def test_hostile_ids_get_the_specific_answer(sqlite_api: Api) -> None:
    """Which answer each kind gets: an id that could be stored but is not, 404; one that
    could never be (a NUL byte, a lone surrogate), 422; a path segment that decodes to a
    slash matches no route, 404."""
    assert sqlite_api.get("/projects/%2e%2e").json()["detail"] == "no cached project with id '..'"
    assert sqlite_api.get("/projects/a%00b").json()["detail"] == "project_id: contains a NUL byte"
    assert sqlite_api.get("/projects/%ff").json()["detail"] == "no cached project with id '\ufffd'"
    assert sqlite_api.get("/projects/..%2fetc").json()["detail"] == "Not Found"
    long = sqlite_api.get("/refresh/" + "x" * 4000).json()["detail"]
    assert long == "no refresh job '" + "x" * 284 + "..."
    surrogate = sqlite_api.post("/refresh", content=b'{"project_id": "\\ud800"}', headers=JSON)
    detail = _problem(surrogate, 422, "ValidationError")["detail"]
    assert detail == "project_id: is not valid Unicode (unpaired surrogate)"


# ----------------------------------------------------------------------------- events


@pytest.mark.parametrize(
    "value",
    ["abc", "-1", "1" + "0" * 30, "1" * 19, "x-1", "ABCDEF12-1", "0123456789abcdef0-1", "1-2-3", "1.5", "", "0x10"],
)
def test_a_garbage_last_event_id_is_a_422_problem(sqlite_api: Api, value: str) -> None:
    body = _problem(sqlite_api.get("/events", headers={"Last-Event-ID": value}), 422, "ValidationError")
    assert body["detail"].startswith("Last-Event-ID: must be an event id (RUN-NUMBER)")
    assert sqlite_api.live.events.subscribers == 0


def test_the_subscriber_cap_is_a_setting_and_503_beyond(open_cap: Callable[[int], Api]) -> None:
    api = open_cap(0)
    response = api.get("/events")
    body = _problem(response, 503, "TooManySubscribers")
    assert response.headers["retry-after"] == "5" and body["detail"] == "at most 0 event subscribers"


@pytest.fixture
def open_cap(sqlite_url: str, tree: Path) -> Iterator[Callable[[int], Api]]:
    opened: list[Iterator[Api]] = []

    def open_(cap: int) -> Api:
        it = _open(sqlite_url, tree, max_subscribers=cap)
        opened.append(it)
        return next(it)

    yield open_
    for it in opened:
        next(it, None)

"""The change feed on real databases: a refresh of a few projects publishes their events
itself (``compare_within``), and no comparison puts back a summary older than one already
published."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from skillmeat_cache import Project
from skillmeat_cache.api.changes import ChangeFeed
from skillmeat_cache.api.events import EventHub
from skillmeat_cache.uow import UnitOfWork
from skillmeat_cache.views import Reader, project_summaries


def _seed(uow_factory: Callable[..., UnitOfWork]) -> dict[str, str]:
    with uow_factory() as uow:
        ids = {name: uow.projects.add(Project(name=name, path=f"/w/{name}", fingerprint="f0")).id for name in "abcd"}
    return ids


def _set_fingerprint(uow_factory: Callable[..., UnitOfWork], id_: str, value: str) -> None:
    with uow_factory() as uow:
        project = uow.projects.get(id_)
        assert project is not None
        project.fingerprint = value


def _published(hub: EventHub) -> list[dict[str, Any]]:
    return [event.data for event in hub.since(0)]


def test_summaries_within_folders_are_the_full_list_filtered(
    engine: Engine, uow_factory: Callable[..., UnitOfWork]
) -> None:
    _seed(uow_factory)
    with uow_factory() as uow:
        for path in ("/w/a/inner", "/w/a/inner/deeper", "/w/ab", "/w/a_x/y", "/w/50%/z", "/w/a!b/c"):
            uow.projects.add(Project(name=path.rsplit("/", 1)[1], path=path))
    with engine.connect() as conn:
        everything = project_summaries(conn)

        def within(*folders: str) -> list[str]:
            return sorted(s["path"] for s in project_summaries(conn, within=folders))

        assert project_summaries(conn, within=["/w/c", "/w/a/"]) == [
            s for s in everything if s["path"] in {"/w/a", "/w/a/inner", "/w/a/inner/deeper", "/w/c"}
        ]
        # A sibling sharing a prefix is not inside; LIKE's wildcards and the escape are text.
        assert within("/w/a/inner") == ["/w/a/inner", "/w/a/inner/deeper"]
        assert within("/w/a_x") == ["/w/a_x/y"] and within("/w/50%") == ["/w/50%/z"]
        assert within("/w/a!b") == ["/w/a!b/c"] and within("/w/none", "/x") == []
        assert within("/") == sorted(s["path"] for s in everything)
        assert project_summaries(conn, within=[]) == []
        assert project_summaries(conn, status="error", within=["/w/a"]) == []


def test_compare_within_publishes_those_projects_alone(engine: Engine, uow_factory: Callable[..., UnitOfWork]) -> None:
    ids = _seed(uow_factory)
    hub = EventHub()
    feed = ChangeFeed(Reader(engine, check_every_call=False), hub)
    feed.compare(publish=False)
    for name in "ab":
        _set_fingerprint(uow_factory, ids[name], "f1")
    with uow_factory() as uow:
        uow.projects.add(Project(name="e", path="/w/e"))
        uow.projects.delete(ids["c"])

    assert feed.compare_within(["/w/a", "/w/c", "/w/e"]) == 3
    got = {(e["project"] or {}).get("name", e["id"]): (e["change"], e["fields"]) for e in _published(hub)}
    assert got == {"a": ("updated", ["fingerprint"]), ids["c"]: ("removed", []), "e": ("added", [])}
    assert feed.snapshot[ids["a"]]["fingerprint"] == "f1" and ids["c"] not in feed.snapshot
    # What the partial comparison published is not published again; b still is.
    assert feed.compare() == 1
    assert [(e["id"], e["fields"]) for e in _published(hub)[3:]] == [(ids["b"], ["fingerprint"])]
    assert feed.compare() == 0


def test_compare_within_a_folder_finds_projects_new_below_it(
    engine: Engine, uow_factory: Callable[..., UnitOfWork]
) -> None:
    _seed(uow_factory)
    hub = EventHub()
    feed = ChangeFeed(Reader(engine, check_every_call=False), hub)
    feed.compare(publish=False)
    with uow_factory() as uow:
        for i in (3, 0, 2, 1):
            uow.projects.add(Project(name="copy", path=f"/w/incoming/copy-{i}"))
        uow.projects.add(Project(name="elsewhere", path="/w/incomingx"))
    assert feed.compare_within(["/w/incoming"]) == 4
    # In the listing's order (name, then path), as a full comparison publishes them.
    assert [e["project"]["path"] for e in _published(hub)] == [f"/w/incoming/copy-{i}" for i in range(4)]
    assert feed.compare() == 1  # only the sibling outside the folder is left


def test_a_full_read_older_than_a_partial_one_does_not_put_back_old_summaries(
    engine: Engine, uow_factory: Callable[..., UnitOfWork]
) -> None:
    ids = _seed(uow_factory)
    hub = EventHub()
    reader = Reader(engine, check_every_call=False)
    feed = ChangeFeed(reader, hub)
    feed.compare(publish=False)
    read, release = threading.Event(), threading.Event()
    plain = reader.project_summaries

    def slow_full_read(**kwargs: Any) -> list[dict[str, Any]]:
        rows = plain(**kwargs)
        if kwargs.get("within") is None:
            read.set()
            assert release.wait(30)
        return rows

    reader.project_summaries = slow_full_read  # type: ignore[method-assign]
    _set_fingerprint(uow_factory, ids["a"], "f1")
    full = threading.Thread(target=feed.compare)
    full.start()
    assert read.wait(30)  # the full comparison has read a = f1 and waits
    _set_fingerprint(uow_factory, ids["a"], "f2")
    _set_fingerprint(uow_factory, ids["b"], "f2")
    assert feed.compare_within(["/w/a"]) == 1  # a = f2, read after the full read
    release.set()
    full.join(30)

    # The full comparison, which read a = f1 and b = f0, publishes nothing: a never goes back.
    assert [(e["id"], e["project"]["fingerprint"]) for e in _published(hub)] == [(ids["a"], "f2")]
    assert feed.snapshot[ids["a"]]["fingerprint"] == "f2"
    assert feed.compare() == 1  # b, which no comparison had read since its change
    assert _published(hub)[-1]["id"] == ids["b"] and feed.compare() == 0

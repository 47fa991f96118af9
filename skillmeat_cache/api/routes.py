"""The endpoints under ``/api/v1/cache``: each one a read model or a job, nothing else.

Lists answer ``{"items", "total", "skip", "limit"}`` with ``limit`` at most 1000 (default
100): never truncated silently. Reads run in the thread pool on the server's engine;
their JSON is built from the read models' dicts (the models below document it).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from ..errors import NotFoundError, ValidationError
from ..listing import (
    MAX_LIMIT,
    artifact_page,
    marketplace_page,
    project_detail,
    project_page,
    project_path,
    search_page,
)
from ..listing import status_counts as count_status
from ..services import invalidate as invalidate_projects
from ..views import cache_status
from .events import Event, Subscription, TooManySubscribersError
from .guards import CheckedRoute
from .live import LiveCache
from .problems import problem
from .schemas import (
    ArtifactOut,
    InvalidateOut,
    InvalidateRequest,
    JobOut,
    MarketplaceOut,
    Page,
    Problem,
    ProjectDetail,
    ProjectSummary,
    RefreshRequest,
    SearchHit,
    StatusOut,
)

__all__ = ["PREFIX", "router"]

# A bare number counts in the current run (a client that starts from 0).
_EVENT_ID = re.compile(r"(?:(?P<run>[0-9a-f]{1,16})-)?(?P<number>[0-9]{1,18})")

PREFIX = "/api/v1/cache"
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}} for code in (404, 422, 503)
}
# CheckedRoute: unknown query parameters are 422 problems; a stalled event stream is closed.
router = APIRouter(responses=_ERRORS, route_class=CheckedRoute)

Skip = Annotated[int, Query(ge=0, description="How many items to skip.")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size (at most {MAX_LIMIT}).")]
ArtifactType = Literal["skill", "command", "agent", "mcp", "hook"]


async def live(request: Request) -> LiveCache:
    """The LiveCache of the app serving this request (async: a plain function would cost
    every request a trip through the thread pool).
    """
    return request.app.state.skillmeat_cache


Live = Annotated[LiveCache, Depends(live)]


class _Json(JSONResponse):
    """JSON by orjson (several times faster than ``json``, and it embeds stored documents
    given as ``orjson.Fragment`` as they are); JSONResponse's ``json`` for what orjson
    refuses (an integer beyond 64 bits, a key that is not text).
    """

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:
            return super().render(content)


def _read(cache: LiveCache, read: Any, **kwargs: Any) -> Any:
    with cache.serving() as reader, reader.connection() as conn:
        return read(conn, **kwargs)


@router.get("/status", response_model=StatusOut)
def status(cache: Live) -> Any:
    """Counts, where the cache is, its revision and size, the refresh and the watcher."""
    with cache.serving() as reader, reader.connection() as conn:
        where = cache_status(conn)
        counts = count_status(conn)
    body = {key: where[key] for key in ("database", "revision", "head", "size_bytes")}
    body.update(counts, refresh=cache.refresh_state(), watcher=cache.watcher_state(), recovered=cache.recovered,
                heal_error=cache.heal_error)
    return _Json(body)


@router.get("/projects", response_model=Page[ProjectSummary])
def projects(
    cache: Live,
    status: Literal["active", "stale", "error"] | None = None,
    stale: Annotated[bool, Query(description="Only projects not read within the TTL.")] = False,
    skip: Skip = 0,
    limit: Limit = 100,
) -> Any:
    """Projects by name, then path, each with its artifact and outdated counts."""
    older = cache.settings.ttl if stale else None
    return _Json(_read(cache, project_page, skip=skip, limit=limit, status=status, older_than=older))


@router.get("/projects/{project_id}", response_model=ProjectDetail)
def project(cache: Live, project_id: str) -> Any:
    """One project with every one of its artifacts and their metadata."""
    return _Json(_read(cache, project_detail, project_id=project_id, stored_json=True))


@router.get("/artifacts", response_model=Page[ArtifactOut])
def artifacts(
    cache: Live,
    project_id: str | None = None,
    type: ArtifactType | None = None,
    outdated: bool = False,
    tag: str | None = None,
    q: Annotated[str | None, Query(description="Name or description contains this (any case).")] = None,
    sort: Annotated[
        Literal["project", "name", "type", "updated"],
        Query(description="project: project path, type, name (default); name; type, name; updated: newest first."),
    ] = "project",
    skip: Skip = 0,
    limit: Limit = 100,
) -> Any:
    """Artifacts across projects, filtered in SQL."""
    page = _read(
        cache, artifact_page, skip=skip, limit=limit, sort=sort, project=project_id, type=type,
        outdated=outdated, tag=tag, text_=q,
    )
    return _Json(page)


@router.get("/search", response_model=Page[SearchHit])
def search(
    cache: Live,
    q: Annotated[str, Query(min_length=1, description="Searched in names, descriptions and tags.")],
    skip: Skip = 0,
    limit: Limit = 100,
) -> Any:
    """Artifacts whose name, description or tags contain ``q``, best matches first."""
    return _Json(_read(cache, search_page, query=q, skip=skip, limit=limit))


@router.get("/marketplace", response_model=Page[MarketplaceOut])
def marketplace(cache: Live, type: ArtifactType | None = None, skip: Skip = 0, limit: Limit = 100) -> Any:
    """Marketplace entries by type, name and id."""
    return _Json(_read(cache, marketplace_page, skip=skip, limit=limit, type=type))


def _scope(cache: LiveCache, project_id: str | None) -> set[str] | None:
    """What a refresh of ``project_id`` walks: its folder (404 for an unknown id), or everything."""
    return None if project_id is None else {_read(cache, project_path, project_id=project_id)}


@router.post("/refresh", status_code=202, response_model=JobOut)
def refresh(cache: Live, body: RefreshRequest | None = None) -> Any:
    """Start a refresh (or join the one that already covers it); 202 with its job at once."""
    body = body or RefreshRequest()
    scope = _scope(cache, body.project_id)
    job, joined = cache.jobs.submit(scope, force=body.force, reason="request", project_id=body.project_id)
    return _Json(job.to_dict(joined), status_code=202)


@router.get("/refresh/{job_id}", response_model=JobOut)
def refresh_job(cache: Live, job_id: str) -> Any:
    """A refresh job: its state, progress and, once done, what the scan did."""
    job = cache.jobs.get(job_id)
    if job is None:
        raise NotFoundError(f"no refresh job {job_id!r} in this run of the server")
    return _Json(job.to_dict())


@router.post("/invalidate", status_code=202, response_model=InvalidateOut)
def invalidate(cache: Live, body: InvalidateRequest | None = None) -> Any:
    """Mark one project (or all) stale and schedule its refresh."""
    body = body or InvalidateRequest()
    scope = _scope(cache, body.project_id)
    with cache.serving():
        count = invalidate_projects(cache.container.unit_of_work, body.project_id)
    cache.feed.nudge()
    job, joined = cache.jobs.submit(scope, reason="invalidate", project_id=body.project_id, join_running=False)
    return _Json({"invalidated": count, "job": job.to_dict(joined)}, status_code=202)


async def _subscription(
    cache: Live, last_event_id: Annotated[str | None, Header(description="Resume after this event.")] = None
) -> AsyncIterator[Subscription]:
    last = run = None
    if last_event_id is not None:
        found = _EVENT_ID.fullmatch(last_event_id)
        if found is None:
            raise ValidationError("Last-Event-ID", f"must be an event id (RUN-NUMBER), got {last_event_id[:40]!r}")
        run, last = found["run"], int(found["number"])
    try:
        sub = cache.events.subscribe(last, run)
    except TooManySubscribersError as exc:
        raise _Busy(str(exc)) from None
    try:
        yield sub
    finally:
        cache.events.unsubscribe(sub)


class _Busy(Exception):
    pass


def _sse(event: Event, run: str) -> ServerSentEvent:
    return ServerSentEvent(data=event.data, event=event.name, id=f"{run}-{event.id}")


@router.get("/events", response_class=EventSourceResponse, responses={200: {"description": "text/event-stream"}})
async def events(
    cache: Live, sub: Annotated[Subscription, Depends(_subscription)]
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: ``project_updated``, ``refresh_started``, ``refresh_progress``,
    ``refresh_finished`` (and ``reset`` when events were missed). Each has an id; send it
    back as ``Last-Event-ID`` to get what was missed (the last 1,000 events are kept).
    A stream ends after ``Settings.event_stream_max_age`` (EventSource reconnects with its
    ``Last-Event-ID``): a client that reads nothing gives its slot back in bounded time.
    """
    ends = asyncio.get_running_loop().time() + cache.settings.event_stream_max_age
    try:
        for event in sub.replay:
            yield _sse(event, cache.events.run)
        while True:
            try:
                # The timeout around the wait only: it must not span a yield (PEP 789).
                async with asyncio.timeout_at(ends):
                    event = await sub.queue.get()
            except TimeoutError:
                return
            if event is None:  # the server is stopping
                return
            if sub.missed:  # this client fell behind and was dropped: tell it to reload, and end
                reason = "events were dropped: this client fell behind; reconnect"
                yield _sse(Event(cache.events.last_id, "reset", {"reason": reason}), cache.events.run)
                return
            yield _sse(event, cache.events.run)
    finally:
        cache.events.unsubscribe(sub)


def busy_handler(_request: Request, exc: Exception) -> JSONResponse:
    """503 for a subscriber over the cap."""
    return problem(503, "TooManySubscribers", str(exc), retry_after=5)


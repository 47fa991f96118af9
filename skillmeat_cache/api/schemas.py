"""The HTTP API's response and request models: what /openapi.json documents.

The list endpoints build their JSON from the read models' plain dicts (no per-item model
validation on the hot path); a test validates every response against these models, so
the documentation cannot drift from what is sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list: never truncated silently; ask again with ``skip + limit``."""

    items: list[T]
    total: int = Field(description="How many items match, over all pages.")
    skip: int
    limit: int


class ScanWarningOut(BaseModel):
    """Something a scan could not read or store, and where."""

    path: str
    message: str


class ProjectSummary(BaseModel):
    """A cached project with its artifact counts."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    path: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    last_fetched: datetime | None
    status: Literal["active", "stale", "error"]
    error_message: str | None
    fingerprint: str | None
    warnings: list[ScanWarningOut] | None
    artifact_count: int
    outdated_count: int


class ArtifactOut(BaseModel):
    """A cached artifact, with its metadata's description and tags."""

    model_config = ConfigDict(extra="forbid")

    id: str
    project_id: str
    name: str
    type: Literal["skill", "command", "agent", "mcp", "hook"]
    path: str
    source: str | None
    deployed_version: str | None
    upstream_version: str | None
    is_outdated: bool
    local_modified: bool
    created_at: datetime
    updated_at: datetime
    content_hash: str | None
    description: str | None
    tags: list[str]
    project_path: str


class SearchHit(ArtifactOut):
    """An artifact that matches a search, with its rank (0 = best)."""

    rank: int = Field(description="0 name equals the query, 1 name starts with it, 2 name contains it, "
                      "3 a tag equals it, 4 description or a tag contains it.")


class ArtifactDetail(ArtifactOut):
    """An artifact with all of its metadata."""

    aliases: list[str]
    metadata: dict[str, Any] | None = Field(description="The frontmatter document, as read.")


class ProjectDetail(ProjectSummary):
    """A project with every one of its artifacts."""

    artifacts: list[ArtifactDetail]


class MarketplaceOut(BaseModel):
    """A marketplace entry as last fetched."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    type: Literal["skill", "command", "agent", "mcp", "hook"]
    url: str | None
    description: str | None
    version: str | None
    source: str | None
    cached_at: datetime
    data: dict[str, Any] | list[Any] | None


class ProjectCounts(BaseModel):
    """Projects by status."""

    active: int
    stale: int
    error: int


class RefreshState(BaseModel):
    """The background refresh: the running job, when the TTL refresh runs next."""

    running: bool
    job_id: str | None
    last_finished: datetime | None
    next_run: datetime | None
    ttl_seconds: float
    last_error: str | None = Field(
        None, description="What cut the last refresh off (database gone, busy or full); null once one completes."
    )
    last_error_at: datetime | None = None


class WatcherState(BaseModel):
    """The file watcher: ``inotify`` (the kernel's events), ``polling`` (a fallback), or ``off``."""

    mode: Literal["native", "polling", "off"]
    roots: list[str]
    warning: str | None


class Recovered(BaseModel):
    """A damaged default cache this server moved aside and rebuilt (at start or while running)."""

    moved_to: str = Field(description="Where the damaged file is kept (cache.db.corrupt-<UTC timestamp>).")
    at: datetime
    summary: str = Field(description="Rows kept per table, projects rescanned.")


class StatusOut(BaseModel):
    """The cache and the server's background work."""

    database: str = Field(description="Where the cache is (password masked).")
    revision: str | None
    head: str
    size_bytes: int | None
    projects: ProjectCounts
    artifacts: int
    outdated: int
    last_fetched: datetime | None = Field(description="The most recent time a project was read.")
    refresh: RefreshState
    watcher: WatcherState
    recovered: Recovered | None = Field(
        description="The latest rebuild of a damaged default cache by this server (at start or running); else null."
    )
    heal_error: str | None = Field(
        None, description="Why the last heal while running did not rebuild the cache (it waits 60 s before another)."
    )


class RefreshRequest(BaseModel):
    """What to refresh: one project, or (no id) every root and cached project. Strict: a
    JSON string or number where a boolean or id belongs is refused (``"force": "yes"``).
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    project_id: str | None = None
    force: bool = Field(False, description="Re-read projects even when their files look unchanged.")


class InvalidateRequest(BaseModel):
    """What to mark stale: one project, or (no id) all of them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    project_id: str | None = None


class ScanSummaryOut(BaseModel):
    """What a refresh did."""

    projects_seen: int
    projects_unchanged: int
    projects_added: int
    projects_updated: int
    projects_error: int
    projects_stale: int
    artifacts_added: int
    artifacts_updated: int
    artifacts_removed: int
    warnings: list[ScanWarningOut]
    seconds: float


class JobOut(BaseModel):
    """A refresh job: queued, running, retrying (cut off by the database, waiting to run
    again), done or failed; ``joined`` when this request joined it.
    """

    id: str
    state: Literal["queued", "running", "retrying", "done", "failed"]
    project_id: str | None
    force: bool
    reason: str = Field(description="request, invalidate, watcher or ttl.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    projects_done: int
    current: str | None
    summary: ScanSummaryOut | None
    error: str | None
    attempts: int = Field(0, description="Runs so far (more than 1: the database cut earlier ones off).")
    retry_at: datetime | None = Field(None, description="When a retrying job runs again.")
    joined: bool = False


class InvalidateOut(BaseModel):
    """How many projects were marked stale, and the refresh scheduled for them."""

    invalidated: int
    job: JobOut


class Problem(BaseModel):
    """An error (RFC 9457 problem details, ``application/problem+json``)."""

    type: str = Field(description="Our error type, e.g. urn:skillmeat-cache:error:NotFoundError.")
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None

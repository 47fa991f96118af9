"""Abstract repositories, one per aggregate.

A repository reads and writes through the session of the unit of work that built it;
it never commits and never opens sessions. Lists come back in a stable, documented
order and are never cut short unless the caller passes ``limit``.

Orders:
- projects: by ``name``, then ``path``;
- artifacts: by ``project_id``, ``type``, ``name`` (the natural key);
- marketplace entries: by ``type``, ``name``, ``id``.
Text compares by Unicode code point (as Python sorts ``str``: ``"B" < "_" < "a" < "É"``)
on every backend, whatever a PostgreSQL database's collation.

Every implementation (SQL and the fakes) also keeps these rules:
- Every call first writes pending changes of loaded entities (autoflush). When they
  cannot be written, the unit of work rolls back to its last commit (like ``rollback()``),
  the error is raised and the unit of work goes on.
- Arguments are checked next: a key to look up (an id, a path, a name, a cache key)
  that is not text, is blank, or holds a NUL byte or an unpaired surrogate raises
  ValidationError; one longer than ``TEXT_LIMITS`` finds nothing. A ``type`` filter must
  be one of ``ARTIFACT_TYPES``; ``limit`` / ``offset`` are whole numbers, not negative.
- Then a write in a read-only unit of work raises ReadOnlyError, even one that would
  change nothing.
- Search matches substrings ignoring ASCII case only (``A``-``Z`` = ``a``-``z``; any other
  character, accented letters included, matches itself alone); ``%`` and ``_`` are literal.

Entities: within a unit of work one row is one entity (``get`` twice returns the same
object); a change to a returned entity is written by the next call or the commit
(``updated_at`` moves); a bulk write refreshes the entities it changed and forgets deleted
ones; ``rollback()`` reloads them. Assign a new value to change a JSON column.

The fake (``skillmeat_cache.testing``) keeps all of the above, and differs here only:

- It does not cascade through relationships: appending to or removing from
  ``project.artifacts``, or setting ``artifact.meta``, writes nothing; ``ProjectRepository.add``
  takes a new project's artifacts, not their metadata. ``project.artifacts`` of a returned
  project is filled from the rows (read it, do not edit it); ``Artifact.project``,
  ``Artifact.meta`` and ``ArtifactMetadata.artifact`` are not loaded (None, unless the
  artifact came through ``project.artifacts``).
- It writes in-place changes of JSON values too (a session sees them only when flagged
  with ``flag_modified``), and it does not change the primary key of a stored entity
  (NotImplementedError).
- It does not lock: units of work on one store overlap freely; a commit applies the rows it
  wrote over the latest committed state and checks the constraints then (DuplicateError,
  ForeignKeyViolationError). No busy errors, no isolation levels, no SQL.
- After a commit its entities show the committed rows; a session's (``expire_on_commit=False``)
  keep their values, which differs only when another unit of work committed in between.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..models import Artifact, ArtifactMetadata, MarketplaceEntry, Project

__all__ = [
    "ARTIFACT_BULK_COLUMNS",
    "ArtifactRepository",
    "MarketplaceRepository",
    "MetadataRepository",
    "ProjectRepository",
    "ProjectSummary",
]

# Columns a row given to ArtifactRepository.upsert_many / update_many may carry.
# ``is_outdated`` is always derived from the versions, never taken from the row.
ARTIFACT_BULK_COLUMNS: frozenset[str] = frozenset(
    {
        "id",
        "project_id",
        "type",
        "path",
        "name",
        "source",
        "deployed_version",
        "upstream_version",
        "local_modified",
        "content_hash",
        "created_at",
        "updated_at",
        "is_outdated",
    }
)


@dataclass(frozen=True)
class ProjectSummary:
    """A project with the counts a project list shows."""

    project: Project
    artifact_count: int
    outdated_count: int


class ProjectRepository(ABC):
    """Projects: the aggregate root that owns its artifacts."""

    @abstractmethod
    def add(self, project: Project) -> Project:
        """Add a new project (and any artifacts attached to it, with their metadata; the fake
        leaves the metadata out); DuplicateError on a taken path.
        """

    def add_many(self, projects: Iterable[Project]) -> builtins.list[str]:
        """Add new projects (without artifacts); their ids, in order. DuplicateError on a
        taken path. The SQL implementation inserts them in bulk, all or none, and does not
        track them as entities (like the artifacts' bulk paths); this default adds them
        one by one with :meth:`add`.
        """
        return [self.add(project).id for project in projects]

    @abstractmethod
    def get(self, id: str) -> Project | None:
        """The project with this id, or None."""

    @abstractmethod
    def get_by_path(self, path: str) -> Project | None:
        """The project at this absolute path, or None."""

    @abstractmethod
    def list(self, status: str | None = None, limit: int | None = None, offset: int = 0) -> builtins.list[Project]:
        """Projects (all of them unless ``limit`` is given), optionally of one status."""

    @abstractmethod
    def stale(self, ttl: timedelta, now: datetime | None = None) -> builtins.list[Project]:
        """Projects never fetched or last fetched more than ``ttl`` before ``now``."""

    @abstractmethod
    def count(self, status: str | None = None) -> int:
        """How many projects there are (of one status, if given)."""

    @abstractmethod
    def delete(self, id: str) -> None:
        """Delete a project with its artifacts and their metadata; NotFoundError when missing."""

    @abstractmethod
    def summaries(
        self, status: str | None = None, older_than: timedelta | None = None, now: datetime | None = None
    ) -> builtins.list[ProjectSummary]:
        """Projects (ordered like ``list``) with their artifact and outdated counts, from one
        query; ``older_than``: only those never fetched or fetched longer ago than that.
        """

    @abstractmethod
    def touch_many(self, ids: Iterable[str], when: datetime) -> int:
        """Set ``last_fetched`` of these projects to ``when``; returns how many exist."""

    @abstractmethod
    def mark_stale(self, ids: Iterable[str]) -> int:
        """Set these projects' status to ``stale``; returns how many changed."""


class ArtifactRepository(ABC):
    """Artifacts of projects, with bulk paths for scans."""

    @abstractmethod
    def add(self, artifact: Artifact) -> Artifact:
        """Add one artifact; DuplicateError on a taken (project, type, path, name),
        ForeignKeyViolationError when the project does not exist.
        """

    @abstractmethod
    def get(self, id: str) -> Artifact | None:
        """The artifact with this id, or None."""

    @abstractmethod
    def get_by_key(self, project_id: str, type: str, name: str, path: str | None = None) -> Artifact | None:
        """The artifact by its natural key (project, type, path, name), or None; without a
        ``path``, the one of that type and name whose path sorts first (code point order).
        """

    @abstractmethod
    def list_for_project(self, project_id: str, type: str | None = None) -> builtins.list[Artifact]:
        """A project's artifacts, optionally of one type."""

    @abstractmethod
    def list_by_type(self, type: str) -> builtins.list[Artifact]:
        """Every artifact of one type."""

    @abstractmethod
    def outdated(self, project_id: str | None = None) -> builtins.list[Artifact]:
        """Artifacts whose upstream version is newer than the deployed one."""

    @abstractmethod
    def search(
        self,
        text: str,
        project_id: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> builtins.list[Artifact]:
        """Artifacts whose name or metadata description contains ``text``, ignoring
        ASCII case only (see the module notes); empty text matches every artifact.
        """

    @abstractmethod
    def count(self, project_id: str | None = None) -> int:
        """How many artifacts there are (in one project, if given)."""

    @abstractmethod
    def delete(self, id: str) -> None:
        """Delete one artifact and its metadata; NotFoundError when missing."""

    @abstractmethod
    def keys_for_project(self, project_id: str) -> dict[tuple[str, str, str], str]:
        """``{(type, path, name): id}`` of a project's artifacts, without loading entities."""

    @abstractmethod
    def delete_many(self, ids: Iterable[str]) -> int:
        """Delete these artifacts (and their metadata); unknown ids are skipped. Returns
        how many were deleted.
        """

    @abstractmethod
    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert or update artifacts keyed by ``(project_id, type, path, name)`` (a row
        without ``path`` gets ``default_artifact_path(type, name)``).

        Each row is the complete state of the columns it carries (see
        ``ARTIFACT_BULK_COLUMNS``); columns it does not carry keep their stored value.
        An existing row keeps its ``id`` and ``created_at``; a row identical to the
        stored one is not written (its ``updated_at`` stays); within one call the last
        row for a key wins; ``is_outdated`` is derived. Returns how many rows were
        inserted or changed.
        """

    @abstractmethod
    def upsert_many_ids(self, rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, ...], str]:
        """:meth:`upsert_many`, returning ``{(project_id, type, name, path): id}`` (the
        unique key, ``rows.ARTIFACT_KEY``) of the rows it inserted or changed, as the
        statement wrote them (``RETURNING``: nothing is read back). A row identical to the
        stored one is not written, so it is not in the result.
        """

    @abstractmethod
    def update_many(self, changes: Iterable[Mapping[str, Any]]) -> int:
        """Apply changes, each a mapping holding ``id`` and the columns to set.

        ``is_outdated`` is re-derived from the stored and new versions and
        ``updated_at`` moves; unknown ids and changes that change nothing are skipped.
        Every value of a change, ``id`` included, is checked as a value to store (an id
        over ``TEXT_LIMITS`` raises ValidationError, unlike a lookup key).
        Returns how many rows were updated.
        """


class MarketplaceRepository(ABC):
    """Entries fetched from marketplaces."""

    @abstractmethod
    def add(self, entry: MarketplaceEntry) -> MarketplaceEntry:
        """Add one entry; DuplicateError on a taken id."""

    @abstractmethod
    def get(self, id: str) -> MarketplaceEntry | None:
        """The entry with this id, or None."""

    @abstractmethod
    def list(self, type: str | None = None) -> builtins.list[MarketplaceEntry]:
        """Every entry, optionally of one type."""

    @abstractmethod
    def search(self, text: str) -> builtins.list[MarketplaceEntry]:
        """Entries whose name or description contains ``text``, ignoring ASCII case only;
        empty text matches every entry.
        """

    @abstractmethod
    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert or replace entries keyed by ``id``; ``cached_at`` becomes now unless
        given. Returns how many rows were inserted or changed.
        """

    @abstractmethod
    def purge_older_than(self, age: timedelta, now: datetime | None = None) -> int:
        """Delete entries cached more than ``age`` before ``now``; returns how many."""


class MetadataRepository(ABC):
    """Artifact metadata (frontmatter, description, tags, aliases) and the cache's own
    key/value store.
    """

    @abstractmethod
    def get(self, artifact_id: str) -> ArtifactMetadata | None:
        """The metadata of one artifact, or None."""

    @abstractmethod
    def set(
        self,
        artifact_id: str,
        *,
        data: Mapping[str, Any] | None,
        description: str | None = None,
        tags: Sequence[str] = (),
        aliases: Sequence[str] = (),
    ) -> ArtifactMetadata:
        """Insert or replace an artifact's metadata; ForeignKeyViolationError when the
        artifact does not exist. ``tags`` / ``aliases``: lists of text (None: empty; a
        single text is refused); ``data``: a mapping or None.
        """

    @abstractmethod
    def get_many(self, artifact_ids: Iterable[str]) -> dict[str, ArtifactMetadata]:
        """The metadata of these artifacts, by artifact id (missing ones left out)."""

    @abstractmethod
    def set_many(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert or replace the metadata of many artifacts.

        Each row holds ``artifact_id`` and the complete metadata: ``data``,
        ``description``, ``tags``, ``aliases`` (missing keys mean None / empty). Rows
        identical to what is stored are not written; the last row for an artifact wins.
        Returns how many were inserted or changed; ForeignKeyViolationError when an
        artifact does not exist.
        """

    @abstractmethod
    def artifacts_with_tag(self, tag: str) -> builtins.list[Artifact]:
        """Artifacts tagged exactly ``tag`` (case-sensitive, no substring match)."""

    @abstractmethod
    def get_value(self, key: str) -> str | None:
        """The cache value stored under ``key``, or None."""

    @abstractmethod
    def set_value(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing any previous value."""

    @abstractmethod
    def delete_value(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""

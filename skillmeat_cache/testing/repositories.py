"""The fake repositories: the four contracts of :mod:`skillmeat_cache.repositories.base`
as queries and writes over the rows of a :class:`~skillmeat_cache.testing.FakeUnitOfWork`.
"""

from __future__ import annotations

import builtins
import functools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError
from ..models import Artifact, ArtifactMetadata, CacheMetadata, MarketplaceEntry, Project
from ..repositories import base
from ..repositories import rows as shared  # the validators the SQL repositories use too
from ..values import PROJECT_STATUSES, check_choice, check_text, ensure_utc, new_id, utcnow
from .tables import COLUMNS, ORDER, UPSERT_KEEPS, Row, check_integrity, copy_value, natural_key

if TYPE_CHECKING:
    from . import FakeUnitOfWork

__all__ = ["FakeArtifactRepository", "FakeMarketplaceRepository", "FakeMetadataRepository", "FakeProjectRepository"]


def _cutoff(age: timedelta, now: datetime | None) -> datetime:
    return (ensure_utc(now, "now") if now is not None else utcnow()) - age


def _contains(haystack: str | None, needle: str) -> bool:
    return not needle or (haystack is not None and needle in shared.ascii_lower(haystack))


class _FakeRepository:
    """Every public method of a subclass first writes pending entity changes (autoflush)."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, method in builtins.list(vars(cls).items()):
            if callable(method) and not name.startswith("_"):
                setattr(cls, name, _autoflushed(method))

    def _rows(self, table: str) -> dict[Any, Row]:
        return self._uow._tables[table]

    def _get(self, table: str, field: str, key: Any) -> Any:
        row = self._rows(table).get(shared.lookup_key(field, key))
        return None if row is None else self._uow._entity(table, row)

    def _find(self, table: str, where: Callable[[Row], Any], limit: Any = None, offset: Any = 0) -> builtins.list[Any]:
        """Entities of the rows ``where`` accepts, in the table's list order."""
        rows = sorted(filter(where, self._rows(table).values()), key=ORDER[table])
        limit, offset = shared.page_bounds(limit, offset)
        return [self._uow._entity(table, row) for row in rows[offset : None if limit is None else offset + limit]]

    def _delete_one(self, table: str, id: str) -> None:
        shared.lookup_key("id", id)
        with self._uow._writing() as tables:
            if id not in tables[table]:
                raise NotFoundError(f"no {table[:-1]} with id {id!r}")
            self._uow._delete(table, id)


def _autoflushed(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: _FakeRepository, *args: Any, **kwargs: Any) -> Any:
        self._uow._autoflush()
        return method(self, *args, **kwargs)

    return call


class FakeProjectRepository(_FakeRepository, base.ProjectRepository):
    """Projects in memory (see :class:`FakeUnitOfWork`)."""

    def add(self, project: Project) -> Project:  # noqa: D102
        return self._uow._add(project, Project)  # type: ignore[no-any-return]

    def get(self, id: str) -> Project | None:  # noqa: D102
        return self._get("projects", "id", id)  # type: ignore[no-any-return]

    def get_by_path(self, path: str) -> Project | None:  # noqa: D102
        shared.lookup_key("path", path)
        return next(iter(self._find("projects", lambda r: r["path"] == path)), None)

    def list(self, status: str | None = None, limit: int | None = None, offset: int = 0) -> builtins.list[Project]:  # noqa: D102
        if status is not None:
            check_choice("status", status, PROJECT_STATUSES)
        return self._find("projects", lambda r: status in (None, r["status"]), limit, offset)

    def stale(self, ttl: timedelta, now: datetime | None = None) -> builtins.list[Project]:  # noqa: D102
        return [summary.project for summary in self.summaries(older_than=ttl, now=now)]

    def count(self, status: str | None = None) -> int:  # noqa: D102
        return len(self.list(status))

    def delete(self, id: str) -> None:  # noqa: D102
        self._delete_one("projects", id)

    def summaries(  # noqa: D102
        self, status: str | None = None, older_than: timedelta | None = None, now: datetime | None = None
    ) -> builtins.list[base.ProjectSummary]:
        projects = self.list(status)
        if older_than is not None:
            cutoff = _cutoff(older_than, now)
            projects = [p for p in projects if p.last_fetched is None or p.last_fetched < cutoff]
        artifacts = self._rows("artifacts").values()
        counts = Counter(row["project_id"] for row in artifacts)
        outdated = Counter(row["project_id"] for row in artifacts if row["is_outdated"])
        return [base.ProjectSummary(p, counts[p.id], outdated[p.id]) for p in projects]

    def _update(self, ids: Iterable[str], values: Row, skip: Callable[[Row], bool] = lambda row: False) -> int:
        wanted = shared.lookup_keys("id", ids)
        with self._uow._writing() as tables:
            rows = [tables["projects"][key] for key in wanted if key in tables["projects"]]
            rows = [row for row in rows if not skip(row)]
            for row in rows:
                self._uow._put("projects", {**row, **values})
        return len(rows)

    def touch_many(self, ids: Iterable[str], when: datetime) -> int:  # noqa: D102
        when = ensure_utc(when, "when")
        return self._update(ids, {"last_fetched": when, "updated_at": utcnow()})

    def mark_stale(self, ids: Iterable[str]) -> int:  # noqa: D102
        return self._update(ids, {"status": "stale", "updated_at": utcnow()}, lambda row: row["status"] == "stale")


class FakeArtifactRepository(_FakeRepository, base.ArtifactRepository):
    """Artifacts in memory (see :class:`FakeUnitOfWork`); the lists are searches for ``""``."""

    def add(self, artifact: Artifact) -> Artifact:  # noqa: D102
        return self._uow._add(artifact, Artifact)  # type: ignore[no-any-return]

    def get(self, id: str) -> Artifact | None:  # noqa: D102
        return self._get("artifacts", "id", id)  # type: ignore[no-any-return]

    def get_by_key(self, project_id: str, type: str, name: str, path: str | None = None) -> Artifact | None:  # noqa: D102
        shared.lookup_key("project_id", project_id)
        shared.artifact_type_filter(type)
        shared.lookup_key("name", name)
        if path is not None:
            shared.lookup_key("path", path)
        found = [a for a in self.search("", project_id, type) if a.name == name and path in (None, a.path)]
        return found[0] if found else None

    def list_for_project(self, project_id: str, type: str | None = None) -> builtins.list[Artifact]:  # noqa: D102
        shared.lookup_key("project_id", project_id)
        return self.search("", project_id, type)

    def list_by_type(self, type: str) -> builtins.list[Artifact]:  # noqa: D102
        return self.search("", type=shared.artifact_type_filter(type))

    def outdated(self, project_id: str | None = None) -> builtins.list[Artifact]:  # noqa: D102
        return [artifact for artifact in self.search("", project_id) if artifact.is_outdated]

    def search(  # noqa: D102
        self,
        text: str,
        project_id: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> builtins.list[Artifact]:
        shared.search_filters(text, project_id, type)
        needle, metadata = shared.ascii_lower(text), self._rows("artifact_metadata")

        def matches(row: Row) -> bool:
            described = row["id"] in metadata and _contains(metadata[row["id"]]["description"], needle)
            found = _contains(row["name"], needle) or described
            return found and project_id in (None, row["project_id"]) and type in (None, row["type"])

        return self._find("artifacts", matches, limit, offset)

    def count(self, project_id: str | None = None) -> int:  # noqa: D102
        return len(self.search("", project_id))

    def delete(self, id: str) -> None:  # noqa: D102
        self._delete_one("artifacts", id)

    def keys_for_project(self, project_id: str) -> dict[tuple[str, str, str], str]:  # noqa: D102
        return {(a.type, a.path, a.name): a.id for a in self.list_for_project(project_id)}

    def delete_many(self, ids: Iterable[str]) -> int:  # noqa: D102
        wanted = shared.lookup_keys("id", ids)
        with self._uow._writing() as tables:
            found = [key for key in wanted if key in tables["artifacts"]]
            for key in found:
                self._uow._delete("artifacts", key)
        return len(found)

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        statements: dict[tuple[str, ...], builtins.list[Row]] = {}  # as the SQL path: one per set of columns
        for row in shared.artifact_rows(rows):
            statements.setdefault(tuple(row), []).append(row)
        with self._uow._writing() as tables:
            stored = {natural_key(row): row for row in tables["artifacts"].values()}
            now, changed = utcnow(), 0
            for group in statements.values():
                changed += sum(self._upsert(stored.get(natural_key(row)), row, now) for row in group)
                check_integrity(tables)  # a statement's foreign keys are checked at its end
        return changed

    def _upsert(self, stored: Row | None, row: Row, now: datetime) -> bool:
        versions = None if stored is None else (stored["deployed_version"], stored["upstream_version"])
        row["is_outdated"] = shared.outdated_for(row, versions)
        if stored is None:
            new = {**dict.fromkeys(COLUMNS["artifacts"]), "local_modified": False, **row}
            new["id"] = new["id"] or new_id()
            new["created_at"], new["updated_at"] = new["created_at"] or now, new["updated_at"] or now
            self._uow._put("artifacts", new, new=True)
            return True
        diff = {c: v for c, v in row.items() if c not in UPSERT_KEEPS and stored[c] != v}
        if diff:
            self._uow._put("artifacts", {**stored, **diff, "updated_at": row.get("updated_at", now)})
        return bool(diff)

    def update_many(self, changes: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = shared.merge_changes(changes)
        now, updated = utcnow(), 0
        with self._uow._writing() as tables:
            for change in prepared:
                if (stored := tables["artifacts"].get(change["id"])) is None:
                    continue
                change["is_outdated"] = shared.outdated_for(
                    change, (stored["deployed_version"], stored["upstream_version"])
                )
                if diff := {c: v for c, v in change.items() if c not in ("id", "updated_at") and stored[c] != v}:
                    self._uow._put("artifacts", {**stored, **diff, "updated_at": change.get("updated_at", now)})
                    check_integrity(tables)  # one statement per change: the first failing one raises
                    updated += 1
        return updated


class FakeMarketplaceRepository(_FakeRepository, base.MarketplaceRepository):
    """Marketplace entries in memory (see :class:`FakeUnitOfWork`)."""

    def add(self, entry: MarketplaceEntry) -> MarketplaceEntry:  # noqa: D102
        return self._uow._add(entry, MarketplaceEntry)  # type: ignore[no-any-return]

    def get(self, id: str) -> MarketplaceEntry | None:  # noqa: D102
        return self._get("marketplace", "id", id)  # type: ignore[no-any-return]

    def list(self, type: str | None = None) -> builtins.list[MarketplaceEntry]:  # noqa: D102
        if type is not None:
            shared.artifact_type_filter(type)
        return self._find("marketplace", lambda r: type in (None, r["type"]))

    def search(self, text: str) -> builtins.list[MarketplaceEntry]:  # noqa: D102
        needle = shared.ascii_lower(check_text("text", text))
        return self._find("marketplace", lambda r: _contains(r["name"], needle) or _contains(r["description"], needle))

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = shared.marketplace_rows(rows, utcnow())
        with self._uow._writing() as tables:
            for row in prepared:
                stored = tables["marketplace"].get(row["id"]) or dict.fromkeys(COLUMNS["marketplace"])
                self._uow._put("marketplace", {**stored, **row})
        return len(prepared)  # like the SQL upsert (no WHERE on its DO UPDATE): every row counts

    def purge_older_than(self, age: timedelta, now: datetime | None = None) -> int:  # noqa: D102
        cutoff = _cutoff(age, now)
        with self._uow._writing() as tables:
            old = [key for key, row in tables["marketplace"].items() if row["cached_at"] < cutoff]
            for key in old:
                self._uow._delete("marketplace", key)
        return len(old)


class FakeMetadataRepository(_FakeRepository, base.MetadataRepository):
    """Artifact metadata and the cache key/value store in memory (see :class:`FakeUnitOfWork`)."""

    def get(self, artifact_id: str) -> ArtifactMetadata | None:  # noqa: D102
        return self._get("artifact_metadata", "artifact_id", artifact_id)  # type: ignore[no-any-return]

    def set(  # noqa: D102
        self,
        artifact_id: str,
        *,
        data: Mapping[str, Any] | None,
        description: str | None = None,
        tags: Sequence[str] = (),
        aliases: Sequence[str] = (),
    ) -> ArtifactMetadata:
        values = shared.metadata_values(data, description, tags, aliases)
        new = ArtifactMetadata(artifact_id=artifact_id, **values)  # the model validates
        row = {column: copy_value(getattr(new, column)) for column in COLUMNS["artifact_metadata"]}
        with self._uow._writing():
            self._uow._put("artifact_metadata", row)
        return self._uow._entity("artifact_metadata", row)  # type: ignore[no-any-return]

    def get_many(self, artifact_ids: Iterable[str]) -> dict[str, ArtifactMetadata]:  # noqa: D102
        found = {key: self.get(key) for key in shared.lookup_keys("artifact_id", artifact_ids)}
        return {key: meta for key, meta in found.items() if meta is not None}

    def set_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = shared.metadata_rows(rows)
        with self._uow._writing() as tables:
            changed = [row for row in prepared if tables["artifact_metadata"].get(row["artifact_id"]) != row]
            for row in changed:
                self._uow._put("artifact_metadata", row)
        return len(changed)

    def artifacts_with_tag(self, tag: str) -> builtins.list[Artifact]:  # noqa: D102
        shared.lookup_key("tag", tag)
        tagged = {key for key, row in self._rows("artifact_metadata").items() if tag in row["tags"]}
        return self._find("artifacts", lambda r: r["id"] in tagged)

    def get_value(self, key: str) -> str | None:  # noqa: D102
        row = self._rows("cache_metadata").get(shared.lookup_key("key", key))
        return None if row is None else row["value"]  # type: ignore[no-any-return]

    def set_value(self, key: str, value: str) -> None:  # noqa: D102
        probe = CacheMetadata(key=key, value=value)  # validates both
        with self._uow._writing() as tables:
            stored = tables["cache_metadata"].get(key)
            if stored is None:
                self._uow._put("cache_metadata", {"key": key, "value": value, "updated_at": probe.updated_at})
            elif stored["value"] != value:
                self._uow._put("cache_metadata", {**stored, "value": value, "updated_at": utcnow()})

    def delete_value(self, key: str) -> bool:  # noqa: D102
        shared.lookup_key("key", key)
        with self._uow._writing() as tables:
            found = key in tables["cache_metadata"]
            if found:
                self._uow._delete("cache_metadata", key)
        return found

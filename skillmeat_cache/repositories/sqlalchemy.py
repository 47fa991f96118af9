"""SQLAlchemy implementations of the repositories.

Each takes the unit of work's session. Driver errors are mapped to our exceptions at
every public method. ``add``/``set`` flush, so constraint errors surface at the call
that caused them. The bulk paths are Core statements executed with many parameter
sets (``INSERT ... ON CONFLICT DO UPDATE`` per dialect); they bypass the ORM unit of
work, so they flush pending objects first and expire the entities they changed.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from ..errors import NotFoundError, ValidationError, map_db_error
from ..models import (
    PROJECT_STATUSES,
    Artifact,
    ArtifactMetadata,
    ArtifactTag,
    CacheMetadata,
    MarketplaceEntry,
    Project,
    check_text,
    ensure_utc,
    new_id,
    utcnow,
)
from . import base
from .rows import ARTIFACT_KEY, artifact_rows, marketplace_rows, merge_changes, metadata_rows, outdated_for

__all__ = [
    "SqlAlchemyArtifactRepository",
    "SqlAlchemyMarketplaceRepository",
    "SqlAlchemyMetadataRepository",
    "SqlAlchemyProjectRepository",
]

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

ARTIFACTS = Artifact.__table__
MARKETPLACE = MarketplaceEntry.__table__
PROJECTS = Project.__table__
METADATA = ArtifactMetadata.__table__
TAGS = ArtifactTag.__table__
# Ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits.
_CHUNK = 500


def _translated(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            mapped = map_db_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    return wrapper  # type: ignore[return-value]


def _translate_errors(cls: C) -> C:
    """Wrap every public method so driver errors come out as our exceptions."""
    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_"):
            setattr(cls, name, _translated(value))
    return cls


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _page(stmt: Select[Any], limit: int | None, offset: int) -> Select[Any]:
    if limit is not None:
        if limit < 0:
            raise ValidationError("limit", "must not be negative")
        stmt = stmt.limit(limit)
    if offset:
        if offset < 0:
            raise ValidationError("offset", "must not be negative")
        stmt = stmt.offset(offset)
    return stmt


def _insert_for(session: Session) -> Callable[..., Any]:
    # Imported here: the PostgreSQL dialect costs ~25 ms to import, which SQLite users skip.
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _group_by_columns(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return groups


def _expire_loaded(session: Session, model: type, ids: Iterable[str] | None = None) -> None:
    """Expire loaded entities of ``model`` (all, or those with these ids) after a bulk
    statement changed their rows behind the ORM's back.
    """
    wanted = None if ids is None else set(ids)
    for obj in builtins.list(session.identity_map.values()):
        if isinstance(obj, model) and (wanted is None or obj.id in wanted):
            session.expire(obj)


def _expire_collections(session: Session) -> None:
    """Loaded ``Project.artifacts`` / ``Artifact.meta`` may miss rows a bulk path wrote."""
    for obj in builtins.list(session.identity_map.values()):
        if isinstance(obj, Project):
            session.expire(obj, ["artifacts"])
        elif isinstance(obj, Artifact):
            session.expire(obj, ["meta"])


def _artifact_order() -> tuple[Any, ...]:
    return (Artifact.project_id, Artifact.type, Artifact.name)


@_translate_errors
class SqlAlchemyProjectRepository(base.ProjectRepository):
    """Projects in a SQL database."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, project: Project) -> Project:  # noqa: D102
        with self._session.begin_nested():
            self._session.add(project)
        return project

    def get(self, id: str) -> Project | None:  # noqa: D102
        return self._session.get(Project, id)

    def get_by_path(self, path: str) -> Project | None:  # noqa: D102
        return self._session.scalars(select(Project).where(Project.path == path)).one_or_none()

    def _where_status(self, stmt: Select[Any], status: str | None) -> Select[Any]:
        if status is None:
            return stmt
        if status not in PROJECT_STATUSES:
            raise ValidationError("status", f"must be one of {', '.join(PROJECT_STATUSES)}, got {status!r}")
        return stmt.where(Project.status == status)

    def list(  # noqa: D102
        self, status: str | None = None, limit: int | None = None, offset: int = 0
    ) -> builtins.list[Project]:
        stmt = self._where_status(select(Project), status).order_by(Project.name, Project.path)
        return builtins.list(self._session.scalars(_page(stmt, limit, offset)))

    def stale(self, ttl: timedelta, now: datetime | None = None) -> builtins.list[Project]:  # noqa: D102
        cutoff = (ensure_utc(now, "now") if now is not None else utcnow()) - ttl
        stmt = (
            select(Project)
            .where(or_(Project.last_fetched.is_(None), Project.last_fetched < cutoff))
            .order_by(Project.name, Project.path)
        )
        return builtins.list(self._session.scalars(stmt))

    def count(self, status: str | None = None) -> int:  # noqa: D102
        stmt = self._where_status(select(func.count()).select_from(Project), status)
        return int(self._session.scalar(stmt) or 0)

    def delete(self, id: str) -> None:  # noqa: D102
        project = self._session.get(Project, id)
        if project is None:
            raise NotFoundError(f"no project with id {id!r}")
        self._session.delete(project)
        self._session.flush()

    def summaries(  # noqa: D102
        self, status: str | None = None, older_than: timedelta | None = None, now: datetime | None = None
    ) -> builtins.list[base.ProjectSummary]:
        counts = (
            select(
                ARTIFACTS.c.project_id,
                func.count().label("artifact_count"),
                func.sum(case((ARTIFACTS.c.is_outdated, 1), else_=0)).label("outdated_count"),
            )
            .group_by(ARTIFACTS.c.project_id)
            .subquery()
        )
        stmt = select(
            Project, func.coalesce(counts.c.artifact_count, 0), func.coalesce(counts.c.outdated_count, 0)
        ).outerjoin(counts, counts.c.project_id == Project.id)
        stmt = self._where_status(stmt, status)
        if older_than is not None:
            cutoff = (ensure_utc(now, "now") if now is not None else utcnow()) - older_than
            stmt = stmt.where(or_(Project.last_fetched.is_(None), Project.last_fetched < cutoff))
        stmt = stmt.order_by(Project.name, Project.path)
        return [base.ProjectSummary(p, int(n), int(o)) for p, n, o in self._session.execute(stmt)]

    def _update_ids(self, ids: Iterable[str], values: dict[str, Any], where: Any = None) -> int:
        wanted = builtins.list(dict.fromkeys(ids))
        if not wanted:
            return 0
        self._session.flush()
        changed = 0
        with self._session.begin_nested():
            for chunk in _chunks(wanted):
                stmt = update(PROJECTS).where(PROJECTS.c.id.in_(chunk)).values(values)
                if where is not None:
                    stmt = stmt.where(where)
                changed += max(self._session.execute(stmt).rowcount, 0)
        _expire_loaded(self._session, Project, wanted)
        return changed

    def touch_many(self, ids: Iterable[str], when: datetime) -> int:  # noqa: D102
        when = ensure_utc(when, "when")
        return self._update_ids(ids, {"last_fetched": when, "updated_at": utcnow()})

    def mark_stale(self, ids: Iterable[str]) -> int:  # noqa: D102
        return self._update_ids(ids, {"status": "stale", "updated_at": utcnow()}, PROJECTS.c.status != "stale")


@_translate_errors
class SqlAlchemyArtifactRepository(base.ArtifactRepository):
    """Artifacts in a SQL database."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, artifact: Artifact) -> Artifact:  # noqa: D102
        with self._session.begin_nested():
            self._session.add(artifact)
        return artifact

    def get(self, id: str) -> Artifact | None:  # noqa: D102
        return self._session.get(Artifact, id)

    def get_by_key(self, project_id: str, type: str, name: str) -> Artifact | None:  # noqa: D102
        stmt = select(Artifact).where(Artifact.project_id == project_id, Artifact.type == type, Artifact.name == name)
        return self._session.scalars(stmt).one_or_none()

    def list_for_project(self, project_id: str, type: str | None = None) -> builtins.list[Artifact]:  # noqa: D102
        stmt = select(Artifact).where(Artifact.project_id == project_id)
        if type is not None:
            stmt = stmt.where(Artifact.type == type)
        return builtins.list(self._session.scalars(stmt.order_by(*_artifact_order())))

    def list_by_type(self, type: str) -> builtins.list[Artifact]:  # noqa: D102
        stmt = select(Artifact).where(Artifact.type == type).order_by(*_artifact_order())
        return builtins.list(self._session.scalars(stmt))

    def outdated(self, project_id: str | None = None) -> builtins.list[Artifact]:  # noqa: D102
        stmt = select(Artifact).where(Artifact.is_outdated.is_(True))
        if project_id is not None:
            stmt = stmt.where(Artifact.project_id == project_id)
        return builtins.list(self._session.scalars(stmt.order_by(*_artifact_order())))

    def search(  # noqa: D102
        self,
        text: str,
        project_id: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> builtins.list[Artifact]:
        check_text("text", text)
        stmt = select(Artifact)
        if text:
            stmt = stmt.outerjoin(ArtifactMetadata, ArtifactMetadata.artifact_id == Artifact.id).where(
                or_(
                    Artifact.name.icontains(text, autoescape=True),
                    ArtifactMetadata.description.icontains(text, autoescape=True),
                )
            )
        if project_id is not None:
            stmt = stmt.where(Artifact.project_id == project_id)
        if type is not None:
            stmt = stmt.where(Artifact.type == type)
        stmt = _page(stmt.order_by(*_artifact_order()), limit, offset)
        return builtins.list(self._session.scalars(stmt))

    def count(self, project_id: str | None = None) -> int:  # noqa: D102
        stmt = select(func.count()).select_from(Artifact)
        if project_id is not None:
            stmt = stmt.where(Artifact.project_id == project_id)
        return int(self._session.scalar(stmt) or 0)

    def delete(self, id: str) -> None:  # noqa: D102
        artifact = self._session.get(Artifact, id)
        if artifact is None:
            raise NotFoundError(f"no artifact with id {id!r}")
        self._session.delete(artifact)
        self._session.flush()

    def keys_for_project(self, project_id: str) -> dict[tuple[str, str], str]:  # noqa: D102
        self._session.flush()
        stmt = select(ARTIFACTS.c.type, ARTIFACTS.c.name, ARTIFACTS.c.id).where(ARTIFACTS.c.project_id == project_id)
        return {(type_, name): id_ for type_, name, id_ in self._session.execute(stmt)}

    def delete_many(self, ids: Iterable[str]) -> int:  # noqa: D102
        wanted = builtins.list(dict.fromkeys(ids))
        if not wanted:
            return 0
        self._session.flush()
        deleted = 0
        with self._session.begin_nested():
            for chunk in _chunks(wanted):
                deleted += max(self._session.execute(delete(ARTIFACTS).where(ARTIFACTS.c.id.in_(chunk))).rowcount, 0)
        gone = set(wanted)
        for obj in builtins.list(self._session.identity_map.values()):
            if (isinstance(obj, Artifact) and obj.id in gone) or (
                isinstance(obj, (ArtifactMetadata, ArtifactTag)) and obj.artifact_id in gone
            ):
                self._session.expunge(obj)
        _expire_collections(self._session)
        return deleted

    # -- bulk paths -------------------------------------------------------------

    def _stored_versions(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], tuple[Any, Any]]:
        # By project id, not by a (project_id, type, name) tuple IN: SQLite answers a row-value
        # IN list with a full table scan, which made every scan quadratic in the cache size.
        wanted = set(keys)
        stored: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        projects = builtins.list(dict.fromkeys(key[0] for key in wanted))
        cols = (ARTIFACTS.c.project_id, ARTIFACTS.c.type, ARTIFACTS.c.name)
        for chunk in _chunks(projects):
            stmt = select(*cols, ARTIFACTS.c.deployed_version, ARTIFACTS.c.upstream_version).where(
                ARTIFACTS.c.project_id.in_(chunk)
            )
            for project_id, type_, name, deployed, upstream in self._session.execute(stmt):
                if (project_id, type_, name) in wanted:
                    stored[(project_id, type_, name)] = (deployed, upstream)
        return stored

    def _expire_artifacts(self, ids: Iterable[str] | None = None) -> None:
        _expire_loaded(self._session, Artifact, ids)
        _expire_collections(self._session)

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = artifact_rows(rows)
        if not prepared:
            return 0
        self._session.flush()
        partial = [r for r in prepared if "deployed_version" not in r or "upstream_version" not in r]
        stored = self._stored_versions((r["project_id"], r["type"], r["name"]) for r in partial) if partial else {}
        now = utcnow()
        for row in prepared:
            row["is_outdated"] = outdated_for(row, stored.get((row["project_id"], row["type"], row["name"])))
            row.setdefault("id", new_id())
            row.setdefault("created_at", now)
            row.setdefault("updated_at", now)
        with self._session.begin_nested():
            changed = self._upsert(prepared)
        self._expire_artifacts()
        return changed

    def _upsert(self, prepared: builtins.list[dict[str, Any]]) -> int:
        insert = _insert_for(self._session)
        changed = 0
        for columns, group in _group_by_columns(prepared).items():
            stmt = insert(ARTIFACTS)
            compared = [c for c in columns if c not in ("id", "created_at", "updated_at", *ARTIFACT_KEY)]
            if compared:
                stmt = stmt.on_conflict_do_update(
                    index_elements=builtins.list(ARTIFACT_KEY),
                    set_={**{c: stmt.excluded[c] for c in compared}, "updated_at": stmt.excluded.updated_at},
                    where=or_(*(ARTIFACTS.c[c].is_distinct_from(stmt.excluded[c]) for c in compared)),
                )
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=builtins.list(ARTIFACT_KEY))
            result = self._session.execute(stmt.execution_options(preserve_rowcount=True), group)
            changed += max(result.rowcount, 0)
        return changed

    def update_many(self, changes: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = merge_changes(changes)
        if not prepared:
            return 0
        self._session.flush()
        stored: dict[str, tuple[Any, Any]] = {}
        ids = builtins.list(dict.fromkeys(c["id"] for c in prepared))
        for chunk in _chunks(ids):
            stmt = select(ARTIFACTS.c.id, ARTIFACTS.c.deployed_version, ARTIFACTS.c.upstream_version).where(
                ARTIFACTS.c.id.in_(chunk)
            )
            for id_, deployed, upstream in self._session.execute(stmt):
                stored[id_] = (deployed, upstream)
        now = utcnow()
        known = []
        for change in prepared:
            if change["id"] not in stored:
                continue
            change["is_outdated"] = outdated_for(change, stored[change["id"]])
            change.setdefault("updated_at", now)
            known.append(change)
        updated = 0
        with self._session.begin_nested():
            for columns, group in _group_by_columns(known).items():
                compared = [c for c in columns if c not in ("id", "updated_at")]
                where: ColumnElement[bool] = ARTIFACTS.c.id == bindparam("b_id")
                if compared:
                    where = and_(where, or_(*(ARTIFACTS.c[c].is_distinct_from(bindparam(f"b_{c}")) for c in compared)))
                stmt = (
                    update(ARTIFACTS).where(where).values({c: bindparam(f"b_{c}") for c in [*compared, "updated_at"]})
                )
                params = [{f"b_{k}": v for k, v in change.items()} for change in group]
                result = self._session.execute(stmt.execution_options(preserve_rowcount=True), params)
                updated += max(result.rowcount, 0)
        self._expire_artifacts(c["id"] for c in known)
        return updated


@_translate_errors
class SqlAlchemyMarketplaceRepository(base.MarketplaceRepository):
    """Marketplace entries in a SQL database."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, entry: MarketplaceEntry) -> MarketplaceEntry:  # noqa: D102
        with self._session.begin_nested():
            self._session.add(entry)
        return entry

    def get(self, id: str) -> MarketplaceEntry | None:  # noqa: D102
        return self._session.get(MarketplaceEntry, id)

    def _ordered(self, stmt: Select[Any]) -> builtins.list[MarketplaceEntry]:
        stmt = stmt.order_by(MarketplaceEntry.type, MarketplaceEntry.name, MarketplaceEntry.id)
        return builtins.list(self._session.scalars(stmt))

    def list(self, type: str | None = None) -> builtins.list[MarketplaceEntry]:  # noqa: D102
        stmt = select(MarketplaceEntry)
        if type is not None:
            stmt = stmt.where(MarketplaceEntry.type == type)
        return self._ordered(stmt)

    def search(self, text: str) -> builtins.list[MarketplaceEntry]:  # noqa: D102
        check_text("text", text)
        stmt = select(MarketplaceEntry)
        if text:
            stmt = stmt.where(
                or_(
                    MarketplaceEntry.name.icontains(text, autoescape=True),
                    MarketplaceEntry.description.icontains(text, autoescape=True),
                )
            )
        return self._ordered(stmt)

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = marketplace_rows(rows, utcnow())
        if not prepared:
            return 0
        self._session.flush()
        insert = _insert_for(self._session)
        changed = 0
        with self._session.begin_nested():
            for columns, group in _group_by_columns(prepared).items():
                stmt = insert(MARKETPLACE)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["id"], set_={c: stmt.excluded[c] for c in columns if c != "id"}
                )
                result = self._session.execute(stmt.execution_options(preserve_rowcount=True), group)
                changed += max(result.rowcount, 0)
        _expire_loaded(self._session, MarketplaceEntry)
        return changed

    def purge_older_than(self, age: timedelta, now: datetime | None = None) -> int:  # noqa: D102
        cutoff = (ensure_utc(now, "now") if now is not None else utcnow()) - age
        self._session.flush()
        stmt = delete(MarketplaceEntry).where(MarketplaceEntry.cached_at < cutoff)
        result = self._session.execute(stmt.execution_options(synchronize_session="fetch"))
        return max(result.rowcount, 0)


@_translate_errors
class SqlAlchemyMetadataRepository(base.MetadataRepository):
    """Artifact metadata and the cache key/value store in a SQL database."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, artifact_id: str) -> ArtifactMetadata | None:  # noqa: D102
        return self._session.get(ArtifactMetadata, artifact_id)

    def set(  # noqa: D102
        self,
        artifact_id: str,
        *,
        data: Mapping[str, Any] | None,
        description: str | None = None,
        tags: Sequence[str] = (),
        aliases: Sequence[str] = (),
    ) -> ArtifactMetadata:
        meta = self._session.get(ArtifactMetadata, artifact_id)
        values = {
            "data": dict(data) if data is not None else None,
            "description": description,
            "tags": builtins.list(tags),
            "aliases": builtins.list(aliases),
        }
        with self._session.begin_nested():
            if meta is None:
                meta = ArtifactMetadata(artifact_id=artifact_id, **values)
                self._session.add(meta)
            else:
                for key, value in values.items():
                    setattr(meta, key, value)
        return meta

    def get_many(self, artifact_ids: Iterable[str]) -> dict[str, ArtifactMetadata]:  # noqa: D102
        wanted = builtins.list(dict.fromkeys(artifact_ids))
        found: dict[str, ArtifactMetadata] = {}
        for chunk in _chunks(wanted):
            stmt = select(ArtifactMetadata).where(ArtifactMetadata.artifact_id.in_(chunk))
            found.update((m.artifact_id, m) for m in self._session.scalars(stmt))
        return found

    def set_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = metadata_rows(rows)
        if not prepared:
            return 0
        self._session.flush()
        stored: dict[str, tuple[Any, ...]] = {}
        ids = [r["artifact_id"] for r in prepared]
        for chunk in _chunks(ids):
            stmt = select(
                METADATA.c.artifact_id, METADATA.c.metadata, METADATA.c.description, METADATA.c.tags, METADATA.c.aliases
            ).where(METADATA.c.artifact_id.in_(chunk))
            for artifact_id, *values in self._session.execute(stmt):
                stored[artifact_id] = tuple(values)
        changed = [
            r
            for r in prepared
            if stored.get(r["artifact_id"]) != (r["data"], r["description"], r["tags"], r["aliases"])
        ]
        if not changed:
            return 0
        params = [{**r, "metadata": r["data"]} for r in changed]
        for p in params:
            del p["data"]
        changed_ids = [r["artifact_id"] for r in changed]
        stmt = _insert_for(self._session)(METADATA)
        stmt = stmt.on_conflict_do_update(
            index_elements=["artifact_id"],
            set_={c: stmt.excluded[c] for c in ("metadata", "description", "tags", "aliases")},
        )
        tag_rows = [{"artifact_id": r["artifact_id"], "tag": t} for r in changed for t in r["tags"]]
        with self._session.begin_nested():
            self._session.execute(stmt, params)
            for chunk in _chunks(changed_ids):
                self._session.execute(delete(TAGS).where(TAGS.c.artifact_id.in_(chunk)))
            if tag_rows:
                self._session.execute(insert(TAGS), tag_rows)
        gone = set(changed_ids)
        for obj in builtins.list(self._session.identity_map.values()):
            if isinstance(obj, ArtifactTag) and obj.artifact_id in gone:
                self._session.expunge(obj)
            elif isinstance(obj, ArtifactMetadata) and obj.artifact_id in gone:
                self._session.expire(obj)
        _expire_collections(self._session)
        return len(changed)

    def artifacts_with_tag(self, tag: str) -> builtins.list[Artifact]:  # noqa: D102
        stmt = (
            select(Artifact)
            .join(ArtifactTag, ArtifactTag.artifact_id == Artifact.id)
            .where(ArtifactTag.tag == tag)
            .order_by(*_artifact_order())
        )
        return builtins.list(self._session.scalars(stmt))

    def get_value(self, key: str) -> str | None:  # noqa: D102
        row = self._session.get(CacheMetadata, key)
        return None if row is None else row.value

    def set_value(self, key: str, value: str) -> None:  # noqa: D102
        row = self._session.get(CacheMetadata, key)
        with self._session.begin_nested():
            if row is None:
                self._session.add(CacheMetadata(key=key, value=value))
            else:
                row.value = value

    def delete_value(self, key: str) -> bool:  # noqa: D102
        row = self._session.get(CacheMetadata, key)
        if row is None:
            return False
        self._session.delete(row)
        self._session.flush()
        return True

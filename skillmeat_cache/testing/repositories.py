"""The fake's tables (read off the models) and repositories (contracts: :mod:`skillmeat_cache.repositories.base`)."""

from __future__ import annotations

import builtins
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from copy import deepcopy
from datetime import datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from ..errors import DuplicateError, ForeignKeyViolationError, NotFoundError
from ..models import Artifact, ArtifactMetadata, CacheMetadata, MarketplaceEntry, Project
from ..repositories import base
from ..repositories import rows as shared  # the validators the SQL repositories use too
from ..values import PROJECT_STATUSES, check_choice, check_text, ensure_utc, utcnow

if TYPE_CHECKING:
    from . import FakeUnitOfWork

__all__ = ["FakeArtifactRepository", "FakeMarketplaceRepository", "FakeMetadataRepository", "FakeProjectRepository"]

Row = dict[str, Any]
Tables = dict[str, dict[Any, Row]]
MODELS = {m.__tablename__: m for m in (Project, Artifact, ArtifactMetadata, MarketplaceEntry, CacheMetadata)}
COLUMNS = {table: tuple(attr.key for attr in model.__mapper__.column_attrs) for table, model in MODELS.items()}
PK = {table: model.__mapper__.primary_key[0].key for table, model in MODELS.items()}
UNIQUE = [(t, (c.name,)) for t, m in MODELS.items() for c in m.__table__.columns if c.unique]
UNIQUE.append(("artifacts", shared.ARTIFACT_KEY))
# (table, column, parent table) of every foreign key (all ON DELETE CASCADE), parents first
FOREIGN_KEYS = [(t, fk.parent.name, fk.column.table.name) for t, m in MODELS.items() for fk in m.__table__.foreign_keys]
ORDER = {"projects": itemgetter("name", "path"), "artifacts": itemgetter("project_id", "type", "name", "path")}
ORDER["marketplace"] = itemgetter("type", "name", "id")


def row_of(entity: Any) -> Row:
    """A copy of an entity's column values (sharing no JSON value with it)."""
    return deepcopy({column: getattr(entity, column) for column in COLUMNS[entity.__tablename__]})


def violation(error: type[DuplicateError | ForeignKeyViolationError], table: str, *columns: str) -> Exception:
    """The error a database would raise for these columns of ``table``."""
    constraint = ", ".join(f"{table}.{column}" for column in columns)
    return error(f"{error.__name__} on table {table} ({constraint})", table=table, constraint=constraint)


def check_integrity(tables: Tables) -> None:
    """Raise what a database would for unique and foreign keys (uniques first, as a statement does)."""
    for table, columns in UNIQUE:
        keys = [tuple(row[column] for column in columns) for row in tables[table].values()]
        if len(set(keys)) != len(keys):
            raise violation(DuplicateError, table, *columns)
    for table, column, parent in FOREIGN_KEYS:
        if any(row[column] not in tables[parent] for row in tables[table].values()):
            raise violation(ForeignKeyViolationError, table, column)


def _where(**values: Any) -> Callable[[Row], bool]:
    """A filter of the rows whose columns hold these values (None: any value)."""
    return lambda row: all(value in (None, row[column]) for column, value in values.items())


def _contains(needle: str, *haystacks: str | None) -> bool:
    return not needle or any(needle in shared.ascii_lower(text) for text in haystacks if text is not None)


def _flushing(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: _FakeRepository, *args: Any, **kwargs: Any) -> Any:
        self._uow._autoflush()
        return method(self, *args, **kwargs)

    return call


class _FakeRepository:
    """What the fake repositories share. Every public method first writes pending entity
    changes (autoflush, as the SQL repositories do), before its arguments are checked.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if inspect.isfunction(member) and not name.startswith("_"):
                setattr(cls, name, _flushing(member))

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def _rows(self, table: str) -> dict[Any, Row]:
        return self._uow._tables[table]

    def _get(self, table: str, key: Any) -> Any:
        row = self._rows(table).get(shared.lookup_key(PK[table], key))
        return None if row is None else self._uow._entity(table, row)

    def _find(self, table: str, where: Callable[[Row], Any], limit: Any = None, offset: Any = 0) -> builtins.list[Any]:
        """Entities of the rows ``where`` accepts, in the table's list order, one page of them."""
        limit, offset = shared.page_bounds(limit, offset)
        rows = sorted(filter(where, self._rows(table).values()), key=ORDER[table])
        return [self._uow._entity(table, row) for row in rows[offset:][:limit]]

    def _write(self, table: str, rows: Iterable[Row]) -> int:
        """Insert or replace rows by primary key, but those equal to the stored one; how many were written."""
        with self._uow._writing() as tables:
            written = [row for row in rows if tables[table].get(row[PK[table]]) != row]
            for row in written:
                self._uow._put(table, row)
        return len(written)

    def _delete(self, table: str, keys: Iterable[Any]) -> int:
        """Delete the rows with these keys (those that exist; how many) and, by cascade, the rows they had."""
        with self._uow._writing() as tables:
            found = [key for key in keys if key in tables[table]]
            for key in found:
                del tables[table][key]
            for child, column, parent in FOREIGN_KEYS:  # orphans now are what ON DELETE CASCADE deletes
                for key in [key for key, row in tables[child].items() if row[column] not in tables[parent]]:
                    del tables[child][key]
        return len(found)


class FakeProjectRepository(_FakeRepository, base.ProjectRepository):
    """Projects in memory (see :class:`FakeUnitOfWork`)."""

    def add(self, project: Project) -> Project:  # noqa: D102
        return self._uow._add(project)  # type: ignore[no-any-return]

    def get(self, id: str) -> Project | None:  # noqa: D102
        return self._get("projects", id)  # type: ignore[no-any-return]

    def get_by_path(self, path: str) -> Project | None:  # noqa: D102
        return (self._find("projects", _where(path=shared.lookup_key("path", path))) or [None])[0]

    def list(self, status: str | None = None, limit: int | None = None, offset: int = 0) -> builtins.list[Project]:  # noqa: D102
        status = None if status is None else check_choice("status", status, PROJECT_STATUSES)
        return self._find("projects", _where(status=status), limit, offset)

    def stale(self, ttl: timedelta, now: datetime | None = None) -> builtins.list[Project]:  # noqa: D102
        return [summary.project for summary in self.summaries(older_than=ttl, now=now)]

    def count(self, status: str | None = None) -> int:  # noqa: D102
        return len(self.list(status))

    def delete(self, id: str) -> None:  # noqa: D102
        if not self._delete("projects", [shared.lookup_key("id", id)]):
            raise NotFoundError(f"no project with id {id!r}")

    def summaries(  # noqa: D102
        self, status: str | None = None, older_than: timedelta | None = None, now: datetime | None = None
    ) -> builtins.list[base.ProjectSummary]:
        projects = self.list(status)
        if older_than is not None:
            cutoff = (ensure_utc(now, "now") if now is not None else utcnow()) - older_than
            projects = [p for p in projects if p.last_fetched is None or p.last_fetched < cutoff]
        return [base.ProjectSummary(p, len(p.artifacts), sum(a.is_outdated for a in p.artifacts)) for p in projects]

    def touch_many(self, ids: Iterable[str], when: datetime) -> int:  # noqa: D102
        when, stored = ensure_utc(when, "when"), self._rows("projects")
        rows = [stored[key] for key in shared.lookup_keys("id", ids) if key in stored]
        self._write("projects", [{**row, "last_fetched": when, "updated_at": utcnow()} for row in rows])
        return len(rows)  # those that exist

    def mark_stale(self, ids: Iterable[str]) -> int:  # noqa: D102
        stored = self._rows("projects")
        keys = [key for key in shared.lookup_keys("id", ids) if key in stored and stored[key]["status"] != "stale"]
        return self._write("projects", [{**stored[key], "status": "stale", "updated_at": utcnow()} for key in keys])


class FakeArtifactRepository(_FakeRepository, base.ArtifactRepository):
    """Artifacts in memory (see :class:`FakeUnitOfWork`); the lists are searches for ``""``."""

    def add(self, artifact: Artifact) -> Artifact:  # noqa: D102
        return self._uow._add(artifact)  # type: ignore[no-any-return]

    def get(self, id: str) -> Artifact | None:  # noqa: D102
        return self._get("artifacts", id)  # type: ignore[no-any-return]

    def get_by_key(self, project_id: str, type: str, name: str, path: str | None = None) -> Artifact | None:  # noqa: D102
        shared.lookup_key("project_id", project_id)
        type, name = shared.artifact_type_filter(type), shared.lookup_key("name", name)
        path = None if path is None else shared.lookup_key("path", path)
        return (self._find("artifacts", _where(project_id=project_id, type=type, name=name, path=path)) or [None])[0]

    def list_for_project(self, project_id: str, type: str | None = None) -> builtins.list[Artifact]:  # noqa: D102
        return self.search("", shared.lookup_key("project_id", project_id), type)

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
        needle, where = shared.ascii_lower(text), _where(project_id=project_id, type=type)
        meta = self._rows("artifact_metadata")

        def matches(row: Row) -> bool:
            return where(row) and _contains(needle, row["name"], meta.get(row["id"], {}).get("description"))

        return self._find("artifacts", matches, limit, offset)

    def count(self, project_id: str | None = None) -> int:  # noqa: D102
        return len(self.search("", project_id))

    def delete(self, id: str) -> None:  # noqa: D102
        if not self._delete("artifacts", [shared.lookup_key("id", id)]):
            raise NotFoundError(f"no artifact with id {id!r}")

    def keys_for_project(self, project_id: str) -> dict[tuple[str, str, str], str]:  # noqa: D102
        return {(a.type, a.path, a.name): a.id for a in self.list_for_project(project_id)}

    def delete_many(self, ids: Iterable[str]) -> int:  # noqa: D102
        return self._delete("artifacts", shared.lookup_keys("id", ids))

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        key = itemgetter(*shared.ARTIFACT_KEY)
        prepared, stored = shared.artifact_rows(rows), {key(r): r for r in self._rows("artifacts").values()}
        shapes = dict.fromkeys(tuple(row) for row in prepared)  # the SQL path: one statement per set of columns
        return self._bulk([(stored.get(key(r)), r) for r in prepared if tuple(r) == shape] for shape in shapes)

    def upsert_many_ids(self, rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, ...], str]:  # noqa: D102
        before, key, _ = dict(self._rows("artifacts")), itemgetter(*shared.ARTIFACT_KEY), self.upsert_many(rows)
        return {key(r): i for i, r in self._rows("artifacts").items() if r is not before.get(i)}  # written: new rows

    def update_many(self, changes: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        stored = self._rows("artifacts")  # the SQL path: one statement per change
        return self._bulk([(stored[c["id"]], c)] for c in shared.merge_changes(changes) if c["id"] in stored)

    def _bulk(self, statements: Iterable[Iterable[tuple[Row | None, Row]]]) -> int:
        """Bulk rows over their stored artifacts (None: new), constraints checked per statement; how many changed."""
        now, changed = utcnow(), 0
        with self._uow._writing() as tables:
            for statement in statements:
                for stored, row in statement:
                    keep = {c: stored[c] for c in ("id", "created_at", "updated_at")} if stored else {}
                    new = row_of(Artifact(**{**(stored or {"created_at": now}), **row, **keep}))
                    if new != stored:  # the model derived is_outdated
                        self._uow._put("artifacts", {**new, "updated_at": row.get("updated_at", now)}, new=not stored)
                        changed += 1
                check_integrity(tables)
        return changed


class FakeMarketplaceRepository(_FakeRepository, base.MarketplaceRepository):
    """Marketplace entries in memory (see :class:`FakeUnitOfWork`)."""

    def add(self, entry: MarketplaceEntry) -> MarketplaceEntry:  # noqa: D102
        return self._uow._add(entry)  # type: ignore[no-any-return]

    def get(self, id: str) -> MarketplaceEntry | None:  # noqa: D102
        return self._get("marketplace", id)  # type: ignore[no-any-return]

    def list(self, type: str | None = None) -> builtins.list[MarketplaceEntry]:  # noqa: D102
        return self._find("marketplace", _where(type=None if type is None else shared.artifact_type_filter(type)))

    def search(self, text: str) -> builtins.list[MarketplaceEntry]:  # noqa: D102
        needle = shared.ascii_lower(check_text("text", text))
        return self._find("marketplace", lambda r: _contains(needle, r["name"], r["description"]))

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared, stored = shared.marketplace_rows(rows, utcnow()), self._rows("marketplace")
        blank = dict.fromkeys(COLUMNS["marketplace"])
        self._write("marketplace", [{**stored.get(row["id"], blank), **row} for row in prepared])
        return len(prepared)  # like the SQL upsert (no WHERE on its DO UPDATE): every row counts

    def purge_older_than(self, age: timedelta, now: datetime | None = None) -> int:  # noqa: D102
        cutoff = (ensure_utc(now, "now") if now is not None else utcnow()) - age
        old = [key for key, row in self._rows("marketplace").items() if row["cached_at"] < cutoff]
        return self._delete("marketplace", old)


class FakeMetadataRepository(_FakeRepository, base.MetadataRepository):
    """Artifact metadata and the cache key/value store in memory (see :class:`FakeUnitOfWork`)."""

    def get(self, artifact_id: str) -> ArtifactMetadata | None:  # noqa: D102
        return self._get("artifact_metadata", artifact_id)  # type: ignore[no-any-return]

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
        row = row_of(ArtifactMetadata(artifact_id=artifact_id, **values))  # the model validates
        self._write("artifact_metadata", [row])
        return self._uow._entity("artifact_metadata", row)  # type: ignore[no-any-return]

    def get_many(self, artifact_ids: Iterable[str]) -> dict[str, ArtifactMetadata]:  # noqa: D102
        found = {key: self.get(key) for key in shared.lookup_keys("artifact_id", artifact_ids)}
        return {key: meta for key, meta in found.items() if meta is not None}

    def set_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        return self._write("artifact_metadata", shared.metadata_rows(rows))

    def artifacts_with_tag(self, tag: str) -> builtins.list[Artifact]:  # noqa: D102
        tag, tagged = shared.lookup_key("tag", tag), self._rows("artifact_metadata")
        return self._find("artifacts", lambda r: r["id"] in tagged and tag in tagged[r["id"]]["tags"])

    def get_value(self, key: str) -> str | None:  # noqa: D102
        row = self._rows("cache_metadata").get(shared.lookup_key("key", key))
        return None if row is None else row["value"]  # type: ignore[no-any-return]

    def set_value(self, key: str, value: str) -> None:  # noqa: D102
        row = row_of(CacheMetadata(key=key, value=value))  # the model checks both
        stored = self._rows("cache_metadata").get(key)
        self._write("cache_metadata", [row] if stored is None or stored["value"] != value else [])

    def delete_value(self, key: str) -> bool:  # noqa: D102
        return self._delete("cache_metadata", [shared.lookup_key("key", key)]) > 0

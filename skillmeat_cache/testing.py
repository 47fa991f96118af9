"""In-memory fakes of the unit of work and the four repositories, for service tests.

The store keeps the committed rows: per table, a dict from primary key to row (a dict of
column values, replaced on write, never changed in place). A unit of work writes into a
copy of those dicts and publishes the rows it wrote at commit; rollback takes a new copy.
Entities are model instances built from rows; the unit of work remembers those it
returned, writes their changed columns before every repository call and at commit, and
refreshes them after every write. The contract and what the fake does not do: ``base.py``.
"""

from __future__ import annotations

import builtins
import functools
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from .errors import DuplicateError, ForeignKeyViolationError, NotFoundError, ReadOnlyError, UnitOfWorkActiveError
from .models import Artifact, ArtifactMetadata, CacheMetadata, MarketplaceEntry, Project
from .repositories import base
from .repositories import rows as shared  # the validators the SQL repositories use too
from .uow import AbstractUnitOfWork
from .values import PROJECT_STATUSES, check_choice, check_text, ensure_utc, new_id, utcnow

__all__ = ["FakeStore", "FakeUnitOfWork"]

Row = dict[str, Any]
Tables = dict[str, dict[Any, Row]]
_MODELS = {m.__tablename__: m for m in (Project, Artifact, ArtifactMetadata, MarketplaceEntry, CacheMetadata)}
_COLUMNS = {table: tuple(attr.key for attr in model.__mapper__.column_attrs) for table, model in _MODELS.items()}
_PK = {table: next(iter(model.__table__.primary_key)).name for table, model in _MODELS.items()}
_UPSERT_KEEPS = frozenset({"id", "created_at", "updated_at", *shared.ARTIFACT_KEY})  # upsert_many never changes


def _natural(row: Row) -> tuple[str, str, str, str]:
    return (row["project_id"], row["type"], row["name"], row["path"])  # an artifact's key, in list order


_ORDER: dict[str, Callable[[Row], Any]] = {"projects": lambda r: (r["name"], r["path"]), "artifacts": _natural}
_ORDER["marketplace"] = lambda r: (r["type"], r["name"], r["id"])


def _copy(value: Any) -> Any:
    """A JSON value (already checked by the models) that no entity or row shares."""
    return json.loads(json.dumps(value)) if isinstance(value, (dict, list, tuple)) else value


def _violation(error: type[DuplicateError | ForeignKeyViolationError], table: str, *columns: str) -> Exception:
    constraint = ", ".join(f"{table}.{column}" for column in columns)
    kind = "duplicate" if error is DuplicateError else "foreign key violation"
    return error(f"{kind} on table {table} ({constraint})", table=table, constraint=constraint)


def _check_integrity(tables: Tables) -> None:
    """Raise what a database would for unique and foreign keys (uniques first, as a statement does)."""
    paths, keys = [r["path"] for r in tables["projects"].values()], [_natural(r) for r in tables["artifacts"].values()]
    if len(set(paths)) != len(paths):
        raise _violation(DuplicateError, "projects", "path")
    if len(set(keys)) != len(keys):
        raise _violation(DuplicateError, "artifacts", *shared.ARTIFACT_KEY)
    if any(row["project_id"] not in tables["projects"] for row in tables["artifacts"].values()):
        raise _violation(ForeignKeyViolationError, "artifacts", "project_id")
    if any(key not in tables["artifacts"] for key in tables["artifact_metadata"]):
        raise _violation(ForeignKeyViolationError, "artifact_metadata", "artifact_id")


def _cutoff(age: timedelta, now: datetime | None) -> datetime:
    return (ensure_utc(now, "now") if now is not None else utcnow()) - age


def _contains(haystack: str | None, needle: str) -> bool:
    return not needle or (haystack is not None and needle in shared.ascii_lower(haystack))


class FakeStore:
    """The committed state shared by the units of work built on it (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: Tables = {table: {} for table in _MODELS}
        self.version = 0  # how many commits that wrote something it has taken

    def unit_of_work(self, *, read_only: bool = False) -> FakeUnitOfWork:
        """A new unit of work on this store (a ready-made ``uow_factory``)."""
        return FakeUnitOfWork(read_only=read_only, store=self)

    def rows(self, table: str) -> builtins.list[Row]:
        """Copies of the committed rows of a table (``"artifact_tags"`` too), by primary key."""
        tables = self._snapshot()
        if table == "artifact_tags":
            pairs = sorted((key, tag) for key, row in tables["artifact_metadata"].items() for tag in row["tags"])
            return [{"artifact_id": key, "tag": tag} for key, tag in pairs]
        return [{column: _copy(value) for column, value in row.items()} for _, row in sorted(tables[table].items())]

    def count(self, table: str) -> int:
        """How many committed rows ``table`` holds."""
        return len(self.rows(table))

    def _snapshot(self) -> Tables:
        with self._lock:
            return {table: dict(rows) for table, rows in self._tables.items()}

    def _publish(self, tables: Tables, written: set[tuple[str, Any]]) -> None:
        # Over the latest state: another unit of work may have committed since this one began.
        with self._lock:
            merged = {table: dict(rows) for table, rows in self._tables.items()}
            for table, key in written:
                if key in tables[table]:
                    merged[table][key] = tables[table][key]
                else:
                    merged[table].pop(key, None)
            _check_integrity(merged)
            self._tables, self.version = merged, self.version + 1


class FakeUnitOfWork(AbstractUnitOfWork):
    """An in-memory unit of work whose repositories are the fakes of this module.

    Units of work on the same ``store`` see each other's commits (and nothing
    uncommitted); without one, an instance gets a store of its own, kept across
    re-entries. For assertions: ``committed`` (a commit happened, a clean exit counts),
    ``commits`` and ``rollbacks`` (an exception in the block counts as one).
    """

    def __init__(self, *, read_only: bool = False, store: FakeStore | None = None) -> None:
        super().__init__(read_only=read_only)
        self.store = store if store is not None else FakeStore()
        self.committed, self.commits, self.rollbacks = False, 0, 0
        self._tables: Tables = {}
        self._written: set[tuple[str, Any]] = set()  # (table, key) of every row written
        self._loaded: dict[tuple[str, Any], tuple[Any, Row]] = {}  # (table, key) -> (entity, its row)

    def _begin(self) -> None:
        self._restart(expire=False)
        self.projects: FakeProjectRepository = FakeProjectRepository(self)
        self.artifacts: FakeArtifactRepository = FakeArtifactRepository(self)
        self.marketplace: FakeMarketplaceRepository = FakeMarketplaceRepository(self)
        self.metadata: FakeMetadataRepository = FakeMetadataRepository(self)

    def _abort(self) -> None:
        self.rollbacks += 1  # the work goes in _end; entities keep their values, as when a session closes

    def _end(self) -> None:
        self._tables, self._written, self._loaded = {}, set(), {}
        for name in ("projects", "artifacts", "marketplace", "metadata"):
            self.__dict__.pop(name, None)

    def commit(self) -> None:  # noqa: D102
        self._check_active()
        self._autoflush()
        if self._written:
            try:
                self.store._publish(self._tables, self._written)
            except Exception:
                self._restart(expire=True)  # a failed commit loses the transaction, as on a database
                raise
        self._restart(expire=False)
        self.committed, self.commits = True, self.commits + 1

    def rollback(self) -> None:  # noqa: D102
        self._check_active()
        self._restart(expire=True)
        self.rollbacks += 1

    def _check_active(self) -> None:
        if not self.active:
            raise UnitOfWorkActiveError("the unit of work is not active; use it in a `with` block")

    def _restart(self, *, expire: bool) -> None:
        """Go on from the committed state; ``expire``: reload every entity from it."""
        self._tables, self._written = self.store._snapshot(), set()
        self._sync(force=expire)

    @contextmanager
    def _writing(self) -> Iterator[Tables]:
        """One repository write: read-only refused, atomic, constraints checked, entities refreshed."""
        if self.read_only:
            raise ReadOnlyError("this unit of work is read-only and cannot write")
        saved = {table: dict(rows) for table, rows in self._tables.items()}, set(self._written), dict(self._loaded)
        try:
            yield self._tables
            _check_integrity(self._tables)
        except BaseException:
            self._tables, self._written, self._loaded = saved
            raise
        self._sync()

    def _put(self, table: str, row: Row, *, new: bool = False) -> None:
        if new and row[_PK[table]] in self._tables[table]:
            raise _violation(DuplicateError, table, _PK[table])
        self._tables[table][row[_PK[table]]] = row
        self._written.add((table, row[_PK[table]]))

    def _delete(self, table: str, key: Any) -> None:
        """Delete a row and, like ON DELETE CASCADE, the rows that depend on it."""
        if table == "projects":
            for child in [k for k, row in self._tables["artifacts"].items() if row["project_id"] == key]:
                self._delete("artifacts", child)
        if table == "artifacts" and key in self._tables["artifact_metadata"]:
            self._delete("artifact_metadata", key)
        del self._tables[table][key]
        self._written.add((table, key))

    def _entity(self, table: str, row: Row) -> Any:
        """The entity of a row: the one returned before, else a new model instance."""
        if (table, row[_PK[table]]) not in self._loaded:
            # No None: no model default applies to a stored None, and Artifact's validator
            # refuses content_hash=None although the column is nullable.
            entity = _MODELS[table](**{column: _copy(value) for column, value in row.items() if value is not None})
            self._loaded[(table, row[_PK[table]])] = (entity, row)
            if table == "projects":
                self._fill_artifacts({row["id"]: entity})
        return self._loaded[(table, row[_PK[table]])][0]

    def _fill_artifacts(self, projects: dict[str, Any]) -> None:
        """Set ``project.artifacts`` of returned projects from the rows."""
        children: dict[str, builtins.list[Row]] = {key: [] for key in projects}
        for row in self._tables["artifacts"].values() if projects else ():
            children.get(row["project_id"], []).append(row)
        for key, project in projects.items():
            rows = sorted(children[key], key=lambda r: (r["type"], r["name"], r["path"]))
            if [id(a) for a in project.artifacts] != [id(self._entity("artifacts", row)) for row in rows]:
                project.artifacts = [self._entity("artifacts", row) for row in rows]

    def _sync(self, *, force: bool = False) -> None:
        """Refresh returned entities whose row changed (all when ``force``), forget those whose row is gone."""
        for (table, key), (entity, seen) in builtins.list(self._loaded.items()):
            if (row := self._tables[table].get(key)) is None:
                del self._loaded[(table, key)]
                continue
            for column in _COLUMNS[table] if force or row is not seen else ():  # versions before is_outdated
                if getattr(entity, column) == row[column]:
                    continue
                if row[column] is None:
                    delattr(entity, column)  # reads None again, bypassing the validator (see _entity)
                else:
                    setattr(entity, column, _copy(row[column]))
            self._loaded[(table, key)] = (entity, row)
        self._fill_artifacts({key: e for (table, key), (e, _) in self._loaded.items() if table == "projects"})

    def _add(self, entity: Any, model: type[Any]) -> Any:
        """Insert a new entity, and a new project's artifacts, in one atomic write."""
        if not isinstance(entity, model):
            raise TypeError(f"expected a {model.__name__}, got {type(entity).__name__}")
        table = model.__tablename__
        with self._writing():
            if self._loaded.get((table, getattr(entity, _PK[table])), (None,))[0] is entity:
                return entity  # already stored: nothing to do, as with a session
            # A new project's artifacts go in with it (a backref may have listed one twice).
            attached = {id(a): a for a in entity.artifacts}.values() if model is Project else ()
            for obj in (entity, *attached):
                if obj is not entity and obj.project_id != entity.id:
                    obj.project_id = entity.id  # as a flush would
                name = obj.__tablename__
                row = {column: _copy(getattr(obj, column)) for column in _COLUMNS[name]}
                self._put(name, row, new=True)
                self._loaded[(name, row[_PK[name]])] = (obj, row)
        return entity

    def _autoflush(self) -> None:
        """Write the changed columns of returned entities; on failure go back to the last commit."""
        changed = []
        for (table, key), (entity, row) in self._loaded.items():
            if (values := {column: _copy(getattr(entity, column)) for column in _COLUMNS[table]}) != row:
                if values[_PK[table]] != key:
                    raise NotImplementedError("the fake does not change the primary key of a stored entity")
                if values.get("updated_at", 0) == row.get("updated_at"):
                    values["updated_at"] = utcnow()
                changed.append((table, values))
        try:
            with self._writing() if changed else nullcontext():
                for table, values in changed:
                    self._put(table, values)
        except Exception:
            self._restart(expire=True)
            raise


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
        rows = sorted(filter(where, self._rows(table).values()), key=_ORDER[table])
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

    def add(self, project: Project) -> Project:
        return self._uow._add(project, Project)  # type: ignore[no-any-return]

    def get(self, id: str) -> Project | None:
        return self._get("projects", "id", id)  # type: ignore[no-any-return]

    def get_by_path(self, path: str) -> Project | None:
        shared.lookup_key("path", path)
        return next(iter(self._find("projects", lambda r: r["path"] == path)), None)

    def list(self, status: str | None = None, limit: int | None = None, offset: int = 0) -> builtins.list[Project]:
        if status is not None:
            check_choice("status", status, PROJECT_STATUSES)
        return self._find("projects", lambda r: status in (None, r["status"]), limit, offset)

    def stale(self, ttl: timedelta, now: datetime | None = None) -> builtins.list[Project]:
        return [summary.project for summary in self.summaries(older_than=ttl, now=now)]

    def count(self, status: str | None = None) -> int:
        return len(self.list(status))

    def delete(self, id: str) -> None:
        self._delete_one("projects", id)

    def summaries(
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

    def touch_many(self, ids: Iterable[str], when: datetime) -> int:
        when = ensure_utc(when, "when")
        return self._update(ids, {"last_fetched": when, "updated_at": utcnow()})

    def mark_stale(self, ids: Iterable[str]) -> int:
        return self._update(ids, {"status": "stale", "updated_at": utcnow()}, lambda row: row["status"] == "stale")


class FakeArtifactRepository(_FakeRepository, base.ArtifactRepository):
    """Artifacts in memory (see :class:`FakeUnitOfWork`); the lists are searches for ``""``."""

    def add(self, artifact: Artifact) -> Artifact:
        return self._uow._add(artifact, Artifact)  # type: ignore[no-any-return]

    def get(self, id: str) -> Artifact | None:
        return self._get("artifacts", "id", id)  # type: ignore[no-any-return]

    def get_by_key(self, project_id: str, type: str, name: str, path: str | None = None) -> Artifact | None:
        shared.lookup_key("project_id", project_id)
        shared.artifact_type_filter(type)
        shared.lookup_key("name", name)
        if path is not None:
            shared.lookup_key("path", path)
        found = [a for a in self.search("", project_id, type) if a.name == name and path in (None, a.path)]
        return found[0] if found else None

    def list_for_project(self, project_id: str, type: str | None = None) -> builtins.list[Artifact]:
        shared.lookup_key("project_id", project_id)
        return self.search("", project_id, type)

    def list_by_type(self, type: str) -> builtins.list[Artifact]:
        return self.search("", type=shared.artifact_type_filter(type))

    def outdated(self, project_id: str | None = None) -> builtins.list[Artifact]:
        return [artifact for artifact in self.search("", project_id) if artifact.is_outdated]

    def search(
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

    def count(self, project_id: str | None = None) -> int:
        return len(self.search("", project_id))

    def delete(self, id: str) -> None:
        self._delete_one("artifacts", id)

    def keys_for_project(self, project_id: str) -> dict[tuple[str, str, str], str]:
        return {(a.type, a.path, a.name): a.id for a in self.list_for_project(project_id)}

    def delete_many(self, ids: Iterable[str]) -> int:
        wanted = shared.lookup_keys("id", ids)
        with self._uow._writing() as tables:
            found = [key for key in wanted if key in tables["artifacts"]]
            for key in found:
                self._uow._delete("artifacts", key)
        return len(found)

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:
        statements: dict[tuple[str, ...], builtins.list[Row]] = {}  # as the SQL path: one per set of columns
        for row in shared.artifact_rows(rows):
            statements.setdefault(tuple(row), []).append(row)
        with self._uow._writing() as tables:
            stored = {_natural(row): row for row in tables["artifacts"].values()}
            now, changed = utcnow(), 0
            for group in statements.values():
                changed += sum(self._upsert(stored.get(_natural(row)), row, now) for row in group)
                _check_integrity(tables)  # a statement's foreign keys are checked at its end
        return changed

    def _upsert(self, stored: Row | None, row: Row, now: datetime) -> bool:
        versions = None if stored is None else (stored["deployed_version"], stored["upstream_version"])
        row["is_outdated"] = shared.outdated_for(row, versions)
        if stored is None:
            new = {**dict.fromkeys(_COLUMNS["artifacts"]), "local_modified": False, **row}
            new["id"] = new["id"] or new_id()
            new["created_at"], new["updated_at"] = new["created_at"] or now, new["updated_at"] or now
            self._uow._put("artifacts", new, new=True)
            return True
        diff = {c: v for c, v in row.items() if c not in _UPSERT_KEEPS and stored[c] != v}
        if diff:
            self._uow._put("artifacts", {**stored, **diff, "updated_at": row.get("updated_at", now)})
        return bool(diff)

    def update_many(self, changes: Iterable[Mapping[str, Any]]) -> int:
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
                    _check_integrity(tables)  # one statement per change: the first failing one raises
                    updated += 1
        return updated


class FakeMarketplaceRepository(_FakeRepository, base.MarketplaceRepository):
    """Marketplace entries in memory (see :class:`FakeUnitOfWork`)."""

    def add(self, entry: MarketplaceEntry) -> MarketplaceEntry:
        return self._uow._add(entry, MarketplaceEntry)  # type: ignore[no-any-return]

    def get(self, id: str) -> MarketplaceEntry | None:
        return self._get("marketplace", "id", id)  # type: ignore[no-any-return]

    def list(self, type: str | None = None) -> builtins.list[MarketplaceEntry]:
        if type is not None:
            shared.artifact_type_filter(type)
        return self._find("marketplace", lambda r: type in (None, r["type"]))

    def search(self, text: str) -> builtins.list[MarketplaceEntry]:
        needle = shared.ascii_lower(check_text("text", text))
        return self._find("marketplace", lambda r: _contains(r["name"], needle) or _contains(r["description"], needle))

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:
        prepared = shared.marketplace_rows(rows, utcnow())
        with self._uow._writing() as tables:
            for row in prepared:
                stored = tables["marketplace"].get(row["id"]) or dict.fromkeys(_COLUMNS["marketplace"])
                self._uow._put("marketplace", {**stored, **row})
        return len(prepared)  # like the SQL upsert (no WHERE on its DO UPDATE): every row counts

    def purge_older_than(self, age: timedelta, now: datetime | None = None) -> int:
        cutoff = _cutoff(age, now)
        with self._uow._writing() as tables:
            old = [key for key, row in tables["marketplace"].items() if row["cached_at"] < cutoff]
            for key in old:
                self._uow._delete("marketplace", key)
        return len(old)


class FakeMetadataRepository(_FakeRepository, base.MetadataRepository):
    """Artifact metadata and the cache key/value store in memory (see :class:`FakeUnitOfWork`)."""

    def get(self, artifact_id: str) -> ArtifactMetadata | None:
        return self._get("artifact_metadata", "artifact_id", artifact_id)  # type: ignore[no-any-return]

    def set(
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
        row = {column: _copy(getattr(new, column)) for column in _COLUMNS["artifact_metadata"]}
        with self._uow._writing():
            self._uow._put("artifact_metadata", row)
        return self._uow._entity("artifact_metadata", row)  # type: ignore[no-any-return]

    def get_many(self, artifact_ids: Iterable[str]) -> dict[str, ArtifactMetadata]:
        found = {key: self.get(key) for key in shared.lookup_keys("artifact_id", artifact_ids)}
        return {key: meta for key, meta in found.items() if meta is not None}

    def set_many(self, rows: Iterable[Mapping[str, Any]]) -> int:
        prepared = shared.metadata_rows(rows)
        with self._uow._writing() as tables:
            changed = [row for row in prepared if tables["artifact_metadata"].get(row["artifact_id"]) != row]
            for row in changed:
                self._uow._put("artifact_metadata", row)
        return len(changed)

    def artifacts_with_tag(self, tag: str) -> builtins.list[Artifact]:
        shared.lookup_key("tag", tag)
        tagged = {key for key, row in self._rows("artifact_metadata").items() if tag in row["tags"]}
        return self._find("artifacts", lambda r: r["id"] in tagged)

    def get_value(self, key: str) -> str | None:
        row = self._rows("cache_metadata").get(shared.lookup_key("key", key))
        return None if row is None else row["value"]  # type: ignore[no-any-return]

    def set_value(self, key: str, value: str) -> None:
        probe = CacheMetadata(key=key, value=value)  # validates both
        with self._uow._writing() as tables:
            stored = tables["cache_metadata"].get(key)
            if stored is None:
                self._uow._put("cache_metadata", {"key": key, "value": value, "updated_at": probe.updated_at})
            elif stored["value"] != value:
                self._uow._put("cache_metadata", {**stored, "value": value, "updated_at": utcnow()})

    def delete_value(self, key: str) -> bool:
        shared.lookup_key("key", key)
        with self._uow._writing() as tables:
            found = key in tables["cache_metadata"]
            if found:
                self._uow._delete("cache_metadata", key)
        return found

"""In-memory fakes of the unit of work and the repositories, for service tests.

Service code that depends on :class:`~skillmeat_cache.uow.AbstractUnitOfWork` runs
unchanged against :class:`FakeUnitOfWork`, which needs no database::

    store = FakeStore()
    with FakeUnitOfWork(store=store) as uow:
        project = uow.projects.add(Project(name="demo", path="/work/demo"))
    with store.unit_of_work(read_only=True) as uow:
        assert uow.projects.get(project.id).name == "demo"

The fakes behave like the SQLAlchemy implementation: the same orders, the same
exceptions (duplicates, missing parents, bad input through the shared validators of
:mod:`skillmeat_cache.repositories.rows` and the models), cascade deletes, the bulk-path
semantics, and transactions: work becomes visible to other units of work on the same
:class:`FakeStore` only when committed; an exception in the block rolls back. Every
repository write is atomic (a failed call changes nothing).

Entities are real model instances kept in a per-unit-of-work identity map, so ``get``
twice returns the same object, and a change to a returned entity (``project.status =
"stale"``) is written at the next query or at commit, as a session's autoflush would
(in-place changes to a JSON value are not seen, as with the real session, unless
flagged with :func:`sqlalchemy.orm.attributes.flag_modified`). Relationships
(``project.artifacts``, ``artifact.project``, ``artifact.meta``, ``meta.artifact``) are
filled in from the stored rows; objects attached through them are inserted (and
artifacts or metadata removed from their parent are deleted) like the real cascades.
"""

from __future__ import annotations

import builtins
import functools
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.orm.attributes import instance_dict, instance_state, set_committed_value

from .errors import (
    DatabaseUnavailableError,
    DuplicateError,
    ForeignKeyViolationError,
    NotFoundError,
    ReadOnlyError,
    UnitOfWorkActiveError,
    ValidationError,
)
from .models import (
    Artifact,
    ArtifactMetadata,
    Base,
    CacheMetadata,
    MarketplaceEntry,
    Project,
    check_text,
    ensure_utc,
    new_id,
    utcnow,
)
from .repositories.base import (
    ArtifactRepository,
    MarketplaceRepository,
    MetadataRepository,
    ProjectRepository,
    ProjectSummary,
)
from .repositories.rows import (
    ARTIFACT_KEY,
    artifact_rows,
    artifact_type_filter,
    ascii_lower,
    lookup_key,
    lookup_keys,
    marketplace_rows,
    merge_changes,
    metadata_rows,
    metadata_values,
    outdated_for,
    page_bounds,
    search_filters,
)
from .uow import AbstractUnitOfWork
from .values import PROJECT_STATUSES, check_choice

__all__ = [
    "FakeArtifactRepository",
    "FakeMarketplaceRepository",
    "FakeMetadataRepository",
    "FakeProjectRepository",
    "FakeStore",
    "FakeUnitOfWork",
    "throwaway_postgres_database",
]

Row = dict[str, Any]
Tables = dict[str, dict[Any, Row]]

# Stored tables, parents before children (the order of inserts).
_MODELS: dict[str, type[Base]] = {
    "projects": Project,
    "artifacts": Artifact,
    "artifact_metadata": ArtifactMetadata,
    "marketplace": MarketplaceEntry,
    "cache_metadata": CacheMetadata,
}
_TABLE_OF: dict[type, str] = {model: name for name, model in _MODELS.items()}
_ORDER: dict[str, int] = {name: index for index, name in enumerate(_MODELS)}
_COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(attr.key for attr in model.__mapper__.column_attrs) for name, model in _MODELS.items()
}
_PK: dict[str, str] = {
    name: model.__mapper__.get_property_by_column(model.__mapper__.primary_key[0]).key
    for name, model in _MODELS.items()
}
_JSON: dict[str, frozenset[str]] = {
    name: frozenset(
        attr.key
        for attr in model.__mapper__.column_attrs
        if isinstance(attr.columns[0].type, JSON) or isinstance(getattr(attr.columns[0].type, "impl", None), JSON)
    )
    for name, model in _MODELS.items()
}
_ONUPDATE: dict[str, tuple[str, ...]] = {
    name: tuple(attr.key for attr in model.__mapper__.column_attrs if attr.columns[0].onupdate is not None)
    for name, model in _MODELS.items()
}
# Relationships followed by the fake: save-update cascade on all of them; the
# delete-orphan ones map to the attribute naming the parent on the child.
_RELATIONS: dict[str, tuple[str, ...]] = {
    "projects": ("artifacts",),
    "artifacts": ("project", "meta"),
    "artifact_metadata": ("artifact",),
}
_ORPHANS: dict[tuple[str, str], str] = {("projects", "artifacts"): "project", ("artifacts", "meta"): "artifact"}
_ARTIFACT_COMPARED_SKIP = frozenset({"id", "created_at", "updated_at", *ARTIFACT_KEY})
_MISSING: Any = object()


def _read_only() -> ReadOnlyError:
    return ReadOnlyError("this unit of work is read-only and cannot write")


def _duplicate(table: str, *columns: str) -> DuplicateError:
    constraint = ", ".join(f"{table}.{c}" for c in columns)
    return DuplicateError(f"duplicate on table {table} ({constraint})", table=table, constraint=constraint)


def _foreign_key(table: str, column: str) -> ForeignKeyViolationError:
    constraint = f"{table}.{column}"
    return ForeignKeyViolationError(
        f"foreign key violation on table {table} ({constraint})", table=table, constraint=constraint
    )


def _json_value(field: str, value: Any) -> Any:
    """``value`` as it comes back from a JSON column (tuples become lists, keys text)."""
    if value is None:
        return None
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise ValidationError(field, f"is not JSON-serialisable ({exc})") from None


def _stored(table: str, column: str, value: Any) -> Any:
    return _json_value(column, value) if column in _JSON[table] else value


def _loaded(table: str, column: str, value: Any) -> Any:
    # Rows are never changed in place; JSON values are copied so an entity never shares them.
    return json.loads(json.dumps(value)) if value is not None and column in _JSON[table] else value


def _page(items: builtins.list[Any], limit: int | None, offset: int) -> builtins.list[Any]:
    limit, offset = page_bounds(limit, offset)
    return items[offset : None if limit is None else offset + limit]


def _check_status(status: str | None) -> None:
    if status is not None:
        check_choice("status", status, PROJECT_STATUSES)


def _contains(haystack: str | None, needle: str) -> bool:
    return haystack is not None and needle in ascii_lower(haystack)


def _artifact_sort_key(row: Row) -> tuple[str, str, str, str]:
    """The list order (project_id, type, name, path); also the natural key, reordered."""
    return (row["project_id"], row["type"], row["name"], row["path"])


def _check_integrity(tables: Tables) -> None:
    """Every unique and foreign-key constraint over a whole state (used when merging a
    commit into a store that moved since the unit of work began).
    """
    paths: set[str] = set()
    for row in tables["projects"].values():
        if row["path"] in paths:
            raise _duplicate("projects", "path")
        paths.add(row["path"])
    keys: set[tuple[str, str, str, str]] = set()
    for row in tables["artifacts"].values():
        if row["project_id"] not in tables["projects"]:
            raise _foreign_key("artifacts", "project_id")
        if _artifact_sort_key(row) in keys:
            raise _duplicate("artifacts", *ARTIFACT_KEY)
        keys.add(_artifact_sort_key(row))
    for artifact_id in tables["artifact_metadata"]:
        if artifact_id not in tables["artifacts"]:
            raise _foreign_key("artifact_metadata", "artifact_id")


class FakeStore:
    """The committed state shared by the :class:`FakeUnitOfWork` instances built on it:
    one dict of rows (column values) per table, keyed by primary key.

    A unit of work works on a snapshot taken when it begins (or last committed or
    rolled back) and merges the rows it wrote back at commit. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: Tables = {name: {} for name in _MODELS}
        self._version = 0

    @property
    def version(self) -> int:
        """How many commits that wrote something this store has taken."""
        return self._version

    def unit_of_work(self, *, read_only: bool = False) -> FakeUnitOfWork:
        """A new unit of work on this store (a ready-made ``uow_factory``)."""
        return FakeUnitOfWork(read_only=read_only, store=self)

    def rows(self, table: str) -> builtins.list[Row]:
        """Copies of the committed rows of ``table`` (a table name of the schema, e.g.
        ``"projects"`` or ``"artifact_tags"``), in primary-key order.
        """
        with self._lock:
            tables = self._tables
        if table == "artifact_tags":
            pairs = [(key, tag) for key, row in tables["artifact_metadata"].items() for tag in row["tags"] or ()]
            return [{"artifact_id": key, "tag": tag} for key, tag in sorted(pairs)]
        if table not in tables:
            raise KeyError(f"no table {table!r}; known: {', '.join([*_MODELS, 'artifact_tags'])}")
        return [
            {column: _loaded(table, column, value) for column, value in row.items()}
            for _, row in sorted(tables[table].items())
        ]

    def count(self, table: str) -> int:
        """How many committed rows ``table`` holds."""
        return len(self.rows(table))

    def _snapshot(self) -> tuple[Tables, int]:
        # Rows are treated as immutable (every write puts a new dict), so copying the
        # per-table dicts is enough to isolate a unit of work.
        with self._lock:
            return {name: dict(rows) for name, rows in self._tables.items()}, self._version

    def _commit(self, tables: Tables, written: dict[str, set[Any]], base_version: int) -> None:
        with self._lock:
            if base_version == self._version:
                merged = {name: dict(rows) for name, rows in tables.items()}
            else:
                merged = {name: dict(rows) for name, rows in self._tables.items()}
                for name, keys in written.items():
                    for key in keys:
                        if key in tables[name]:
                            merged[name][key] = tables[name][key]
                        else:
                            merged[name].pop(key, None)
                _check_integrity(merged)
            self._tables = merged
            self._version += 1


class _Session:
    """The working state of one active FakeUnitOfWork: rows, written keys, an undo
    journal for savepoints and the identity map of materialised entities.
    """

    def __init__(self, store: FakeStore, read_only: bool) -> None:
        self.store = store
        self.read_only = read_only
        self.identity: dict[tuple[str, Any], Base] = {}
        self._reset()

    # -- state and savepoints ---------------------------------------------------

    def _reset(self) -> None:
        self.tables, self.base_version = self.store._snapshot()
        self.written: dict[str, set[Any]] = {name: set() for name in _MODELS}
        self.journal: list[tuple[str, Any, Any, bool]] = []
        self.mutations = 0  # bumped by every row write or undo
        self.by_project: dict[str, set[str]] = {}  # project id -> its artifact ids
        for key, row in self.tables["artifacts"].items():
            self.by_project.setdefault(row["project_id"], set()).add(key)
        self.wired: tuple[int, int] | None = None  # (mutations, identity size) at the last wire()

    def _write(self, table: str, key: Any, row: Row | None) -> None:
        old = self.tables[table].get(key, _MISSING)
        if table == "artifacts" and old is not _MISSING:
            self.by_project[old["project_id"]].discard(key)
        if row is None:
            self.tables[table].pop(key, None)
        else:
            self.tables[table][key] = row
            if table == "artifacts":
                self.by_project.setdefault(row["project_id"], set()).add(key)
        self.mutations += 1

    def put(self, table: str, key: Any, row: Row) -> None:
        self.journal.append((table, key, self.tables[table].get(key, _MISSING), key in self.written[table]))
        self._write(table, key, row)
        self.written[table].add(key)

    def remove(self, table: str, key: Any) -> None:
        self.journal.append((table, key, self.tables[table].get(key, _MISSING), key in self.written[table]))
        self._write(table, key, None)
        self.written[table].add(key)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        mark = len(self.journal)
        try:
            yield
        except BaseException:
            while len(self.journal) > mark:
                table, key, old, was_written = self.journal.pop()
                self._write(table, key, None if old is _MISSING else old)
                if not was_written:
                    self.written[table].discard(key)
            raise

    def guard(self) -> None:
        if self.read_only:
            raise _read_only()

    @contextmanager
    def op(self) -> Iterator[None]:
        """Every repository call: autoflush first, relationships re-filled after."""
        self.flush()
        try:
            yield
        finally:
            self.wire()

    # -- transactions -----------------------------------------------------------

    def autoflush(self) -> None:
        """Write pending entity changes before a repository call or a commit; when they
        cannot be written, roll back to the last commit (as the database session must) and raise.
        """
        try:
            self.flush()
        except Exception:
            self.rollback()
            raise

    def commit(self) -> None:
        self.autoflush()
        if any(self.written.values()):
            try:
                self.store._commit(self.tables, self.written, self.base_version)
            except Exception:
                self.rollback()  # a failed commit loses the transaction, as on a database
                raise
        self._reset()  # a new transaction sees every commit so far; entities keep their values
        self.wire()

    def rollback(self) -> None:
        self._reset()
        for (table, key), entity in list(self.identity.items()):
            row = self.tables[table].get(key)
            if row is None:
                del self.identity[(table, key)]
                continue
            for column in _COLUMNS[table]:
                set_committed_value(entity, column, _loaded(table, column, row[column]))
            self._commit_state(entity)
        self.wire()

    # -- rows -------------------------------------------------------------------

    def check(self, table: str, old_key: Any, row: Row, changed: Iterable[str] | None = None) -> None:
        """Raise what the database would for writing ``row`` (over ``old_key``, if any);
        ``changed`` (the columns an update sets) limits the checks to those they touch.
        """
        if changed is not None and not set(changed) & {_PK[table], "path", "project_id", "type", "name", "artifact_id"}:
            return
        rows = self.tables[table]
        key = row[_PK[table]]
        if key != old_key and key in rows:
            raise _duplicate(table, _PK[table])
        if old_key is not None and key != old_key and self._children(table, old_key):
            raise _foreign_key(
                "artifacts" if table == "projects" else "artifact_metadata",
                "project_id" if table == "projects" else "artifact_id",
            )
        if table == "projects":
            if any(k not in (key, old_key) and r["path"] == row["path"] for k, r in rows.items()):
                raise _duplicate("projects", "path")
        elif table == "artifacts":
            if row["project_id"] not in self.tables["projects"]:
                raise _foreign_key("artifacts", "project_id")
            natural = _artifact_sort_key(row)
            if any(k not in (key, old_key) and _artifact_sort_key(r) == natural for k, r in rows.items()):
                raise _duplicate("artifacts", *ARTIFACT_KEY)
        elif table == "artifact_metadata" and row["artifact_id"] not in self.tables["artifacts"]:
            raise _foreign_key("artifact_metadata", "artifact_id")

    def _children(self, table: str, key: Any) -> bool:
        if table == "projects":
            return bool(self.by_project.get(key))
        return table == "artifacts" and key in self.tables["artifact_metadata"]

    def delete(self, table: str, key: Any) -> None:
        """Delete a row and, like ON DELETE CASCADE, the rows that depend on it."""
        if table == "projects":
            for artifact_id in sorted(self.by_project.get(key, ())):
                self.delete("artifacts", artifact_id)
        elif table == "artifacts" and key in self.tables["artifact_metadata"]:
            self.delete("artifact_metadata", key)
        self.remove(table, key)

    # -- entities ---------------------------------------------------------------

    def load(self, table: str, key: Any) -> Any:
        """The entity for a stored row (from the identity map when already there)."""
        entity = self.identity.get((table, key))
        if entity is not None:
            return entity
        row = self.tables[table].get(key)
        if row is None:
            return None
        entity = _MODELS[table].__mapper__.class_manager.new_instance()
        for column in _COLUMNS[table]:
            set_committed_value(entity, column, _loaded(table, column, row[column]))
        self.identity[(table, key)] = entity
        return entity

    def tracked(self, entity: Any) -> bool:
        table = _TABLE_OF.get(type(entity))
        if table is None:
            return False
        state = instance_state(entity)
        key = state.committed_state.get(_PK[table], _MISSING)  # the loaded key, if changed since
        if key is _MISSING:
            key = state.dict.get(_PK[table])
        return self.identity.get((table, key)) is entity

    def refresh(self, table: str) -> None:
        """Reload loaded entities of ``table`` after a bulk write (the real one expires them)."""
        for (name, key), entity in self.identity.items():
            row = self.tables[name].get(key)
            if name != table or row is None:
                continue
            current = instance_dict(entity)
            for column in _COLUMNS[table]:
                if current.get(column, _MISSING) != row[column]:
                    set_committed_value(entity, column, _loaded(table, column, row[column]))

    @staticmethod
    def _commit_state(entity: Any) -> None:
        state = instance_state(entity)
        for key in list(state.committed_state):
            set_committed_value(entity, key, state.dict.get(key))

    @staticmethod
    def _sync_foreign_keys(entity: Any) -> None:
        current = instance_dict(entity)
        for model, relation, column in (
            (Artifact, "project", "project_id"),
            (ArtifactMetadata, "artifact", "artifact_id"),
        ):
            parent = current.get(relation)
            if isinstance(entity, model) and parent is not None and getattr(entity, column) != parent.id:
                setattr(entity, column, parent.id)

    def _closure(self, roots: Iterable[Any]) -> builtins.list[Any]:
        """Untracked entities reachable from ``roots`` (save-update cascade), parents first."""
        found: dict[int, Any] = {}
        stack = builtins.list(roots)
        while stack:
            obj = stack.pop()
            table = _TABLE_OF.get(type(obj))
            if table is None or id(obj) in found or self.tracked(obj):
                continue
            found[id(obj)] = obj
            current = instance_dict(obj)
            for relation in _RELATIONS.get(table, ()):
                value = current.get(relation)
                if isinstance(value, builtins.list):
                    stack.extend(value)
                elif value is not None:
                    stack.append(value)
        return sorted(found.values(), key=lambda o: _ORDER[_TABLE_OF[type(o)]])

    def insert(self, entities: Sequence[Any]) -> None:
        for entity in entities:
            table = _TABLE_OF[type(entity)]
            self._sync_foreign_keys(entity)
            row = {column: _stored(table, column, getattr(entity, column)) for column in _COLUMNS[table]}
            self.check(table, None, row)
            self.put(table, row[_PK[table]], row)

    def register(self, entities: Iterable[Any]) -> None:
        for entity in entities:
            table = _TABLE_OF[type(entity)]
            self.identity[(table, getattr(entity, _PK[table]))] = entity
            self._commit_state(entity)

    def add(self, entity: Any, model: type[Base]) -> Any:
        """Insert a new entity with what it cascades to (one savepoint)."""
        if not isinstance(entity, model):
            raise TypeError(f"expected a {model.__name__}, got {type(entity).__name__}")
        self.guard()
        with self.op():
            if self.tracked(entity):
                return entity
            new = self._closure([entity])
            with self.savepoint():
                self.insert(new)
            self.register(new)
        return entity

    def flush(self) -> None:
        """Write the changes made to loaded entities (the session's flush)."""
        roots: builtins.list[Any] = []
        orphans: dict[int, Any] = {}
        updates: builtins.list[tuple[str, Any, Any, Row]] = []
        touched: builtins.list[Any] = []
        for (table, key), entity in builtins.list(self.identity.items()):
            state = instance_state(entity)
            if not state.committed_state:
                continue
            touched.append(entity)
            for relation in _RELATIONS.get(table, ()):
                if relation not in state.committed_state:
                    continue
                history = state.attrs[relation].history
                roots.extend(o for o in history.added if not self.tracked(o))
                parent_attr = _ORPHANS.get((table, relation))
                if parent_attr is not None:
                    for obj in history.deleted:
                        if self.tracked(obj) and instance_dict(obj).get(parent_attr) is None:
                            orphans[id(obj)] = obj
            self._sync_foreign_keys(entity)
            row = self.tables[table][key]
            changed = {
                column: state.dict.get(column)
                for column in _COLUMNS[table]
                if column in state.committed_state and state.dict.get(column) != row[column]
            }
            if changed:
                updates.append((table, key, entity, changed))
        new = self._closure(roots)
        if touched:
            self.wired = None  # relationships were touched: re-fill them at the next wire()
        if not (new or orphans or updates):
            for entity in touched:
                self._commit_state(entity)
            return
        if self.read_only:
            raise _read_only()
        stamped: builtins.list[tuple[Any, str, datetime]] = []
        with self.savepoint():
            for obj in orphans.values():
                table = _TABLE_OF[type(obj)]
                self.delete(table, getattr(obj, _PK[table]))
            for table, key, entity, changed in sorted(updates, key=lambda u: _ORDER[u[0]]):
                if id(entity) in orphans:
                    continue
                row = {**self.tables[table][key], **{c: _stored(table, c, v) for c, v in changed.items()}}
                for column in _ONUPDATE[table]:
                    if column not in changed:
                        row[column] = utcnow()
                        stamped.append((entity, column, row[column]))
                self.check(table, key, row, changed)
                if row[_PK[table]] != key:
                    self.remove(table, key)
                self.put(table, row[_PK[table]], row)
            self.insert(new)
        for entity, column, value in stamped:
            set_committed_value(entity, column, value)
        for table, key, entity, _ in updates:
            if self.identity.get((table, key)) is entity and getattr(entity, _PK[table]) != key:
                del self.identity[(table, key)]
                self.identity[(table, getattr(entity, _PK[table]))] = entity
        for entity in touched:
            self._commit_state(entity)
        self.register(new)

    def wire(self) -> None:
        """Drop entities whose rows are gone and fill in the relationships of the rest
        from the rows (loading the whole project aggregate of any loaded entity).
        """
        if self.wired == (self.mutations, len(self.identity)):
            return  # nothing was written or loaded since the last call
        tables = self.tables
        for key in [k for k in self.identity if k[1] not in tables[k[0]]]:
            del self.identity[key]

        def loaded(table: str) -> builtins.list[Any]:
            return [key for name, key in self.identity if name == table]

        for key in loaded("artifact_metadata"):
            self.load("artifacts", key)
        for key in loaded("artifacts"):
            self.load("projects", tables["artifacts"][key]["project_id"])
        projects = set(loaded("projects"))
        children = {key: [tables["artifacts"][a] for a in self.by_project.get(key, ())] for key in projects}
        for rows in children.values():
            for row in rows:
                self.load("artifacts", row["id"])
        for key in loaded("artifacts"):
            if key in tables["artifact_metadata"]:
                self.load("artifact_metadata", key)
        for key in projects:
            rows = sorted(children[key], key=lambda r: (r["type"], r["name"], r["path"]))
            self._set_relation(
                self.identity[("projects", key)], "artifacts", [self.identity[("artifacts", r["id"])] for r in rows]
            )
        for key in loaded("artifacts"):
            artifact = self.identity[("artifacts", key)]
            self._set_relation(artifact, "project", self.identity[("projects", tables["artifacts"][key]["project_id"])])
            self._set_relation(artifact, "meta", self.identity.get(("artifact_metadata", key)))
        for key in loaded("artifact_metadata"):
            self._set_relation(self.identity[("artifact_metadata", key)], "artifact", self.identity[("artifacts", key)])
        self.wired = (self.mutations, len(self.identity))

    @staticmethod
    def _set_relation(entity: Any, relation: str, value: Any) -> None:
        state = instance_state(entity)
        if relation in state.committed_state:  # a change not flushed yet (a failed flush): keep it
            return
        current = state.dict.get(relation, _MISSING)
        if isinstance(value, builtins.list):
            if isinstance(current, builtins.list) and [id(o) for o in current] == [id(o) for o in value]:
                return
        elif current is value:
            return
        set_committed_value(entity, relation, value)

    def select(self, table: str, where: Callable[[Row], bool] | None = None) -> builtins.list[Row]:
        return [row for row in self.tables[table].values() if where is None or where(row)]

    def entities(self, table: str, rows: Iterable[Row]) -> builtins.list[Any]:
        return [self.load(table, row[_PK[table]]) for row in rows]


class _FakeRepository:
    def __init__(self, session: _Session) -> None:
        self._s = session

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in builtins.list(vars(cls).items()):
            if callable(value) and not name.startswith("_"):
                setattr(cls, name, _autoflushed(value))


def _autoflushed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Every repository call writes pending entity changes first, as the SQL ones do."""

    @functools.wraps(fn)
    def call(self: _FakeRepository, *args: Any, **kwargs: Any) -> Any:
        self._s.autoflush()
        return fn(self, *args, **kwargs)

    return call


class FakeProjectRepository(_FakeRepository, ProjectRepository):
    """Projects in memory (see :class:`FakeUnitOfWork`)."""

    def add(self, project: Project) -> Project:  # noqa: D102
        return self._s.add(project, Project)

    def get(self, id: str) -> Project | None:  # noqa: D102
        lookup_key("id", id)
        with self._s.op():
            return self._s.load("projects", id)

    def get_by_path(self, path: str) -> Project | None:  # noqa: D102
        lookup_key("path", path)
        with self._s.op():
            rows = self._s.select("projects", lambda r: r["path"] == path)
            return self._s.load("projects", rows[0]["id"]) if rows else None

    def _ordered(self, rows: builtins.list[Row]) -> builtins.list[Project]:
        return self._s.entities("projects", sorted(rows, key=lambda r: (r["name"], r["path"])))

    def list(  # noqa: D102
        self, status: str | None = None, limit: int | None = None, offset: int = 0
    ) -> builtins.list[Project]:
        _check_status(status)
        with self._s.op():
            rows = self._s.select("projects", None if status is None else lambda r: r["status"] == status)
            rows.sort(key=lambda r: (r["name"], r["path"]))
            return self._s.entities("projects", _page(rows, limit, offset))

    def stale(self, ttl: timedelta, now: datetime | None = None) -> builtins.list[Project]:  # noqa: D102
        cutoff = (ensure_utc(now, "now") if now is not None else utcnow()) - ttl
        with self._s.op():
            rows = self._s.select("projects", lambda r: r["last_fetched"] is None or r["last_fetched"] < cutoff)
            return self._ordered(rows)

    def count(self, status: str | None = None) -> int:  # noqa: D102
        _check_status(status)
        with self._s.op():
            return len(self._s.select("projects", None if status is None else lambda r: r["status"] == status))

    def delete(self, id: str) -> None:  # noqa: D102
        lookup_key("id", id)
        self._s.guard()
        with self._s.op():
            if id not in self._s.tables["projects"]:
                raise NotFoundError(f"no project with id {id!r}")
            with self._s.savepoint():
                self._s.delete("projects", id)

    def summaries(  # noqa: D102
        self, status: str | None = None, older_than: timedelta | None = None, now: datetime | None = None
    ) -> builtins.list[ProjectSummary]:
        _check_status(status)
        cutoff = None
        if older_than is not None:
            cutoff = (ensure_utc(now, "now") if now is not None else utcnow()) - older_than
        with self._s.op():
            rows = self._s.select(
                "projects",
                lambda r: (
                    (status is None or r["status"] == status)
                    and (cutoff is None or r["last_fetched"] is None or r["last_fetched"] < cutoff)
                ),
            )
            artifacts = self._s.tables["artifacts"]
            result = []
            for project in self._ordered(rows):
                ids = self._s.by_project.get(project.id, set())
                outdated = sum(1 for i in ids if artifacts[i]["is_outdated"])
                result.append(ProjectSummary(project, len(ids), outdated))
            return result

    def _update_ids(self, ids: Iterable[str], values: Row, skip: Callable[[Row], bool] | None = None) -> int:
        wanted = lookup_keys("id", ids)
        self._s.guard()
        with self._s.op():
            changed = 0
            with self._s.savepoint():
                for key in wanted:
                    row = self._s.tables["projects"].get(key)
                    if row is None or (skip is not None and skip(row)):
                        continue
                    self._s.put("projects", key, {**row, **values})
                    changed += 1
            self._s.refresh("projects")
            return changed

    def touch_many(self, ids: Iterable[str], when: datetime) -> int:  # noqa: D102
        when = ensure_utc(when, "when")
        return self._update_ids(ids, {"last_fetched": when, "updated_at": utcnow()})

    def mark_stale(self, ids: Iterable[str]) -> int:  # noqa: D102
        return self._update_ids(ids, {"status": "stale", "updated_at": utcnow()}, lambda r: r["status"] == "stale")


class FakeArtifactRepository(_FakeRepository, ArtifactRepository):
    """Artifacts in memory (see :class:`FakeUnitOfWork`)."""

    def _ordered(self, where: Callable[[Row], bool] | None) -> builtins.list[Row]:
        return sorted(self._s.select("artifacts", where), key=_artifact_sort_key)

    def add(self, artifact: Artifact) -> Artifact:  # noqa: D102
        return self._s.add(artifact, Artifact)

    def get(self, id: str) -> Artifact | None:  # noqa: D102
        lookup_key("id", id)
        with self._s.op():
            return self._s.load("artifacts", id)

    def get_by_key(self, project_id: str, type: str, name: str, path: str | None = None) -> Artifact | None:  # noqa: D102
        lookup_key("project_id", project_id)
        artifact_type_filter(type)
        lookup_key("name", name)
        if path is not None:
            lookup_key("path", path)
        with self._s.op():
            rows = self._ordered(
                lambda r: (
                    (r["project_id"], r["type"], r["name"]) == (project_id, type, name) and path in (None, r["path"])
                )
            )
            return self._s.load("artifacts", rows[0]["id"]) if rows else None

    def list_for_project(self, project_id: str, type: str | None = None) -> builtins.list[Artifact]:  # noqa: D102
        lookup_key("project_id", project_id)
        if type is not None:
            artifact_type_filter(type)
        with self._s.op():
            rows = self._ordered(lambda r: r["project_id"] == project_id and (type is None or r["type"] == type))
            return self._s.entities("artifacts", rows)

    def list_by_type(self, type: str) -> builtins.list[Artifact]:  # noqa: D102
        artifact_type_filter(type)
        with self._s.op():
            return self._s.entities("artifacts", self._ordered(lambda r: r["type"] == type))

    def outdated(self, project_id: str | None = None) -> builtins.list[Artifact]:  # noqa: D102
        if project_id is not None:
            lookup_key("project_id", project_id)
        with self._s.op():
            rows = self._ordered(lambda r: r["is_outdated"] is True and project_id in (None, r["project_id"]))
            return self._s.entities("artifacts", rows)

    def search(  # noqa: D102
        self,
        text: str,
        project_id: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> builtins.list[Artifact]:
        search_filters(text, project_id, type)
        needle = ascii_lower(text) if text else ""
        with self._s.op():
            metadata = self._s.tables["artifact_metadata"]

            def matches(row: Row) -> bool:
                if project_id is not None and row["project_id"] != project_id:
                    return False
                if type is not None and row["type"] != type:
                    return False
                if not needle:
                    return True
                meta = metadata.get(row["id"])
                return _contains(row["name"], needle) or (meta is not None and _contains(meta["description"], needle))

            return self._s.entities("artifacts", _page(self._ordered(matches), limit, offset))

    def count(self, project_id: str | None = None) -> int:  # noqa: D102
        if project_id is not None:
            lookup_key("project_id", project_id)
        with self._s.op():
            return len(self._s.select("artifacts", lambda r: project_id in (None, r["project_id"])))

    def delete(self, id: str) -> None:  # noqa: D102
        lookup_key("id", id)
        self._s.guard()
        with self._s.op():
            if id not in self._s.tables["artifacts"]:
                raise NotFoundError(f"no artifact with id {id!r}")
            with self._s.savepoint():
                self._s.delete("artifacts", id)

    def keys_for_project(self, project_id: str) -> dict[tuple[str, str, str], str]:  # noqa: D102
        lookup_key("project_id", project_id)
        with self._s.op():
            rows = self._s.tables["artifacts"]
            ids = self._s.by_project.get(project_id, ())
            return {(rows[i]["type"], rows[i]["path"], rows[i]["name"]): i for i in ids}

    def delete_many(self, ids: Iterable[str]) -> int:  # noqa: D102
        wanted = lookup_keys("id", ids)
        self._s.guard()
        with self._s.op():
            deleted = 0
            with self._s.savepoint():
                for key in wanted:
                    if key in self._s.tables["artifacts"]:
                        self._s.delete("artifacts", key)
                        deleted += 1
            return deleted

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        s = self._s
        prepared = artifact_rows(rows)
        s.guard()
        if not prepared:
            return 0
        with s.op():
            stored_rows = s.tables["artifacts"]
            index = {_artifact_sort_key(r): key for key, r in stored_rows.items()}
            now = utcnow()
            changed = 0
            with s.savepoint():
                for row in prepared:
                    natural = _artifact_sort_key(row)
                    stored = stored_rows.get(index.get(natural, _MISSING))
                    versions = None if stored is None else (stored["deployed_version"], stored["upstream_version"])
                    row["is_outdated"] = outdated_for(row, versions)
                    if stored is None:
                        new = {**dict.fromkeys(_COLUMNS["artifacts"]), "local_modified": False, **row}
                        for column, value in (("id", new_id()), ("created_at", now), ("updated_at", now)):
                            if new[column] is None:
                                new[column] = value
                        if new["id"] in stored_rows:
                            raise _duplicate("artifacts", "id")
                        if new["project_id"] not in s.tables["projects"]:
                            raise _foreign_key("artifacts", "project_id")
                        s.put("artifacts", new["id"], new)
                        index[natural] = new["id"]
                        changed += 1
                        continue
                    diff = {c: v for c, v in row.items() if c not in _ARTIFACT_COMPARED_SKIP and stored[c] != v}
                    if diff:
                        s.put("artifacts", stored["id"], {**stored, **diff, "updated_at": row.get("updated_at", now)})
                        changed += 1
            s.refresh("artifacts")
        return changed

    def update_many(self, changes: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        s = self._s
        prepared = merge_changes(changes)
        s.guard()
        if not prepared:
            return 0
        with s.op():
            now = utcnow()
            updated = 0
            with s.savepoint():
                for change in prepared:
                    stored = s.tables["artifacts"].get(change["id"])
                    if stored is None:
                        continue
                    change["is_outdated"] = outdated_for(
                        change, (stored["deployed_version"], stored["upstream_version"])
                    )
                    diff = {c: v for c, v in change.items() if c not in ("id", "updated_at") and stored[c] != v}
                    if not diff:
                        continue
                    row = {**stored, **diff, "updated_at": change.get("updated_at", now)}
                    s.check("artifacts", stored["id"], row, diff)
                    s.put("artifacts", stored["id"], row)
                    updated += 1
            s.refresh("artifacts")
        return updated


class FakeMarketplaceRepository(_FakeRepository, MarketplaceRepository):
    """Marketplace entries in memory (see :class:`FakeUnitOfWork`)."""

    def _ordered(self, where: Callable[[Row], bool] | None) -> builtins.list[MarketplaceEntry]:
        rows = sorted(self._s.select("marketplace", where), key=lambda r: (r["type"], r["name"], r["id"]))
        return self._s.entities("marketplace", rows)

    def add(self, entry: MarketplaceEntry) -> MarketplaceEntry:  # noqa: D102
        return self._s.add(entry, MarketplaceEntry)

    def get(self, id: str) -> MarketplaceEntry | None:  # noqa: D102
        lookup_key("id", id)
        with self._s.op():
            return self._s.load("marketplace", id)

    def list(self, type: str | None = None) -> builtins.list[MarketplaceEntry]:  # noqa: D102
        if type is not None:
            artifact_type_filter(type)
        with self._s.op():
            return self._ordered(None if type is None else lambda r: r["type"] == type)

    def search(self, text: str) -> builtins.list[MarketplaceEntry]:  # noqa: D102
        check_text("text", text)
        needle = ascii_lower(text) if text else ""
        with self._s.op():
            return self._ordered(
                lambda r: not needle or _contains(r["name"], needle) or _contains(r["description"], needle)
            )

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        s = self._s
        prepared = marketplace_rows(rows, utcnow())
        s.guard()
        if not prepared:
            return 0
        with s.op():
            with s.savepoint():
                for row in prepared:
                    stored = s.tables["marketplace"].get(row["id"]) or dict.fromkeys(_COLUMNS["marketplace"])
                    new = {**stored, **{c: _stored("marketplace", c, v) for c, v in row.items()}}
                    s.put("marketplace", row["id"], new)
            s.refresh("marketplace")
        # Like the SQL implementation (ON CONFLICT DO UPDATE without a WHERE), every row counts.
        return len(prepared)

    def purge_older_than(self, age: timedelta, now: datetime | None = None) -> int:  # noqa: D102
        cutoff = (ensure_utc(now, "now") if now is not None else utcnow()) - age
        self._s.guard()
        with self._s.op():
            old = [r["id"] for r in self._s.select("marketplace", lambda r: r["cached_at"] < cutoff)]
            with self._s.savepoint():
                for key in old:
                    self._s.delete("marketplace", key)
            return len(old)


class FakeMetadataRepository(_FakeRepository, MetadataRepository):
    """Artifact metadata and the cache key/value store in memory (see :class:`FakeUnitOfWork`)."""

    def get(self, artifact_id: str) -> ArtifactMetadata | None:  # noqa: D102
        lookup_key("artifact_id", artifact_id)
        with self._s.op():
            return self._s.load("artifact_metadata", artifact_id)

    def set(  # noqa: D102
        self,
        artifact_id: str,
        *,
        data: Mapping[str, Any] | None,
        description: str | None = None,
        tags: Sequence[str] = (),
        aliases: Sequence[str] = (),
    ) -> ArtifactMetadata:
        s = self._s
        values = metadata_values(data, description, tags, aliases)
        new = ArtifactMetadata(artifact_id=artifact_id, **values)  # validates everything first
        _json_value("data", new.data)
        s.guard()
        with s.op():
            meta = s.load("artifact_metadata", artifact_id)
            if meta is None:
                with s.savepoint():
                    s.insert([new])
                s.register([new])
                return new
            for key, value in values.items():
                setattr(meta, key, value)
            s.flush()
            return meta

    def get_many(self, artifact_ids: Iterable[str]) -> dict[str, ArtifactMetadata]:  # noqa: D102
        wanted = lookup_keys("artifact_id", artifact_ids)
        with self._s.op():
            found = {}
            for key in wanted:
                meta = self._s.load("artifact_metadata", key)
                if meta is not None:
                    found[key] = meta
            return found

    def set_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        s = self._s
        prepared = metadata_rows(rows)
        s.guard()
        if not prepared:
            return 0
        with s.op():
            changed = 0
            with s.savepoint():
                for row in prepared:
                    key = row["artifact_id"]
                    stored = s.tables["artifact_metadata"].get(key)
                    if stored is not None and all(stored[c] == row[c] for c in row):
                        continue
                    new = {**(stored or dict.fromkeys(_COLUMNS["artifact_metadata"])), **row}
                    s.check("artifact_metadata", key if stored else None, new)
                    s.put("artifact_metadata", key, new)
                    changed += 1
            s.refresh("artifact_metadata")
            return changed

    def artifacts_with_tag(self, tag: str) -> builtins.list[Artifact]:  # noqa: D102
        lookup_key("tag", tag)
        with self._s.op():
            metadata = self._s.tables["artifact_metadata"]
            rows = sorted(
                self._s.select("artifacts", lambda r: r["id"] in metadata and tag in (metadata[r["id"]]["tags"] or ())),
                key=_artifact_sort_key,
            )
            return self._s.entities("artifacts", rows)

    def get_value(self, key: str) -> str | None:  # noqa: D102
        lookup_key("key", key)
        with self._s.op():
            row = self._s.tables["cache_metadata"].get(key)
            return None if row is None else row["value"]

    def set_value(self, key: str, value: str) -> None:  # noqa: D102
        probe = CacheMetadata(key=key, value=value)  # validates key and value
        self._s.guard()
        with self._s.op():
            stored = self._s.tables["cache_metadata"].get(key)
            if stored is None:
                self._s.put("cache_metadata", key, {"key": key, "value": value, "updated_at": probe.updated_at})
            elif stored["value"] != value:
                self._s.put("cache_metadata", key, {**stored, "value": value, "updated_at": utcnow()})

    def delete_value(self, key: str) -> bool:  # noqa: D102
        lookup_key("key", key)
        self._s.guard()
        with self._s.op():
            if key not in self._s.tables["cache_metadata"]:
                return False
            self._s.delete("cache_metadata", key)
            return True


class FakeUnitOfWork(AbstractUnitOfWork):
    """An in-memory unit of work whose repositories are the fakes of this module.

    ``store`` holds the committed state; units of work built on the same
    :class:`FakeStore` see each other's commits (and nothing uncommitted). Without
    one, each instance gets its own store, kept across re-entries of that instance.

    For assertions: ``committed`` is True once a commit happened (a clean exit counts),
    ``commits`` and ``rollbacks`` count them (an exception in the block counts as a
    rollback), ``store`` exposes the rows.
    """

    projects: FakeProjectRepository
    artifacts: FakeArtifactRepository
    marketplace: FakeMarketplaceRepository
    metadata: FakeMetadataRepository

    def __init__(self, *, read_only: bool = False, store: FakeStore | None = None) -> None:
        super().__init__(read_only=read_only)
        self.store = store if store is not None else FakeStore()
        self.committed = False
        self.commits = 0
        self.rollbacks = 0
        self._session: _Session | None = None

    @property
    def _active_session(self) -> _Session:
        if self._session is None:
            raise UnitOfWorkActiveError("the unit of work is not active; use it in a `with` block")
        return self._session

    def _begin(self) -> None:
        session = _Session(self.store, self.read_only)
        self._session = session
        self.projects = FakeProjectRepository(session)
        self.artifacts = FakeArtifactRepository(session)
        self.marketplace = FakeMarketplaceRepository(session)
        self.metadata = FakeMetadataRepository(session)

    def _abort(self) -> None:
        # Like closing the real session: the work is dropped, loaded entities keep their values.
        self.rollbacks += 1

    def _end(self) -> None:
        self._session = None
        for name in ("projects", "artifacts", "marketplace", "metadata"):
            self.__dict__.pop(name, None)

    def commit(self) -> None:  # noqa: D102
        self._active_session.commit()
        self.committed = True
        self.commits += 1

    def rollback(self) -> None:  # noqa: D102
        self._active_session.rollback()
        self.rollbacks += 1


@contextmanager
def throwaway_postgres_database(admin_url: str, prefix: str, options: str = "") -> Iterator[str]:
    """Create an empty database on the server of ``admin_url`` (a user who may create
    databases), yield its URL, drop it afterwards (``WITH (FORCE)``). ``options`` are extra
    ``CREATE DATABASE`` clauses (e.g. a collation). DatabaseUnavailableError, before
    anything is yielded, when the server cannot be reached or psycopg is missing.
    """
    from sqlalchemy.engine import make_url

    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DatabaseUnavailableError(f"psycopg is not installed ({exc})") from exc
    admin = make_url(admin_url)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}" {options}')
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(f"PostgreSQL not reachable: {str(exc).splitlines()[0]}") from exc
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

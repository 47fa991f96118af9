"""In-memory fakes of the unit of work and the four repositories, for service tests.

The store keeps the committed rows: per table, a dict from primary key to row (a dict of
column values, replaced on write, never changed in place). A unit of work writes into a
copy of those dicts and publishes the rows it wrote at commit; rollback takes a new copy.
Entities are model instances built from rows; the unit of work remembers those it
returned, writes their changed columns before every repository call and at commit, and
refreshes them after every write. The contract, and what the fake does not do, is in
:mod:`skillmeat_cache.repositories.base`.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from ..errors import DuplicateError, ReadOnlyError, UnitOfWorkActiveError
from ..models import Project
from ..uow import AbstractUnitOfWork
from ..values import utcnow
from .repositories import (
    FakeArtifactRepository,
    FakeMarketplaceRepository,
    FakeMetadataRepository,
    FakeProjectRepository,
)
from .tables import COLUMNS, MODELS, PK, Row, Tables, check_integrity, copy_value, violation

__all__ = ["FakeStore", "FakeUnitOfWork"]


class FakeStore:
    """The committed state shared by the units of work built on it (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: Tables = {table: {} for table in MODELS}
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
        return [
            {column: copy_value(value) for column, value in row.items()} for _, row in sorted(tables[table].items())
        ]

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
            check_integrity(merged)
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
            check_integrity(self._tables)
        except BaseException:
            self._tables, self._written, self._loaded = saved
            raise
        self._sync()

    def _put(self, table: str, row: Row, *, new: bool = False) -> None:
        if new and row[PK[table]] in self._tables[table]:
            raise violation(DuplicateError, table, PK[table])
        self._tables[table][row[PK[table]]] = row
        self._written.add((table, row[PK[table]]))

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
        if (table, row[PK[table]]) not in self._loaded:
            # No None: no model default applies to a stored None, and Artifact's validator
            # refuses content_hash=None although the column is nullable.
            entity = MODELS[table](**{column: copy_value(value) for column, value in row.items() if value is not None})
            self._loaded[(table, row[PK[table]])] = (entity, row)
            if table == "projects":
                self._fill_artifacts({row["id"]: entity})
        return self._loaded[(table, row[PK[table]])][0]

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
            for column in COLUMNS[table] if force or row is not seen else ():  # versions before is_outdated
                if getattr(entity, column) == row[column]:
                    continue
                if row[column] is None:
                    delattr(entity, column)  # reads None again, bypassing the validator (see _entity)
                else:
                    setattr(entity, column, copy_value(row[column]))
            self._loaded[(table, key)] = (entity, row)
        self._fill_artifacts({key: e for (table, key), (e, _) in self._loaded.items() if table == "projects"})

    def _add(self, entity: Any, model: type[Any]) -> Any:
        """Insert a new entity, and a new project's artifacts, in one atomic write."""
        if not isinstance(entity, model):
            raise TypeError(f"expected a {model.__name__}, got {type(entity).__name__}")
        table = model.__tablename__
        with self._writing():
            if self._loaded.get((table, getattr(entity, PK[table])), (None,))[0] is entity:
                return entity  # already stored: nothing to do, as with a session
            # A new project's artifacts go in with it (a backref may have listed one twice).
            attached = {id(a): a for a in entity.artifacts}.values() if model is Project else ()
            for obj in (entity, *attached):
                if obj is not entity and obj.project_id != entity.id:
                    obj.project_id = entity.id  # as a flush would
                name = obj.__tablename__
                row = {column: copy_value(getattr(obj, column)) for column in COLUMNS[name]}
                self._put(name, row, new=True)
                self._loaded[(name, row[PK[name]])] = (obj, row)
        return entity

    def _autoflush(self) -> None:
        """Write the changed columns of returned entities; on failure go back to the last commit."""
        changed = []
        for (table, key), (entity, row) in self._loaded.items():
            if (values := {column: copy_value(getattr(entity, column)) for column in COLUMNS[table]}) != row:
                if values[PK[table]] != key:
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

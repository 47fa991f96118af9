"""In-memory fakes of the unit of work and the four repositories, for service tests: rows are
dicts of column values (replaced on write, never changed in place), entities model instances
made from them. The contract, and what the fake does not do: :mod:`skillmeat_cache.repositories.base`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from typing import Any

from ..errors import DuplicateError, ReadOnlyError, UnitOfWorkActiveError
from ..models import Project
from ..uow import AbstractUnitOfWork
from ..values import utcnow
from . import repositories as fake
from .repositories import COLUMNS, MODELS, ORDER, PK, Row, Tables, check_integrity, row_of, violation

__all__ = ["FakeStore", "FakeUnitOfWork"]


class FakeStore:
    """The committed state shared by the units of work built on it (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: Tables = {table: {} for table in MODELS}  # replaced by each commit, never changed
        self.version = 0  # how many commits that wrote something it has taken

    def unit_of_work(self, *, read_only: bool = False) -> FakeUnitOfWork:
        """A new unit of work on this store (a ready-made ``uow_factory``)."""
        return FakeUnitOfWork(read_only=read_only, store=self)

    def rows(self, table: str) -> list[Row]:
        """Copies of the committed rows of a table (``"artifact_tags"`` too), by primary key."""
        if table == "artifact_tags":
            pairs = sorted((key, tag) for key, row in self._tables["artifact_metadata"].items() for tag in row["tags"])
            return [{"artifact_id": key, "tag": tag} for key, tag in pairs]
        return [deepcopy(row) for _, row in sorted(self._tables[table].items())]

    def count(self, table: str) -> int:
        """How many committed rows ``table`` holds."""
        return len(self.rows(table))

    def _publish(self, base: Tables, tables: Tables) -> None:
        """Apply what ``tables`` changed since ``base`` over the latest state and check the constraints."""
        if tables == base:
            return
        with self._lock:
            merged = {}
            for table, rows in tables.items():
                kept = {key: row for key, row in self._tables[table].items() if key in rows or key not in base[table]}
                merged[table] = kept | {key: row for key, row in rows.items() if row is not base[table].get(key)}
            check_integrity(merged)
            self._tables, self.version = merged, self.version + 1


class FakeUnitOfWork(AbstractUnitOfWork):
    """An in-memory unit of work on ``store`` (else on a store of its own). For assertions:
    ``committed`` (a clean exit counts), ``commits`` and ``rollbacks`` (an exception counts).
    """

    def __init__(self, *, read_only: bool = False, store: FakeStore | None = None) -> None:
        super().__init__(read_only=read_only)
        self.store = store if store is not None else FakeStore()
        self.committed, self.commits, self.rollbacks = False, 0, 0

    def _begin(self) -> None:
        self._loaded: dict[tuple[str, Any], Any] = {}  # (table, key) -> the entity returned for that row
        self._restart()
        self.projects: fake.FakeProjectRepository = fake.FakeProjectRepository(self)
        self.artifacts: fake.FakeArtifactRepository = fake.FakeArtifactRepository(self)
        self.marketplace: fake.FakeMarketplaceRepository = fake.FakeMarketplaceRepository(self)
        self.metadata: fake.FakeMetadataRepository = fake.FakeMetadataRepository(self)

    def _abort(self) -> None:
        self.rollbacks += 1  # nothing else: entities keep their values, as when a session closes

    def _end(self) -> None:
        for name in ("projects", "artifacts", "marketplace", "metadata"):
            self.__dict__.pop(name, None)

    def commit(self) -> None:  # noqa: D102
        if not self.active:
            raise UnitOfWorkActiveError("the unit of work is not active; use it in a `with` block")
        self._autoflush()
        try:
            self.store._publish(self._base, self._tables)
        finally:
            self._restart()  # after a failed commit too: it loses the transaction, as on a database
        self.committed, self.commits = True, self.commits + 1

    def rollback(self) -> None:  # noqa: D102
        if not self.active:
            raise UnitOfWorkActiveError("the unit of work is not active; use it in a `with` block")
        self._restart()
        self.rollbacks += 1

    def _restart(self) -> None:  # go on from the latest commit
        self._base = self.store._tables
        self._tables = {table: dict(rows) for table, rows in self._base.items()}
        self._sync()

    @contextmanager
    def _writing(self, *, flush: bool = False) -> Iterator[Tables]:
        """One write: read-only refused, atomic, constraints checked; a failed ``flush`` rolls back."""
        saved = {table: dict(rows) for table, rows in self._tables.items()}
        try:
            if self.read_only:
                raise ReadOnlyError("this unit of work is read-only and cannot write")
            yield self._tables
            check_integrity(self._tables)
        except BaseException:
            self._tables = saved
            if flush:
                self._restart()
            raise
        finally:
            self._sync()

    def _put(self, table: str, row: Row, *, new: bool = False) -> None:
        if new and row[PK[table]] in self._tables[table]:
            raise violation(DuplicateError, table, PK[table])
        self._tables[table][row[PK[table]]] = row

    def _entity(self, table: str, row: Row) -> Any:  # the one returned before, else a new one
        if (key := (table, row[PK[table]])) not in self._loaded:
            self._loaded[key] = MODELS[table](**deepcopy(row))
            if table == "projects":
                self._fill(self._loaded[key])
        return self._loaded[key]

    def _fill(self, project: Project) -> None:
        """Set ``project.artifacts`` from the rows (a backref sets each one's ``project``)."""
        rows = [row for row in self._tables["artifacts"].values() if row["project_id"] == project.id]
        project.artifacts = [self._entity("artifacts", row) for row in sorted(rows, key=ORDER["artifacts"])]

    def _sync(self) -> None:
        """Refresh returned entities from their rows; forget those whose row is gone."""
        self._loaded = {(table, key): e for (table, key), e in self._loaded.items() if key in self._tables[table]}
        for (table, key), entity in list(self._loaded.items()):
            row = self._tables[table][key]
            for column in COLUMNS[table]:  # the versions before is_outdated, which they set
                if getattr(entity, column) != row[column]:
                    setattr(entity, column, deepcopy(row[column]))
            if table == "projects":
                self._fill(entity)

    def _add(self, entity: Any) -> Any:
        """Insert a new entity, and a new project's artifacts, in one atomic write."""
        with self._writing():
            if entity in self._loaded.values():
                return entity  # already stored: nothing to do, as with a session
            # A new project's artifacts go in with it (a backref may have listed one twice).
            for obj in dict.fromkeys([entity, *(entity.artifacts if isinstance(entity, Project) else ())]):
                if obj is not entity:
                    obj.project_id = entity.id  # as a flush would
                self._put(obj.__tablename__, row_of(obj), new=True)
                self._loaded[(obj.__tablename__, getattr(obj, PK[obj.__tablename__]))] = obj
        return entity

    def _autoflush(self) -> None:
        """Write the changed columns of returned entities; on failure go back to the last commit."""
        rows = {(table, key): row_of(entity) for (table, key), entity in self._loaded.items()}
        changed = {(table, key): row for (table, key), row in rows.items() if row != self._tables[table][key]}
        if changed:
            with self._writing(flush=True) as tables:
                for (table, key), row in changed.items():
                    if row[PK[table]] != key:
                        raise NotImplementedError("the fake does not change the primary key of a stored entity")
                    if "updated_at" in row and row["updated_at"] == tables[table][key]["updated_at"]:
                        row["updated_at"] = utcnow()
                    self._put(table, row)

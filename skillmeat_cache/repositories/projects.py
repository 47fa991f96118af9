"""The project repository on SQLAlchemy."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session

from ..column_types import JSONDocument
from ..errors import NotFoundError
from ..models import (
    Artifact,
    ArtifactMetadata,
    ArtifactTag,
    Project,
)
from ..values import PROJECT_STATUSES, check_choice, ensure_utc, new_id, utcnow
from . import base, bulk
from .bulk import (
    atomic,
    chunks,
    insert_values,
    rows_per_statement,
    sql_for,
    statement_count,
    write_connection,
)
from .common import (
    add_entity,
    check_writable,
    expire_loaded,
    forget_artifacts,
    loads_entities,
    page,
    translate_errors,
)
from .rows import (
    lookup_key,
    lookup_keys,
)
from .statements import (
    PROJECT_BY_PATH,
    PROJECT_ORDER,
    summaries_statement,
)

PROJECTS = Project.__table__
# (column, attribute) of every projects column, in table order, and the JSON ones.
_PROJECT_COLUMNS = tuple(
    (column.name, Project.__mapper__.get_property_by_column(column).key) for column in PROJECTS.columns
)
_JSON_COLUMNS = frozenset(column.name for column in PROJECTS.columns if isinstance(column.type, JSONDocument))


def _bound(sql: bulk.Sql, column: str, value: Any) -> Any:
    """A value as the column's type would bind it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return sql.timestamp(value)
    if column in _JSON_COLUMNS:
        return json.dumps(value)
    return value

__all__ = ["SqlAlchemyProjectRepository"]


@translate_errors
class SqlAlchemyProjectRepository(base.ProjectRepository):
    """Projects in a SQL database."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, project: Project) -> Project:  # noqa: D102
        return add_entity(self._session, project)

    def add_many(self, projects: Iterable[Project]) -> builtins.list[str]:  # noqa: D102
        items = builtins.list(projects)  # each validated as it was built
        check_writable(self._session)
        if not items:
            return []
        conn, sql = write_connection(self._session)
        now = utcnow()
        values = []
        for project in items:
            if project.id is None:
                project.id = new_id()
            for stamp in ("created_at", "updated_at"):
                if getattr(project, stamp) is None:
                    setattr(project, stamp, now)
            if project.status is None:
                project.status = "active"
            values.append(tuple(_bound(sql, column, getattr(project, key)) for column, key in _PROJECT_COLUMNS))
        head = f"INSERT INTO projects ({', '.join(column for column, _ in _PROJECT_COLUMNS)})"
        row = f"({', '.join(sql.json if column in _JSON_COLUMNS else sql.p for column, _ in _PROJECT_COLUMNS)})"
        size = rows_per_statement(conn, sql, len(_PROJECT_COLUMNS))
        with atomic(conn, sql.pg or statement_count(len(values), size) > 1):
            insert_values(conn, head, row, "", values, size)
        return [project.id for project in items]

    def get(self, id: str) -> Project | None:  # noqa: D102
        return self._session.get(Project, lookup_key("id", id))

    def get_by_path(self, path: str) -> Project | None:  # noqa: D102
        lookup_key("path", path)
        return self._session.scalars(PROJECT_BY_PATH, {"path": path}).one_or_none()

    def _where_status(self, stmt: Select[Any], status: str | None) -> Select[Any]:
        if status is None:
            return stmt
        return stmt.where(Project.status == check_choice("status", status, PROJECT_STATUSES))

    @loads_entities
    def list(  # noqa: D102
        self, status: str | None = None, limit: int | None = None, offset: int = 0
    ) -> builtins.list[Project]:
        stmt = self._where_status(select(Project), status).order_by(*PROJECT_ORDER)
        return builtins.list(self._session.scalars(page(stmt, limit, offset)))

    @loads_entities
    def stale(self, ttl: timedelta, now: datetime | None = None) -> builtins.list[Project]:  # noqa: D102
        cutoff = (ensure_utc(now, "now") if now is not None else utcnow()) - ttl
        stmt = (
            select(Project)
            .where(or_(Project.last_fetched.is_(None), Project.last_fetched < cutoff))
            .order_by(*PROJECT_ORDER)
        )
        return builtins.list(self._session.scalars(stmt))

    def count(self, status: str | None = None) -> int:  # noqa: D102
        stmt = self._where_status(select(func.count()).select_from(Project), status)
        return int(self._session.scalar(stmt) or 0)

    def delete(self, id: str) -> None:  # noqa: D102
        # One DELETE; the database cascades to artifacts, metadata and tags (the ORM would
        # load the project first and delete every loaded child one by one).
        lookup_key("id", id)
        session = self._session
        conn, sql = write_connection(session)
        loaded = any(
            isinstance(obj, (Artifact, ArtifactMetadata, ArtifactTag)) for obj in session.identity_map.values()
        )
        children: set[str] = set()
        if loaded:
            found = conn.exec_driver_sql(f"SELECT id FROM artifacts WHERE project_id = {sql.p}", (id,))
            children = {row[0] for row in found}
        if conn.exec_driver_sql(f"DELETE FROM projects WHERE id = {sql.p}", (id,)).rowcount < 1:
            raise NotFoundError(f"no project with id {id!r}")
        project = session.identity_map.get(session.identity_key(Project, id))
        if project is not None:
            session.expunge(project)
        if children:
            forget_artifacts(session, children)

    @loads_entities
    def summaries(  # noqa: D102
        self, status: str | None = None, older_than: timedelta | None = None, now: datetime | None = None
    ) -> builtins.list[base.ProjectSummary]:
        params: dict[str, Any] = {}
        if status is not None:
            self._where_status(select(Project), status)  # validates
            params["status"] = status
        if older_than is not None:
            params["cutoff"] = (ensure_utc(now, "now") if now is not None else utcnow()) - older_than
        stmt = summaries_statement(status is not None, older_than is not None)
        return [base.ProjectSummary(p, int(n), int(o)) for p, n, o in self._session.execute(stmt, params)]

    def _update_ids(self, ids: Iterable[str], values: dict[str, Any], where: Any = None) -> int:
        wanted = lookup_keys("id", ids)
        check_writable(self._session)
        if not wanted:
            return 0
        self._session.flush()
        changed = 0
        conn = self._session.connection()
        with atomic(conn, sql_for(conn).pg or len(wanted) > bulk.CHUNK_SIZE):
            for chunk in chunks(wanted):
                stmt = update(PROJECTS).where(PROJECTS.c.id.in_(chunk)).values(values)
                if where is not None:
                    stmt = stmt.where(where)
                changed += max(self._session.execute(stmt).rowcount, 0)
        expire_loaded(self._session, Project, wanted)
        return changed

    def touch_many(self, ids: Iterable[str], when: datetime) -> int:  # noqa: D102
        when = ensure_utc(when, "when")
        return self._update_ids(ids, {"last_fetched": when, "updated_at": utcnow()})

    def mark_stale(self, ids: Iterable[str]) -> int:  # noqa: D102
        return self._update_ids(ids, {"status": "stale", "updated_at": utcnow()}, PROJECTS.c.status != "stale")

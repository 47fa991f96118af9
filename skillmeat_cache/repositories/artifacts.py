"""The artifact repository on SQLAlchemy."""

from __future__ import annotations

import builtins
import operator
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, delete, func, or_, select
from sqlalchemy.orm import Session

from ..errors import NotFoundError
from ..models import (
    Artifact,
    ArtifactMetadata,
    new_id,
)
from ..values import utcnow
from . import base, bulk
from .bulk import (
    ARTIFACT_COLUMNS,
    artifact_update_sql,
    artifact_upsert_sql,
    atomic,
    chunks,
    insert_values,
    returned_values,
    rows_per_statement,
    sql_for,
    statement_count,
    write_connection,
)
from .common import (
    add_entity,
    check_writable,
    contains,
    expire_collections,
    expire_loaded,
    forget_artifacts,
    loads_entities,
    page,
    translate_errors,
)
from .rows import (
    ARTIFACT_KEY,
    artifact_rows,
    artifact_type_filter,
    lookup_key,
    lookup_keys,
    merge_changes,
    outdated_for,
    search_filters,
)
from .statements import (
    ARTIFACT_BY_KEY,
    ARTIFACTS_OF_PROJECT,
    ARTIFACTS_OF_PROJECT_TYPE,
    ARTIFACTS_OF_TYPE,
    FIRST_ARTIFACT_BY_NAME,
    ORDER,
    OUTDATED,
    OUTDATED_OF_PROJECT,
    artifact_key,
)

ARTIFACTS = Artifact.__table__

_RETURNING = f"RETURNING {', '.join(ARTIFACT_KEY)}, id"

__all__ = ["SqlAlchemyArtifactRepository"]


@translate_errors
class SqlAlchemyArtifactRepository(base.ArtifactRepository):
    """Artifacts in a SQL database."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, artifact: Artifact) -> Artifact:  # noqa: D102
        return add_entity(self._session, artifact)

    def get(self, id: str) -> Artifact | None:  # noqa: D102
        return self._session.get(Artifact, lookup_key("id", id))

    def get_by_key(self, project_id: str, type: str, name: str, path: str | None = None) -> Artifact | None:  # noqa: D102
        lookup_key("project_id", project_id)
        artifact_type_filter(type)
        lookup_key("name", name)
        params = {"project_id": project_id, "type": type, "name": name}
        if path is None:
            return self._session.scalars(FIRST_ARTIFACT_BY_NAME, params).one_or_none()
        params["path"] = lookup_key("path", path)
        return self._session.scalars(ARTIFACT_BY_KEY, params).one_or_none()

    @loads_entities
    def list_for_project(self, project_id: str, type: str | None = None) -> builtins.list[Artifact]:  # noqa: D102
        lookup_key("project_id", project_id)
        if type is None:
            return self._session.scalars(ARTIFACTS_OF_PROJECT, {"project_id": project_id}).all()  # type: ignore[return-value]
        params = {"project_id": project_id, "type": artifact_type_filter(type)}
        return self._session.scalars(ARTIFACTS_OF_PROJECT_TYPE, params).all()  # type: ignore[return-value]

    @loads_entities
    def list_by_type(self, type: str) -> builtins.list[Artifact]:  # noqa: D102
        return self._session.scalars(ARTIFACTS_OF_TYPE, {"type": artifact_type_filter(type)}).all()  # type: ignore[return-value]

    @loads_entities
    def outdated(self, project_id: str | None = None) -> builtins.list[Artifact]:  # noqa: D102
        if project_id is None:
            return self._session.scalars(OUTDATED).all()  # type: ignore[return-value]
        lookup_key("project_id", project_id)
        return self._session.scalars(OUTDATED_OF_PROJECT, {"project_id": project_id}).all()  # type: ignore[return-value]

    @loads_entities
    def search(  # noqa: D102
        self,
        text: str,
        project_id: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> builtins.list[Artifact]:
        search_filters(text, project_id, type)
        stmt = select(Artifact)
        if text:
            stmt = stmt.outerjoin(ArtifactMetadata, ArtifactMetadata.artifact_id == Artifact.id).where(
                or_(contains(Artifact.name, text), contains(ArtifactMetadata.description, text))
            )
        if project_id is not None:
            stmt = stmt.where(Artifact.project_id == project_id)
        if type is not None:
            stmt = stmt.where(Artifact.type == type)
        stmt = page(stmt.order_by(*ORDER), limit, offset)
        return builtins.list(self._session.scalars(stmt))

    def count(self, project_id: str | None = None) -> int:  # noqa: D102
        stmt = select(func.count()).select_from(Artifact)
        if project_id is not None:
            stmt = stmt.where(Artifact.project_id == lookup_key("project_id", project_id))
        return int(self._session.scalar(stmt) or 0)

    def delete(self, id: str) -> None:  # noqa: D102
        lookup_key("id", id)
        check_writable(self._session)
        artifact = self._session.get(Artifact, id)
        if artifact is None:
            raise NotFoundError(f"no artifact with id {id!r}")
        self._session.delete(artifact)
        self._session.flush()

    def keys_for_project(self, project_id: str) -> dict[tuple[str, str, str], str]:  # noqa: D102
        lookup_key("project_id", project_id)
        self._session.flush()
        conn = self._session.connection()
        found = conn.exec_driver_sql(
            f"SELECT type, path, name, id FROM artifacts WHERE project_id = {sql_for(conn).p}", (project_id,)
        )
        return {(type_, path, name): id_ for type_, path, name, id_ in found}

    def delete_many(self, ids: Iterable[str]) -> int:  # noqa: D102
        wanted = lookup_keys("id", ids)
        check_writable(self._session)
        if not wanted:
            return 0
        self._session.flush()
        deleted = 0
        conn = self._session.connection()
        with atomic(conn, sql_for(conn).pg or len(wanted) > bulk.CHUNK_SIZE):
            for chunk in chunks(wanted):
                deleted += max(self._session.execute(delete(ARTIFACTS).where(ARTIFACTS.c.id.in_(chunk))).rowcount, 0)
        forget_artifacts(self._session, set(wanted))
        expire_collections(self._session)
        return deleted

    # -- bulk paths -------------------------------------------------------------

    def _stored_versions(
        self, conn: Connection, keys: Iterable[tuple[str, str, str, str]]
    ) -> dict[tuple[str, str, str, str], tuple[Any, Any]]:
        # By project id, not by a (project_id, type, name) tuple IN: SQLite answers a row-value
        # IN list with a full table scan, which made every scan quadratic in the cache size.
        wanted = set(keys)
        stored: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
        projects = builtins.list(dict.fromkeys(key[0] for key in wanted))
        sql = sql_for(conn)
        for chunk in chunks(projects):
            found = conn.exec_driver_sql(
                "SELECT project_id, type, path, name, deployed_version, upstream_version FROM artifacts "
                f"WHERE project_id IN ({sql.marks(len(chunk))})",
                tuple(chunk),
            )
            for project_id, type_, path, name, deployed, upstream in found:
                if (project_id, type_, path, name) in wanted:
                    stored[(project_id, type_, path, name)] = (deployed, upstream)
        return stored

    def _expire_artifacts(self, ids: Iterable[str] | None = None) -> None:
        expire_loaded(self._session, Artifact, ids)
        expire_collections(self._session)

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        return self._upsert(rows, returning=False)  # type: ignore[return-value]

    def upsert_many_ids(self, rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, ...], str]:  # noqa: D102
        return self._upsert(rows, returning=True)  # type: ignore[return-value]

    def _upsert(
        self, rows: Iterable[Mapping[str, Any]], *, returning: bool
    ) -> int | dict[tuple[str, ...], str]:
        prepared = artifact_rows(rows)
        check_writable(self._session)
        if not prepared:
            return {} if returning else 0
        session = self._session
        conn, sql = write_connection(session)
        partial = [r for r in prepared if "deployed_version" not in r or "upstream_version" not in r]
        stored = self._stored_versions(conn, (artifact_key(r) for r in partial)) if partial else {}
        timestamp = sql.timestamp
        now = timestamp(utcnow())
        groups: dict[tuple[str, ...], builtins.list[dict[str, Any]]] = {}
        for row in prepared:
            if stored:
                row["is_outdated"] = outdated_for(row, stored.get(artifact_key(row)))
            else:
                row["is_outdated"] = outdated_for(row, None)
            if "id" not in row:
                row["id"] = new_id()
            row["created_at"] = timestamp(row["created_at"]) if "created_at" in row else now
            row["updated_at"] = timestamp(row["updated_at"]) if "updated_at" in row else now
            shape = tuple(row)
            group = groups.get(shape)
            if group is None:
                groups[shape] = [row]
            else:
                group.append(row)
        plans = []
        statements = 0
        for shape, group in groups.items():
            columns = tuple(c for c in ARTIFACT_COLUMNS if c in shape)
            size = rows_per_statement(conn, sql, len(columns))
            statements += statement_count(len(group), size)
            plans.append((columns, group, size))
        changed = 0
        ids: dict[tuple[str, ...], str] = {}
        with atomic(conn, sql.pg or statements > 1):
            for columns, group, size in plans:
                head, row_sql, tail = artifact_upsert_sql(sql.pg, columns)
                values = builtins.list(map(operator.itemgetter(*columns), group))
                if returning:
                    # The ids of the rows written, as the statement wrote them: no read-back.
                    returned = returned_values(conn, head, row_sql, f"{tail} {_RETURNING}", values, size)
                    ids.update((tuple(found[:-1]), found[-1]) for found in returned)
                else:
                    changed += insert_values(conn, head, row_sql, tail, values, size)
        self._expire_artifacts()
        return ids if returning else changed

    def update_many(self, changes: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = merge_changes(changes)
        check_writable(self._session)
        if not prepared:
            return 0
        session = self._session
        conn, sql = write_connection(session)
        stored: dict[str, tuple[Any, Any]] = {}
        ids = [c["id"] for c in prepared]
        for chunk in chunks(ids):
            found = conn.exec_driver_sql(
                f"SELECT id, deployed_version, upstream_version FROM artifacts WHERE id IN ({sql.marks(len(chunk))})",
                tuple(chunk),
            )
            for id_, deployed, upstream in found:
                stored[id_] = (deployed, upstream)
        timestamp = sql.timestamp
        now = timestamp(utcnow())
        known = []
        groups: dict[tuple[str, ...], builtins.list[dict[str, Any]]] = {}
        for change in prepared:
            versions = stored.get(change["id"])
            if versions is None:
                continue
            change["is_outdated"] = outdated_for(change, versions)
            change["updated_at"] = timestamp(change["updated_at"]) if "updated_at" in change else now
            known.append(change["id"])
            groups.setdefault(tuple(change), []).append(change)
        updated = 0
        executions = len(known)
        with atomic(conn, sql.pg or executions > 1):
            for shape, group in groups.items():
                columns = tuple(c for c in ARTIFACT_COLUMNS if c in shape)
                stmt, keys = artifact_update_sql(sql.pg, columns)
                params = builtins.list(map(operator.itemgetter(*keys), group))
                updated += max(conn.exec_driver_sql(stmt, params).rowcount, 0)
        self._expire_artifacts(known)
        return updated

"""The metadata repository (artifact metadata and the cache key/value store) on SQLAlchemy."""

from __future__ import annotations

import builtins
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from ..models import (
    Artifact,
    ArtifactMetadata,
    ArtifactTag,
    CacheMetadata,
)
from . import base, bulk
from .bulk import (
    atomic,
    chunks,
    insert_values,
    metadata_differs,
    rows_per_statement,
    statement_count,
    write_connection,
)
from .common import (
    check_writable,
    expire_collections,
    loads_entities,
    translate_errors,
)
from .rows import (
    MetadataParams,
    lookup_key,
    lookup_keys,
    metadata_params,
    metadata_values,
)
from .statements import (
    ORDER,
)

__all__ = ["SqlAlchemyMetadataRepository"]

# Where each artifact_metadata column's value sits in a prepared row (MetadataParams:
# id, data as JSON, description, tags, tags as JSON, aliases, aliases as JSON). A column
# added to the table fails here, at import, until it is given its place.
_PARAM_OF_COLUMN = {"artifact_id": 0, "metadata": 1, "description": 2, "tags": 4, "aliases": 6}
_column_values = operator.itemgetter(*(_PARAM_OF_COLUMN[c] for c in bulk.METADATA_COLUMNS))


def _changed_rows(
    conn: Connection, prepared: builtins.list[MetadataParams], pg: bool
) -> tuple[builtins.list[MetadataParams], builtins.list[str]]:
    """The prepared rows that are new or differ from the stored ones, and the ids of the
    stored ones among them (whose tag rows are replaced).
    """
    sql = bulk.sql_for(conn)
    stored: dict[str, tuple[Any, ...]] = {}
    for chunk in chunks([r[0] for r in prepared]):
        found = conn.exec_driver_sql(
            "SELECT artifact_id, metadata, description, tags, aliases FROM artifact_metadata "
            f"WHERE artifact_id IN ({sql.marks(len(chunk))})",
            tuple(chunk),
        )
        for artifact_id, *values in found:
            stored[artifact_id] = tuple(values)
    write = [r for r in prepared if r[0] not in stored or metadata_differs(stored[r[0]], r, pg)]
    return write, [r[0] for r in write if r[0] in stored]


def _write_rows(conn: Connection, write: builtins.list[MetadataParams], replaced: builtins.list[str]) -> None:
    """Upsert the metadata rows (every column of the table) and replace their tag rows,
    in one savepoint when that takes more than one statement.
    """
    sql = bulk.sql_for(conn)
    values = builtins.list(map(_column_values, write))
    tags = [(r[0], tag) for r in write for tag in r[3]]
    meta_size = rows_per_statement(conn, sql, len(bulk.METADATA_COLUMNS))
    tag_size = rows_per_statement(conn, sql, 2)
    statements = (
        statement_count(len(values), meta_size)
        + statement_count(len(replaced), bulk.CHUNK_SIZE)
        + statement_count(len(tags), tag_size)
    )
    with atomic(conn, sql.pg or statements > 1):
        insert_values(conn, *bulk.metadata_upsert_sql(sql.pg), values, meta_size)
        for chunk in chunks(replaced):
            marks = sql.marks(len(chunk))
            conn.exec_driver_sql(f"DELETE FROM artifact_tags WHERE artifact_id IN ({marks})", tuple(chunk))
        if tags:
            head = "INSERT INTO artifact_tags (artifact_id, tag)"
            insert_values(conn, head, f"({sql.p}, {sql.p})", "", tags, tag_size)


@translate_errors
class SqlAlchemyMetadataRepository(base.MetadataRepository):
    """Artifact metadata and the cache key/value store in a SQL database."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, artifact_id: str) -> ArtifactMetadata | None:  # noqa: D102
        return self._session.get(ArtifactMetadata, lookup_key("artifact_id", artifact_id))

    def set(  # noqa: D102
        self,
        artifact_id: str,
        *,
        data: Mapping[str, Any] | None,
        description: str | None = None,
        tags: Sequence[str] = (),
        aliases: Sequence[str] = (),
    ) -> ArtifactMetadata:
        values = metadata_values(data, description, tags, aliases)
        new = ArtifactMetadata(artifact_id=artifact_id, **values)  # validates everything first
        check_writable(self._session)
        meta = self._session.get(ArtifactMetadata, artifact_id)
        with self._session.begin_nested():
            if meta is None:
                meta = new
                self._session.add(meta)
            else:
                for key, value in values.items():
                    setattr(meta, key, value)
        return meta

    @loads_entities
    def get_many(self, artifact_ids: Iterable[str]) -> dict[str, ArtifactMetadata]:  # noqa: D102
        wanted = lookup_keys("artifact_id", artifact_ids)
        found: dict[str, ArtifactMetadata] = {}
        for chunk in chunks(wanted):
            stmt = select(ArtifactMetadata).where(ArtifactMetadata.artifact_id.in_(chunk))
            found.update((m.artifact_id, m) for m in self._session.scalars(stmt))
        return found

    def set_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = metadata_params(rows)
        check_writable(self._session)
        if not prepared:
            return 0
        session = self._session
        conn, sql = write_connection(session)
        ids = [r[0] for r in prepared]
        write, replaced = _changed_rows(conn, prepared, sql.pg)
        if not write:
            return 0
        _write_rows(conn, write, replaced)
        gone = set(ids)
        for obj in builtins.list(session.identity_map.values()):
            if isinstance(obj, ArtifactTag) and obj.artifact_id in gone:
                session.expunge(obj)
            elif isinstance(obj, ArtifactMetadata) and obj.artifact_id in gone:
                session.expire(obj)
        expire_collections(session)
        return len(write)

    @loads_entities
    def artifacts_with_tag(self, tag: str) -> builtins.list[Artifact]:  # noqa: D102
        lookup_key("tag", tag)
        stmt = (
            select(Artifact)
            .join(ArtifactTag, ArtifactTag.artifact_id == Artifact.id)
            .where(ArtifactTag.tag == tag)
            .order_by(*ORDER)
        )
        return builtins.list(self._session.scalars(stmt))

    def get_value(self, key: str) -> str | None:  # noqa: D102
        row = self._session.get(CacheMetadata, lookup_key("key", key))
        return None if row is None else row.value

    def set_value(self, key: str, value: str) -> None:  # noqa: D102
        new = CacheMetadata(key=key, value=value)  # validates key and value
        check_writable(self._session)
        row = self._session.get(CacheMetadata, key)
        with self._session.begin_nested():
            if row is None:
                self._session.add(new)
            else:
                row.value = value

    def delete_value(self, key: str) -> bool:  # noqa: D102
        lookup_key("key", key)
        check_writable(self._session)
        row = self._session.get(CacheMetadata, key)
        if row is None:
            return False
        self._session.delete(row)
        self._session.flush()
        return True

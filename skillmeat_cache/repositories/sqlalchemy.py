"""SQLAlchemy implementations of the repositories.

Each takes the unit of work's session. Driver errors are mapped to our exceptions at
every public method. ``add``/``set`` flush, so constraint errors surface at the call
that caused them.

The bulk paths bypass the ORM unit of work, so they flush pending objects first and
expire the entities they changed. The hot ones (``upsert_many``, ``update_many``,
``metadata.set_many``, ``keys_for_project``, ``projects.delete``) hand plain SQL to the
driver (``Connection.exec_driver_sql``): ``INSERT ... VALUES (...), (...) ON CONFLICT
DO UPDATE`` in batches sized to the parameter limit, or one ``executemany``, with the
values converted once per call exactly as the column types would convert them. A call
that runs more than one statement (or any call on PostgreSQL, where a failed statement
aborts the transaction) runs inside a ``SAVEPOINT``, so a failed call changes nothing.
Reads use statements built once at import and cached compiled by SQLAlchemy.
"""

from __future__ import annotations

import builtins
import functools
import gc
import itertools
import json
import operator
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, Text, bindparam, delete, func, or_, select, true, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ..engine import READ_ONLY_OPTION
from ..errors import DuplicateError, NotFoundError, ReadOnlyError, map_db_error
from ..models import (
    Artifact,
    ArtifactMetadata,
    ArtifactTag,
    CacheMetadata,
    MarketplaceEntry,
    Project,
    by_code_point,
    check_text,
    new_id,
)
from ..values import PROJECT_STATUSES, aware_utc, check_choice, ensure_utc, sqlite_timestamp, utcnow
from . import base
from .rows import (
    ARTIFACT_KEY,
    MetadataParams,
    artifact_rows,
    artifact_type_filter,
    ascii_lower,
    lookup_key,
    lookup_keys,
    marketplace_rows,
    merge_changes,
    metadata_params,
    metadata_values,
    outdated_for,
    page_bounds,
    search_filters,
)

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


def _autoflush(session: Session) -> None:
    """Write pending changes of loaded entities before a repository call. A flush that
    fails leaves SQLAlchemy's transaction unusable, so it is rolled back to the last commit
    (entities expired, the failed changes dropped) and the error raised; the unit of work
    goes on. Flushing here, not inside a statement, also keeps it out of the savepoint of
    ``add``/``set`` (``begin_nested`` flushes before its SAVEPOINT).
    """
    try:
        session.flush()
    except Exception:
        session.rollback()
        raise


def _refuse_loaded_keys(session: Session) -> None:
    """A new entity (or one it cascades to) with the primary key of a loaded one is a
    duplicate: raise as the INSERT would, before the flush (where SQLAlchemy would first
    warn about the identity conflict).
    """
    for obj in session.new:
        mapper = sa_inspect(obj).mapper
        if mapper.identity_key_from_instance(obj) in session.identity_map:
            table = mapper.local_table.name
            constraint = ", ".join(f"{table}.{column.name}" for column in mapper.primary_key)
            raise DuplicateError(f"duplicate on table {table} ({constraint})", table=table, constraint=constraint)


def _translated(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            _autoflush(self._session)
            return fn(self, *args, **kwargs)
        except Exception as exc:
            mapped = map_db_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    return wrapper  # type: ignore[return-value]


_gc_lock = threading.Lock()
_gc_owner: int | None = None  # the thread whose read paused the collector


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a read builds its entities.

    Loading 10,000 entities allocates some 50,000 objects that all survive, so the
    collector runs again and again, each full pass walking every object the process
    holds: in a plain process ``outdated()`` took 90 ms against 50 ms with it paused
    (docs/performance.md). The entities form no garbage to collect.

    Only a read that finds the collector on pauses it, and that read alone turns it back
    on when it ends: overlapping reads in other threads never extend a pause, so the
    collector is never off for longer than one read. A collector the application turned
    off stays off.
    """
    global _gc_owner
    with _gc_lock:
        owner = _gc_owner is None and gc.isenabled()
        if owner:
            _gc_owner = threading.get_ident()
            gc.disable()
    try:
        yield
    finally:
        if owner:
            with _gc_lock:
                _gc_owner = None
                gc.enable()


def _gc_after_fork() -> None:
    """A child forked while another thread's read had paused the collector: that thread
    does not exist in the child, so nobody would turn the collector back on.
    """
    global _gc_lock, _gc_owner
    _gc_lock = threading.Lock()
    if _gc_owner is not None:
        _gc_owner = None
        gc.enable()


os.register_at_fork(after_in_child=_gc_after_fork)


def _loads_entities(fn: F) -> F:
    """Run a read that returns many entities with the garbage collector paused."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _gc_paused():
            return fn(*args, **kwargs)

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
    limit, offset = page_bounds(limit, offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset:
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


class _AsciiLower(FunctionElement[str]):
    """``lower()`` of A-Z only: SQLite's ``lower()`` is that already; PostgreSQL's lowers
    every letter its collation knows unless the argument is ``COLLATE "C"``.
    """

    name = "lower"
    inherit_cache = True
    type = Text()


@compiles(_AsciiLower)
def _compile_ascii_lower(element: _AsciiLower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(_AsciiLower, "postgresql")
def _compile_ascii_lower_pg(element: _AsciiLower, compiler: SQLCompiler, **kw: Any) -> str:
    return f'lower(({compiler.process(element.clauses, **kw)}) COLLATE "C")'


def _contains(column: Any, text: str) -> Any:
    """``column`` contains ``text`` ignoring ASCII case only, ``%`` and ``_`` literal."""
    return _AsciiLower(column).contains(ascii_lower(text), autoescape=True)


def _key(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return row["project_id"], row["type"], row["path"], row["name"]


def _artifact_order() -> tuple[Any, ...]:
    return _ORDER


# -- statements built once (SQLAlchemy caches their compiled form per engine) -----------

# Text sorts by code point on every backend (PostgreSQL: COLLATE "C"); types are ASCII words.
_ORDER = (by_code_point(Artifact.project_id), Artifact.type, by_code_point(Artifact.name), by_code_point(Artifact.path))
_PROJECT_ORDER = (by_code_point(Project.name), by_code_point(Project.path))
_MARKETPLACE_ORDER = (MarketplaceEntry.type, by_code_point(MarketplaceEntry.name), by_code_point(MarketplaceEntry.id))
_PROJECT_BY_PATH = select(Project).where(Project.path == bindparam("path"))
_ARTIFACT_BY_KEY = select(Artifact).where(
    Artifact.project_id == bindparam("project_id"),
    Artifact.type == bindparam("type"),
    Artifact.path == bindparam("path"),
    Artifact.name == bindparam("name"),
)
_FIRST_ARTIFACT_BY_NAME = (
    select(Artifact)
    .where(
        Artifact.project_id == bindparam("project_id"),
        Artifact.type == bindparam("type"),
        Artifact.name == bindparam("name"),
    )
    .order_by(by_code_point(Artifact.path))
    .limit(1)
)
# Where the filter fixes the leading columns, only the rest is sorted on: the same order,
# and PostgreSQL need not sort on a fixed project_id under COLLATE "C".
_IN_PROJECT_ORDER = _ORDER[1:]
_ARTIFACTS_OF_PROJECT = (
    select(Artifact).where(Artifact.project_id == bindparam("project_id")).order_by(*_IN_PROJECT_ORDER)
)
_ARTIFACTS_OF_PROJECT_TYPE = (
    select(Artifact)
    .where(Artifact.project_id == bindparam("project_id"), Artifact.type == bindparam("type"))
    .order_by(*_ORDER[2:])
)
_ARTIFACTS_OF_TYPE = select(Artifact).where(Artifact.type == bindparam("type")).order_by(*_ORDER)
# ``= true()`` (not ``IS true``): an equality both engines answer from an index.
_OUTDATED = select(Artifact).where(Artifact.is_outdated == true()).order_by(*_ORDER)
_OUTDATED_OF_PROJECT = (
    select(Artifact)
    .where(Artifact.is_outdated == true(), Artifact.project_id == bindparam("project_id"))
    .order_by(*_IN_PROJECT_ORDER)
)


@functools.cache
def _summaries_statement(by_status: bool, by_age: bool) -> Select[Any]:
    # Two correlated counts per project, each answered from the (project_id, is_outdated)
    # index alone (revision 0003): measured faster on SQLite than grouping the whole
    # artifacts table in a subquery and joining it back (8.5 ms against 12 ms at 100,000
    # artifacts), and it needs no GROUP BY over the projects' columns.
    artifacts = ARTIFACTS.alias("counted")
    of_project = artifacts.c.project_id == PROJECTS.c.id
    count = select(func.count()).where(of_project).scalar_subquery()
    outdated = select(func.count()).where(of_project, artifacts.c.is_outdated == true()).scalar_subquery()
    stmt = select(Project, count, outdated)
    if by_status:
        stmt = stmt.where(Project.status == bindparam("status"))
    if by_age:
        stmt = stmt.where(or_(Project.last_fetched.is_(None), Project.last_fetched < bindparam("cutoff")))
    return stmt.order_by(*_PROJECT_ORDER)


# -- driver SQL for the hot write paths ---------------------------------------------------

_SAVEPOINT = "skillmeat_bulk"
_BATCH_ROWS = 1000  # rows per multi-row VALUES statement, at most
_PG_MAX_PARAMS = 65535
_SQLITE_OLD_MAX_PARAMS = 999
# Every artifacts column a bulk row may carry, in table order.
_ARTIFACT_COLUMNS = tuple(c.name for c in ARTIFACTS.columns)
_NOT_COMPARED = frozenset({"id", "created_at", "updated_at", *ARTIFACT_KEY})


class _Sql:
    """What the driver SQL of the bulk paths needs to know about a dialect."""

    def __init__(self, postgresql: bool) -> None:
        self.pg = postgresql
        self.p = "%s" if postgresql else "?"
        self.json = "CAST(%s AS JSONB)" if postgresql else "?"
        self.distinct = "IS DISTINCT FROM" if postgresql else "IS NOT"
        # A timestamp as the column type would bind it (UTCDateTime's processors).
        self.timestamp: Callable[[datetime], Any] = aware_utc if postgresql else sqlite_timestamp

    def marks(self, count: int) -> str:
        return ", ".join([self.p] * count)


_SQL = {"sqlite": _Sql(False), "postgresql": _Sql(True)}


def _sql_for(conn: Connection) -> _Sql:
    return _SQL[conn.dialect.name]


def _check_writable(session: Session) -> None:
    """Driver SQL passes no ORM event: refuse here what a read-only unit of work refuses."""
    if session.info.get(READ_ONLY_OPTION):
        raise ReadOnlyError("this unit of work is read-only and cannot write")


def _bulk_write_connection(session: Session) -> tuple[Connection, _Sql]:
    """The connection and dialect SQL for a driver-level write: refuse in a read-only unit
    of work, and flush pending ORM objects first so the database sees them.
    """
    _check_writable(session)
    session.flush()
    conn = session.connection()
    return conn, _sql_for(conn)


def _rows_per_statement(conn: Connection, sql: _Sql, per_row: int) -> int:
    """Rows per multi-row VALUES statement under the driver's parameter limit."""
    if sql.pg:
        limit = _PG_MAX_PARAMS
    else:
        getlimit = getattr(conn.connection.dbapi_connection, "getlimit", None)
        limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit else _SQLITE_OLD_MAX_PARAMS
    return max(1, min(_BATCH_ROWS, limit // per_row))


@functools.lru_cache(maxsize=512)
def _values_sql(head: str, row: str, count: int, tail: str) -> str:
    return f"{head} VALUES {', '.join([row] * count)}{tail}"


def _insert_values(conn: Connection, head: str, row: str, tail: str, rows: Sequence[tuple[Any, ...]], size: int) -> int:
    """Insert ``rows`` with multi-row VALUES statements of at most ``size`` rows; returns
    the summed row counts.
    """
    changed = 0
    for start in range(0, len(rows), size):
        batch = rows[start : start + size]
        params = tuple(itertools.chain.from_iterable(batch))
        changed += max(conn.exec_driver_sql(_values_sql(head, row, len(batch), tail), params).rowcount, 0)
    return changed


def _statements(count: int, size: int) -> int:
    return -(-count // size)


@contextmanager
def _atomic(conn: Connection, needed: bool) -> Iterator[None]:
    """A savepoint around a call's statements when they need one: more than one
    statement (SQLite keeps a single failed statement atomic on its own), or any
    statement on PostgreSQL (a failed one would abort the whole transaction).
    """
    if not needed:
        yield
        return
    conn.exec_driver_sql(f"SAVEPOINT {_SAVEPOINT}")
    try:
        yield
    except BaseException:
        try:
            conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            conn.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        except Exception:
            pass
        raise
    conn.exec_driver_sql(f"RELEASE SAVEPOINT {_SAVEPOINT}")


@functools.lru_cache(maxsize=64)
def _artifact_upsert_sql(pg: bool, columns: tuple[str, ...]) -> tuple[str, str, str]:
    """(head, one row's placeholders, ON CONFLICT tail) of an artifacts upsert."""
    sql = _SQL["postgresql" if pg else "sqlite"]
    compared = [c for c in columns if c not in _NOT_COMPARED]
    head = f"INSERT INTO artifacts ({', '.join(columns)})"
    row = f"({sql.marks(len(columns))})"
    key = ", ".join(ARTIFACT_KEY)
    if not compared:
        return head, row, f" ON CONFLICT ({key}) DO NOTHING"
    assignments = ", ".join(f"{c} = excluded.{c}" for c in [*compared, "updated_at"])
    differs = " OR ".join(f"artifacts.{c} {sql.distinct} excluded.{c}" for c in compared)
    return head, row, f" ON CONFLICT ({key}) DO UPDATE SET {assignments} WHERE {differs}"


@functools.lru_cache(maxsize=64)
def _artifact_update_sql(pg: bool, columns: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """An ``UPDATE ... WHERE id = ? AND <something differs>`` and the keys of its parameters."""
    sql = _SQL["postgresql" if pg else "sqlite"]
    compared = [c for c in columns if c not in ("id", "updated_at")]
    assigned = [*compared, "updated_at"]
    stmt = f"UPDATE artifacts SET {', '.join(f'{c} = {sql.p}' for c in assigned)} WHERE id = {sql.p}"
    if compared:
        stmt += f" AND ({' OR '.join(f'{c} {sql.distinct} {sql.p}' for c in compared)})"
    return stmt, (*assigned, "id", *compared)


def _forget_artifacts(session: Session, ids: set[str]) -> None:
    """Take deleted artifacts (and their metadata and tags) out of the identity map."""
    for obj in builtins.list(session.identity_map.values()):
        if (isinstance(obj, Artifact) and obj.id in ids) or (
            isinstance(obj, (ArtifactMetadata, ArtifactTag)) and obj.artifact_id in ids
        ):
            session.expunge(obj)


def _metadata_differs(stored: tuple[Any, ...], row: MetadataParams, pg: bool) -> bool:
    """Whether a stored metadata row (metadata, description, tags, aliases) differs from
    a prepared one as documents, the way Python compares them.
    """
    data, description, tags, aliases = stored
    if description != row[2]:
        return True
    if pg:  # psycopg hands back JSONB decoded
        if tags != row[3] or aliases != row[5]:
            return True
        return data != (None if row[1] is None else json.loads(row[1]))
    # SQLite hands back the JSON text: the same text is the same document; a different
    # text may still be an equal one (another key order, 1 and 1.0), so compare those.
    for text, ours, value in ((tags, row[4], row[3]), (aliases, row[6], row[5])):
        if text != ours and (text is None or json.loads(text) != value):
            return True
    if data == row[1]:
        return False
    if data is None or row[1] is None:
        return True
    return bool(json.loads(data) != json.loads(row[1]))


@_translate_errors
class SqlAlchemyProjectRepository(base.ProjectRepository):
    """Projects in a SQL database."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, project: Project) -> Project:  # noqa: D102
        with self._session.begin_nested():
            self._session.add(project)
            _refuse_loaded_keys(self._session)
        return project

    def get(self, id: str) -> Project | None:  # noqa: D102
        return self._session.get(Project, lookup_key("id", id))

    def get_by_path(self, path: str) -> Project | None:  # noqa: D102
        lookup_key("path", path)
        return self._session.scalars(_PROJECT_BY_PATH, {"path": path}).one_or_none()

    def _where_status(self, stmt: Select[Any], status: str | None) -> Select[Any]:
        if status is None:
            return stmt
        return stmt.where(Project.status == check_choice("status", status, PROJECT_STATUSES))

    @_loads_entities
    def list(  # noqa: D102
        self, status: str | None = None, limit: int | None = None, offset: int = 0
    ) -> builtins.list[Project]:
        stmt = self._where_status(select(Project), status).order_by(*_PROJECT_ORDER)
        return builtins.list(self._session.scalars(_page(stmt, limit, offset)))

    @_loads_entities
    def stale(self, ttl: timedelta, now: datetime | None = None) -> builtins.list[Project]:  # noqa: D102
        cutoff = (ensure_utc(now, "now") if now is not None else utcnow()) - ttl
        stmt = (
            select(Project)
            .where(or_(Project.last_fetched.is_(None), Project.last_fetched < cutoff))
            .order_by(*_PROJECT_ORDER)
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
        conn, sql = _bulk_write_connection(session)
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
            _forget_artifacts(session, children)

    @_loads_entities
    def summaries(  # noqa: D102
        self, status: str | None = None, older_than: timedelta | None = None, now: datetime | None = None
    ) -> builtins.list[base.ProjectSummary]:
        params: dict[str, Any] = {}
        if status is not None:
            self._where_status(select(Project), status)  # validates
            params["status"] = status
        if older_than is not None:
            params["cutoff"] = (ensure_utc(now, "now") if now is not None else utcnow()) - older_than
        stmt = _summaries_statement(status is not None, older_than is not None)
        return [base.ProjectSummary(p, int(n), int(o)) for p, n, o in self._session.execute(stmt, params)]

    def _update_ids(self, ids: Iterable[str], values: dict[str, Any], where: Any = None) -> int:
        wanted = lookup_keys("id", ids)
        _check_writable(self._session)
        if not wanted:
            return 0
        self._session.flush()
        changed = 0
        conn = self._session.connection()
        with _atomic(conn, _sql_for(conn).pg or len(wanted) > _CHUNK):
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
            _refuse_loaded_keys(self._session)
        return artifact

    def get(self, id: str) -> Artifact | None:  # noqa: D102
        return self._session.get(Artifact, lookup_key("id", id))

    def get_by_key(self, project_id: str, type: str, name: str, path: str | None = None) -> Artifact | None:  # noqa: D102
        lookup_key("project_id", project_id)
        artifact_type_filter(type)
        lookup_key("name", name)
        params = {"project_id": project_id, "type": type, "name": name}
        if path is None:
            return self._session.scalars(_FIRST_ARTIFACT_BY_NAME, params).one_or_none()
        params["path"] = lookup_key("path", path)
        return self._session.scalars(_ARTIFACT_BY_KEY, params).one_or_none()

    @_loads_entities
    def list_for_project(self, project_id: str, type: str | None = None) -> builtins.list[Artifact]:  # noqa: D102
        lookup_key("project_id", project_id)
        if type is None:
            return self._session.scalars(_ARTIFACTS_OF_PROJECT, {"project_id": project_id}).all()  # type: ignore[return-value]
        params = {"project_id": project_id, "type": artifact_type_filter(type)}
        return self._session.scalars(_ARTIFACTS_OF_PROJECT_TYPE, params).all()  # type: ignore[return-value]

    @_loads_entities
    def list_by_type(self, type: str) -> builtins.list[Artifact]:  # noqa: D102
        return self._session.scalars(_ARTIFACTS_OF_TYPE, {"type": artifact_type_filter(type)}).all()  # type: ignore[return-value]

    @_loads_entities
    def outdated(self, project_id: str | None = None) -> builtins.list[Artifact]:  # noqa: D102
        if project_id is None:
            return self._session.scalars(_OUTDATED).all()  # type: ignore[return-value]
        lookup_key("project_id", project_id)
        return self._session.scalars(_OUTDATED_OF_PROJECT, {"project_id": project_id}).all()  # type: ignore[return-value]

    @_loads_entities
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
                or_(_contains(Artifact.name, text), _contains(ArtifactMetadata.description, text))
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
            stmt = stmt.where(Artifact.project_id == lookup_key("project_id", project_id))
        return int(self._session.scalar(stmt) or 0)

    def delete(self, id: str) -> None:  # noqa: D102
        lookup_key("id", id)
        _check_writable(self._session)
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
            f"SELECT type, path, name, id FROM artifacts WHERE project_id = {_sql_for(conn).p}", (project_id,)
        )
        return {(type_, path, name): id_ for type_, path, name, id_ in found}

    def delete_many(self, ids: Iterable[str]) -> int:  # noqa: D102
        wanted = lookup_keys("id", ids)
        _check_writable(self._session)
        if not wanted:
            return 0
        self._session.flush()
        deleted = 0
        conn = self._session.connection()
        with _atomic(conn, _sql_for(conn).pg or len(wanted) > _CHUNK):
            for chunk in _chunks(wanted):
                deleted += max(self._session.execute(delete(ARTIFACTS).where(ARTIFACTS.c.id.in_(chunk))).rowcount, 0)
        _forget_artifacts(self._session, set(wanted))
        _expire_collections(self._session)
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
        sql = _sql_for(conn)
        for chunk in _chunks(projects):
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
        _expire_loaded(self._session, Artifact, ids)
        _expire_collections(self._session)

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = artifact_rows(rows)
        _check_writable(self._session)
        if not prepared:
            return 0
        session = self._session
        conn, sql = _bulk_write_connection(session)
        partial = [r for r in prepared if "deployed_version" not in r or "upstream_version" not in r]
        stored = self._stored_versions(conn, (_key(r) for r in partial)) if partial else {}
        timestamp = sql.timestamp
        now = timestamp(utcnow())
        groups: dict[tuple[str, ...], builtins.list[dict[str, Any]]] = {}
        for row in prepared:
            if stored:
                row["is_outdated"] = outdated_for(row, stored.get(_key(row)))
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
            columns = tuple(c for c in _ARTIFACT_COLUMNS if c in shape)
            size = _rows_per_statement(conn, sql, len(columns))
            statements += _statements(len(group), size)
            plans.append((columns, group, size))
        changed = 0
        with _atomic(conn, sql.pg or statements > 1):
            for columns, group, size in plans:
                head, row_sql, tail = _artifact_upsert_sql(sql.pg, columns)
                values = builtins.list(map(operator.itemgetter(*columns), group))
                changed += _insert_values(conn, head, row_sql, tail, values, size)
        self._expire_artifacts()
        return changed

    def update_many(self, changes: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = merge_changes(changes)
        _check_writable(self._session)
        if not prepared:
            return 0
        session = self._session
        conn, sql = _bulk_write_connection(session)
        stored: dict[str, tuple[Any, Any]] = {}
        ids = [c["id"] for c in prepared]
        for chunk in _chunks(ids):
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
        with _atomic(conn, sql.pg or executions > 1):
            for shape, group in groups.items():
                columns = tuple(c for c in _ARTIFACT_COLUMNS if c in shape)
                stmt, keys = _artifact_update_sql(sql.pg, columns)
                params = builtins.list(map(operator.itemgetter(*keys), group))
                updated += max(conn.exec_driver_sql(stmt, params).rowcount, 0)
        self._expire_artifacts(known)
        return updated


@_translate_errors
class SqlAlchemyMarketplaceRepository(base.MarketplaceRepository):
    """Marketplace entries in a SQL database."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, entry: MarketplaceEntry) -> MarketplaceEntry:  # noqa: D102
        with self._session.begin_nested():
            self._session.add(entry)
            _refuse_loaded_keys(self._session)
        return entry

    def get(self, id: str) -> MarketplaceEntry | None:  # noqa: D102
        return self._session.get(MarketplaceEntry, lookup_key("id", id))

    def _ordered(self, stmt: Select[Any]) -> builtins.list[MarketplaceEntry]:
        stmt = stmt.order_by(*_MARKETPLACE_ORDER)
        return builtins.list(self._session.scalars(stmt))

    @_loads_entities
    def list(self, type: str | None = None) -> builtins.list[MarketplaceEntry]:  # noqa: D102
        stmt = select(MarketplaceEntry)
        if type is not None:
            stmt = stmt.where(MarketplaceEntry.type == artifact_type_filter(type))
        return self._ordered(stmt)

    @_loads_entities
    def search(self, text: str) -> builtins.list[MarketplaceEntry]:  # noqa: D102
        check_text("text", text)
        stmt = select(MarketplaceEntry)
        if text:
            stmt = stmt.where(
                or_(_contains(MarketplaceEntry.name, text), _contains(MarketplaceEntry.description, text))
            )
        return self._ordered(stmt)

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = marketplace_rows(rows, utcnow())
        _check_writable(self._session)
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
        _check_writable(self._session)
        meta = self._session.get(ArtifactMetadata, artifact_id)
        with self._session.begin_nested():
            if meta is None:
                meta = new
                self._session.add(meta)
            else:
                for key, value in values.items():
                    setattr(meta, key, value)
        return meta

    @_loads_entities
    def get_many(self, artifact_ids: Iterable[str]) -> dict[str, ArtifactMetadata]:  # noqa: D102
        wanted = lookup_keys("artifact_id", artifact_ids)
        found: dict[str, ArtifactMetadata] = {}
        for chunk in _chunks(wanted):
            stmt = select(ArtifactMetadata).where(ArtifactMetadata.artifact_id.in_(chunk))
            found.update((m.artifact_id, m) for m in self._session.scalars(stmt))
        return found

    def set_many(self, rows: Iterable[Mapping[str, Any]]) -> int:  # noqa: D102
        prepared = metadata_params(rows)
        _check_writable(self._session)
        if not prepared:
            return 0
        session = self._session
        conn, sql = _bulk_write_connection(session)
        stored: dict[str, tuple[Any, ...]] = {}
        ids = [r[0] for r in prepared]
        for chunk in _chunks(ids):
            found = conn.exec_driver_sql(
                "SELECT artifact_id, metadata, description, tags, aliases FROM artifact_metadata "
                f"WHERE artifact_id IN ({sql.marks(len(chunk))})",
                tuple(chunk),
            )
            for artifact_id, *values in found:
                stored[artifact_id] = tuple(values)
        write = [r for r in prepared if r[0] not in stored or _metadata_differs(stored[r[0]], r, sql.pg)]
        if not write:
            return 0
        replaced = [r[0] for r in write if r[0] in stored]
        values = [(r[0], r[1], r[2], r[4], r[6]) for r in write]
        tags = [(r[0], tag) for r in write for tag in r[3]]
        meta_size = _rows_per_statement(conn, sql, 5)
        tag_size = _rows_per_statement(conn, sql, 2)
        statements = (
            _statements(len(values), meta_size) + _statements(len(replaced), _CHUNK) + _statements(len(tags), tag_size)
        )
        with _atomic(conn, sql.pg or statements > 1):
            _insert_values(
                conn,
                "INSERT INTO artifact_metadata (artifact_id, metadata, description, tags, aliases)",
                f"({sql.p}, {sql.json}, {sql.p}, {sql.json}, {sql.json})",
                " ON CONFLICT (artifact_id) DO UPDATE SET metadata = excluded.metadata, "
                "description = excluded.description, tags = excluded.tags, aliases = excluded.aliases",
                values,
                meta_size,
            )
            for chunk in _chunks(replaced):
                conn.exec_driver_sql(
                    f"DELETE FROM artifact_tags WHERE artifact_id IN ({sql.marks(len(chunk))})", tuple(chunk)
                )
            if tags:
                _insert_values(
                    conn, "INSERT INTO artifact_tags (artifact_id, tag)", f"({sql.p}, {sql.p})", "", tags, tag_size
                )
        gone = set(ids)
        for obj in builtins.list(session.identity_map.values()):
            if isinstance(obj, ArtifactTag) and obj.artifact_id in gone:
                session.expunge(obj)
            elif isinstance(obj, ArtifactMetadata) and obj.artifact_id in gone:
                session.expire(obj)
        _expire_collections(session)
        return len(write)

    @_loads_entities
    def artifacts_with_tag(self, tag: str) -> builtins.list[Artifact]:  # noqa: D102
        lookup_key("tag", tag)
        stmt = (
            select(Artifact)
            .join(ArtifactTag, ArtifactTag.artifact_id == Artifact.id)
            .where(ArtifactTag.tag == tag)
            .order_by(*_artifact_order())
        )
        return builtins.list(self._session.scalars(stmt))

    def get_value(self, key: str) -> str | None:  # noqa: D102
        row = self._session.get(CacheMetadata, lookup_key("key", key))
        return None if row is None else row.value

    def set_value(self, key: str, value: str) -> None:  # noqa: D102
        new = CacheMetadata(key=key, value=value)  # validates key and value
        _check_writable(self._session)
        row = self._session.get(CacheMetadata, key)
        with self._session.begin_nested():
            if row is None:
                self._session.add(new)
            else:
                row.value = value

    def delete_value(self, key: str) -> bool:  # noqa: D102
        lookup_key("key", key)
        _check_writable(self._session)
        row = self._session.get(CacheMetadata, key)
        if row is None:
            return False
        self._session.delete(row)
        self._session.flush()
        return True

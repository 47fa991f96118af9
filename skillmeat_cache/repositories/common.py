"""What the SQLAlchemy repositories share: error translation around every public method,
the autoflush before it, the garbage-collector pause for reads that build many entities,
identity-map upkeep after statements that bypass the ORM, and case-insensitive search.
"""

from __future__ import annotations

import builtins
import functools
import gc
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import Select, Text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ..db_errors import map_db_error
from ..errors import DuplicateError, ReadOnlyError
from ..models import Artifact, ArtifactMetadata, ArtifactTag, Project
from ..read_only import READ_ONLY_OPTION, needs_connection_options
from .rows import ascii_lower, page_bounds

__all__ = [
    "add_entity",
    "check_writable",
    "contains",
    "expire_collections",
    "expire_loaded",
    "forget_artifacts",
    "gc_paused",
    "group_by_columns",
    "insert_for",
    "loads_entities",
    "page",
    "reconnect_read_only",
    "refuse_loaded_keys",
    "translate_errors",
]

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)
E = TypeVar("E")


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
        reconnect_read_only(session)
        raise


def reconnect_read_only(session: Session) -> None:
    """In a read-only unit of work's session, take the connection with the unit's
    read-only options (kept in ``Session.info``): at the start, and again after a commit or
    rollback, which hand the connection back to the pool with its options.
    """
    options = session.info.get(READ_ONLY_OPTION)
    if options and needs_connection_options(options):
        session.connection(execution_options=options)


def refuse_loaded_keys(session: Session) -> None:
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


class _GcPause:
    """The cyclic garbage collector off while a read builds its entities.

    Loading 10,000 entities allocates some 50,000 objects that all survive, so the
    collector runs again and again, each full pass walking every object the process
    holds: in a plain process ``outdated()`` took 90 ms against 50 ms with it paused
    (docs/performance.md). The entities form no garbage to collect.

    Only a read that finds the collector on pauses it, and that read alone turns it back
    on when it ends: overlapping reads in other threads never extend a pause, so the
    collector is never off for longer than one read. A collector the application turned
    off stays off. (A class, not a generator context manager: this runs around every read.)
    """

    __slots__ = ("owner",)

    def __enter__(self) -> None:
        global _gc_owner
        with _gc_lock:
            self.owner = _gc_owner is None and gc.isenabled()
            if self.owner:
                _gc_owner = threading.get_ident()
                gc.disable()

    def __exit__(self, *_exc: object) -> None:
        global _gc_owner
        if self.owner:
            with _gc_lock:
                _gc_owner = None
                gc.enable()


def gc_paused() -> _GcPause:
    """A context manager: the garbage collector paused for one read (see :class:`_GcPause`)."""
    return _GcPause()


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


def loads_entities(fn: F) -> F:
    """Run a read that returns many entities with the garbage collector paused."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with gc_paused():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def translate_errors(cls: C) -> C:
    """Wrap every public method so driver errors come out as our exceptions."""
    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_"):
            setattr(cls, name, _translated(value))
    return cls


def page(stmt: Select[Any], limit: int | None, offset: int) -> Select[Any]:
    """``stmt`` with LIMIT/OFFSET, both checked."""
    limit, offset = page_bounds(limit, offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    return stmt


def insert_for(session: Session) -> Callable[..., Any]:
    """The dialect's ``insert`` construct (with ON CONFLICT) for the session's database."""
    # Imported here: the PostgreSQL dialect costs ~25 ms to import, which SQLite users skip.
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def group_by_columns(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Rows grouped by the columns they carry (one statement per shape)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return groups


def expire_loaded(session: Session, model: type, ids: Iterable[str] | None = None) -> None:
    """Expire loaded entities of ``model`` (all, or those with these ids) after a bulk
    statement changed their rows behind the ORM's back.
    """
    wanted = None if ids is None else set(ids)
    for obj in builtins.list(session.identity_map.values()):
        if isinstance(obj, model) and (wanted is None or obj.id in wanted):
            session.expire(obj)


def expire_collections(session: Session) -> None:
    """Loaded ``Project.artifacts`` / ``Artifact.meta`` may miss rows a bulk path wrote."""
    for obj in builtins.list(session.identity_map.values()):
        if isinstance(obj, Project):
            session.expire(obj, ["artifacts"])
        elif isinstance(obj, Artifact):
            session.expire(obj, ["meta"])


def forget_artifacts(session: Session, ids: set[str]) -> None:
    """Take deleted artifacts (and their metadata and tags) out of the identity map."""
    for obj in builtins.list(session.identity_map.values()):
        if (isinstance(obj, Artifact) and obj.id in ids) or (
            isinstance(obj, (ArtifactMetadata, ArtifactTag)) and obj.artifact_id in ids
        ):
            session.expunge(obj)


def add_entity(session: Session, entity: E) -> E:
    """Add a new entity in a SAVEPOINT and flush it, so a duplicate fails at this call and
    changes nothing; refused first in a read-only unit (PostgreSQL's autocommit would
    refuse the SAVEPOINT itself).
    """
    check_writable(session)
    with session.begin_nested():
        session.add(entity)
        refuse_loaded_keys(session)
    return entity


def check_writable(session: Session) -> None:
    """Refuse a write call in a read-only unit of work before any SQL is sent.

    The database refuses the statements themselves (``read_only.py``); this check keeps
    the contract that a read-only unit refuses every write call, even one with nothing to
    write, and on PostgreSQL keeps a bulk path's SAVEPOINT (refused in autocommit) from
    answering first.
    """
    if session.info.get(READ_ONLY_OPTION):
        raise ReadOnlyError("this unit of work is read-only and cannot write")


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


def contains(column: Any, text: str) -> Any:
    """``column`` contains ``text`` ignoring ASCII case only, ``%`` and ``_`` literal."""
    return _AsciiLower(column).contains(ascii_lower(text), autoescape=True)

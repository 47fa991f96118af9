"""The unit of work: one session, one transaction, four repositories.

    with uow:
        uow.artifacts.add(artifact)
    # clean exit: committed; exception: rolled back and re-raised as our error

Transaction rules: a writing unit of work on SQLite starts with ``BEGIN IMMEDIATE``
(it takes the write lock up front, so it never fails half-way on a lock upgrade); a
read-only one starts a deferred ``BEGIN`` (one snapshot for all its reads) and refuses
to write. On PostgreSQL a read-only unit of work runs its statements in autocommit:
at READ COMMITTED each statement sees its own snapshot either way, and it saves the
BEGIN and ROLLBACK round trips. A unit of work on a
database that is not at the code's schema revision raises ``SchemaVersionError``; that
is checked once per engine.
"""

from __future__ import annotations

import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from .db_errors import map_db_error
from .engine import READ_ONLY_OPTION, install_statement_hook
from .errors import ReadOnlyError, UnitOfWorkActiveError
from .repositories.base import ArtifactRepository, MarketplaceRepository, MetadataRepository, ProjectRepository
from .repositories.sqlalchemy import (
    SqlAlchemyArtifactRepository,
    SqlAlchemyMarketplaceRepository,
    SqlAlchemyMetadataRepository,
    SqlAlchemyProjectRepository,
)
from .revision import check_schema

__all__ = ["AbstractUnitOfWork", "UnitOfWork"]


class AbstractUnitOfWork(ABC):
    """What service code depends on: ``with uow:`` plus the four repositories.

    A clean exit commits; an exception rolls back and propagates. ``commit()`` inside
    the block commits what is there so far and the block goes on; ``rollback()``
    discards it. An instance can be entered again after it exits, never while active.
    """

    projects: ProjectRepository
    artifacts: ArtifactRepository
    marketplace: MarketplaceRepository
    metadata: MetadataRepository

    def __init__(self, *, read_only: bool = False) -> None:
        self.read_only = read_only
        self._active = False

    @property
    def active(self) -> bool:
        """True between enter and exit."""
        return self._active

    def __enter__(self) -> Self:
        if self._active:
            raise UnitOfWorkActiveError("this unit of work is already active; create a new one for nested work")
        self._begin()
        self._active = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self._complete()
            else:
                self._abort()
        finally:
            self._active = False
            self._end()
        if exc is not None:
            mapped = map_db_error(exc)
            if mapped is not exc:
                raise mapped from exc

    @abstractmethod
    def _begin(self) -> None:
        """Open the session and build the repositories."""

    def _complete(self) -> None:
        """Finish the work after a clean exit from the block."""
        self.commit()

    def _abort(self) -> None:
        """Undo the work after an exception in the block."""
        self.rollback()

    @abstractmethod
    def _end(self) -> None:
        """Close the session, whatever happened."""

    @abstractmethod
    def commit(self) -> None:
        """Commit what the unit of work holds so far."""

    @abstractmethod
    def rollback(self) -> None:
        """Discard what the unit of work holds since the last commit."""


_checked_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
_guarded_dialects: weakref.WeakSet[Any] = weakref.WeakSet()  # engines may share one dialect
_check_lock = threading.Lock()


def _ensure_schema(engine: Engine) -> None:
    """Check the schema revision, and install the read-only statement guard, once per engine."""
    if engine in _checked_engines:
        return
    with _check_lock:
        if engine in _checked_engines:
            return
        with engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as connection:
            check_schema(connection)
        if engine.dialect not in _guarded_dialects:
            install_statement_hook(engine, _refuse_statement_writes)
            _guarded_dialects.add(engine.dialect)
        _checked_engines.add(engine)


def _refuse_statement_writes(_cursor: Any, context: Any) -> None:
    """Refuse INSERT/UPDATE/DELETE/DDL constructs on a read-only unit's connection, however
    they were run (ORM statements through the session, ``session.connection().execute``,
    ``bulk_insert_mappings``), just before the driver would send them. SQL text is not
    recognised (see docs/errors.md, "Known gaps").
    """
    if (
        context is not None
        and context.execution_options.get(READ_ONLY_OPTION)
        and (context.isinsert or context.isupdate or context.isdelete or context.isddl)
    ):
        raise ReadOnlyError("this unit of work is read-only and cannot write")


def _read_committed_postgresql(engine: Engine) -> bool:
    """PostgreSQL at READ COMMITTED (the default), where a read-only unit can run in
    autocommit without losing anything; at a stricter level its reads share one snapshot.
    """
    if engine.dialect.name != "postgresql":
        return False
    level = engine.get_execution_options().get("isolation_level") or engine.dialect.default_isolation_level
    return level == "READ COMMITTED"


# Marks a read-only unit of work's session (in ``Session.info``); the repositories'
# driver-SQL write paths check it too.
_READ_ONLY_INFO = READ_ONLY_OPTION
# Session classes whose read-only guards are installed: once per class, not per session
# (``event.listen`` on a session instance costs more than a whole small read).
_guarded_classes: weakref.WeakSet[type] = weakref.WeakSet()
_guard_lock = threading.Lock()


def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if not session.info.get(_READ_ONLY_INFO):
        return
    if session.new or session.deleted or any(session.is_modified(obj) for obj in session.dirty):
        raise ReadOnlyError("this unit of work is read-only and cannot write")


def _guard(session_class: type) -> None:
    """Install the flush guard on a session class (it acts on marked sessions only).

    Statements (ORM ``insert``/``update``/``delete`` included) are refused at the driver
    by ``_refuse_statement_writes``; a ``do_orm_execute`` listener would refuse them
    earlier but costs every execution of every session of the class an event dispatch.
    """
    if session_class in _guarded_classes:
        return
    with _guard_lock:
        if session_class not in _guarded_classes:
            event.listen(session_class, "before_flush", _refuse_flush)
            _guarded_classes.add(session_class)


class UnitOfWork(AbstractUnitOfWork):
    """The SQLAlchemy unit of work, built from a session factory (never an engine).

    Give it a factory made with ``expire_on_commit=False`` (the container does) so
    entities stay readable after the block ends.
    """

    def __init__(self, session_factory: Callable[[], Session], *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self._session_factory = session_factory
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        """The active session (for the rare query no repository offers)."""
        if self._session is None:
            raise UnitOfWorkActiveError("the unit of work is not active; use it in a `with` block")
        return self._session

    def _begin(self) -> None:
        session = self._session_factory()
        try:
            bind = session.get_bind()
            _ensure_schema(bind)
            if self.read_only and _read_committed_postgresql(bind):
                # Each statement on its own, no BEGIN/ROLLBACK: two round trips of three
                # saved, and nothing lost, since at READ COMMITTED every statement of a
                # transaction takes its own snapshot anyway.
                session.connection(execution_options={"isolation_level": "AUTOCOMMIT", READ_ONLY_OPTION: True})
        except Exception as exc:
            session.close()
            mapped = map_db_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        if self.read_only:
            _guard(type(session))
            session.info[_READ_ONLY_INFO] = True
            session.execution_options = session.execution_options.union({READ_ONLY_OPTION: True})
        self._session = session
        self.projects = SqlAlchemyProjectRepository(session)
        self.artifacts = SqlAlchemyArtifactRepository(session)
        self.marketplace = SqlAlchemyMarketplaceRepository(session)
        self.metadata = SqlAlchemyMetadataRepository(session)

    def _complete(self) -> None:
        session = self.session
        if self.read_only and not (session.new or session.deleted or session.dirty):
            # Nothing to commit: closing the session (in _end) ends the read transaction,
            # for less than a commit costs. Changes still go through commit, which refuses them.
            return
        self.commit()

    def _abort(self) -> None:
        # Closing the session (in _end) rolls back without expiring loaded entities,
        # so what was committed earlier in the block stays readable.
        pass

    def _end(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()
        for name in ("projects", "artifacts", "marketplace", "metadata"):
            self.__dict__.pop(name, None)

    def commit(self) -> None:  # noqa: D102
        try:
            self.session.commit()
        except Exception as exc:
            # A failed flush leaves SQLAlchemy's transaction unusable: back to the last
            # commit, as a failed autoflush does, so the unit of work goes on.
            with suppress(Exception):  # a lost connection: the error below says why
                self.session.rollback()
            mapped = map_db_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    def rollback(self) -> None:  # noqa: D102
        self.session.rollback()

"""The unit of work: one session, one transaction, four repositories.

    with uow:
        uow.artifacts.add(artifact)
    # clean exit: committed; exception: rolled back and re-raised as our error

Transaction rules: a writing unit of work on SQLite starts with ``BEGIN IMMEDIATE``
(it takes the write lock up front, so it never fails half-way on a lock upgrade); a
read-only one starts a deferred ``BEGIN`` (one snapshot for all its reads). On
PostgreSQL a read-only unit of work runs its statements in autocommit: at READ COMMITTED
each statement sees its own snapshot either way, and it saves the BEGIN and ROLLBACK
round trips. The database refuses a read-only unit's writes, however they are sent
(``read_only.py``): ``ReadOnlyError``. A unit of work on a database that is not at the
code's schema revision raises ``SchemaVersionError``; that is checked once per engine.
"""

from __future__ import annotations

import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import Self

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from .db_errors import map_db_error
from .errors import UnitOfWorkActiveError
from .read_only import READ_ONLY_OPTION, read_only_options
from .repositories.base import ArtifactRepository, MarketplaceRepository, MetadataRepository, ProjectRepository
from .repositories.common import reconnect_read_only
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
_check_lock = threading.Lock()


def _ensure_schema(engine: Engine) -> None:
    """Check the schema revision, once per engine."""
    if engine in _checked_engines:
        return
    with _check_lock:
        if engine in _checked_engines:
            return
        with engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as connection:
            check_schema(connection)
        _checked_engines.add(engine)


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
            if self.read_only:
                # The database refuses this unit's writes (read_only.py); the mark in
                # Session.info lets the repositories refuse before sending anything.
                session.info[READ_ONLY_OPTION] = read_only_options(bind)
                reconnect_read_only(session)
        except Exception as exc:
            session.close()
            mapped = map_db_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        self._session = session
        self.projects = SqlAlchemyProjectRepository(session)
        self.artifacts = SqlAlchemyArtifactRepository(session)
        self.marketplace = SqlAlchemyMarketplaceRepository(session)
        self.metadata = SqlAlchemyMetadataRepository(session)

    def _complete(self) -> None:
        session = self.session
        # _is_clean(): what Session.flush asks; new/dirty/deleted would build three sets.
        if self.read_only and session._is_clean():
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
                reconnect_read_only(self.session)
            mapped = map_db_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        reconnect_read_only(self.session)

    def rollback(self) -> None:  # noqa: D102
        self.session.rollback()
        reconnect_read_only(self.session)

"""Our side of the repository workloads: units of work and the public repository API,
exactly as service code would use them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, make_url
from sqlalchemy.orm import Session

from skillmeat_cache import Project, UnitOfWork
from skillmeat_cache.container import Container
from skillmeat_cache.engine import to_url
from skillmeat_cache.models import utcnow
from skillmeat_cache.repositories.statements import ARTIFACTS_OF_PROJECT_TYPE, OUTDATED

__all__ = ["Ours", "SqlAlchemyAlone"]


class Ours:
    """Units of work on one database, from the container, as service code gets them."""

    def __init__(self, url: str) -> None:
        self.container = Container()
        self.container.config.from_dict({"database_url": url})
        self.engine = self.container.engine()

    def close(self) -> None:
        """Dispose of the engine."""
        self.container.shutdown_resources()

    def uow(self, read_only: bool = False) -> UnitOfWork:
        """A new unit of work."""
        return self.container.unit_of_work(read_only=read_only)

    def ingest_project(self, project: dict[str, Any], rows: list[dict[str, Any]], metas: list[dict[str, Any]]) -> None:
        """W1, one project: add it, upsert its artifacts, read their ids, set metadata."""
        with self.uow() as uow:
            uow.projects.add(
                Project(
                    id=project["id"],
                    name=project["name"],
                    path=project["path"],
                    description=project["description"],
                    last_fetched=utcnow(),
                )
            )
            uow.artifacts.upsert_many(rows)
            ids = uow.artifacts.keys_for_project(project["id"])
            uow.metadata.set_many(
                [{"artifact_id": ids[(r["type"], r["path"], r["name"])], **m} for r, m in zip(rows, metas, strict=True)]
            )

    def summaries(self) -> list[Any]:
        """W2."""
        with self.uow(read_only=True) as uow:
            return uow.projects.summaries()

    def outdated(self) -> list[Any]:
        """W3."""
        with self.uow(read_only=True) as uow:
            return uow.artifacts.outdated()

    def update_upstream(self, changes: list[dict[str, Any]]) -> int:
        """W4."""
        with self.uow() as uow:
            return uow.artifacts.update_many(changes)

    def delete_project(self, project_id: str) -> None:
        """W5."""
        with self.uow() as uow:
            uow.projects.delete(project_id)

    def list_for_project(self, project_id: str, type_: str) -> list[Any]:
        """W6."""
        with self.uow(read_only=True) as uow:
            return uow.artifacts.list_for_project(project_id, type=type_)

    def set_metadata(self, rows: list[dict[str, Any]]) -> int:
        """W7."""
        with self.uow() as uow:
            return uow.metadata.set_many(rows)

    def rescan_project(self, rows: list[dict[str, Any]]) -> int:
        """W8, one project."""
        with self.uow() as uow:
            return uow.artifacts.upsert_many(rows)


class SqlAlchemyAlone:
    """The floor under our side of W3 and W6: SQLAlchemy's ORM by itself, none of our code
    around it. A bare ``Session`` on a plain engine (PostgreSQL: in autocommit, one round
    trip, as our read-only units are; sessions in UTC, as ours are), running the very
    statements our repository runs and loading the same mapped classes: no unit of work,
    no read-only guards, no argument checks, no schema check, no liveness check.
    """

    def __init__(self, url: str) -> None:
        parsed = make_url(to_url(url))
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql":
            kwargs = {"isolation_level": "AUTOCOMMIT", "connect_args": {"options": "-c timezone=UTC"}}
        self.engine = create_engine(parsed, **kwargs)

    def close(self) -> None:
        """Dispose of the engine."""
        self.engine.dispose()

    def outdated(self) -> list[Any]:
        """W3."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(OUTDATED).all())

    def list_for_project(self, project_id: str, type_: str) -> list[Any]:
        """W6."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(ARTIFACTS_OF_PROJECT_TYPE, {"project_id": project_id, "type": type_}).all())

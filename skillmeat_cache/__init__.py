"""skillmeat-cache: a persistent cache of SkillMeat projects and artifacts.

Service code talks to a unit of work::

    with uow:
        uow.artifacts.add(Artifact(project_id=p.id, name="pdf-tools", type="skill"))

``containers.Container`` (the composition root) builds engines and units of work.
Importing this package imports no Alembic and builds no engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    CacheError,
    ConcurrentUseError,
    ConstraintViolationError,
    DatabaseBusyError,
    DatabaseCorruptError,
    DatabaseError,
    DatabaseFullError,
    DatabaseReadOnlyError,
    DatabaseUnavailableError,
    DuplicateError,
    ForeignKeyViolationError,
    NotFoundError,
    ReadOnlyError,
    SchemaVersionError,
    UnitOfWorkActiveError,
    ValidationError,
    ValueTooLargeError,
)
from .models import (
    ARTIFACT_TYPES,
    PROJECT_STATUSES,
    Artifact,
    ArtifactMetadata,
    Base,
    CacheMetadata,
    MarketplaceEntry,
    Project,
    derive_outdated,
)
from .repositories.base import ArtifactRepository, MarketplaceRepository, MetadataRepository, ProjectRepository
from .revision import HEAD_REVISION
from .uow import AbstractUnitOfWork, UnitOfWork

if TYPE_CHECKING:
    from .migration import current_revision, downgrade, migrate
    from .retry import run_with_retry

__all__ = [
    "ARTIFACT_TYPES",
    "HEAD_REVISION",
    "PROJECT_STATUSES",
    "AbstractUnitOfWork",
    "Artifact",
    "ArtifactMetadata",
    "ArtifactRepository",
    "Base",
    "CacheError",
    "CacheMetadata",
    "ConcurrentUseError",
    "ConstraintViolationError",
    "DatabaseBusyError",
    "DatabaseCorruptError",
    "DatabaseError",
    "DatabaseFullError",
    "DatabaseReadOnlyError",
    "DatabaseUnavailableError",
    "DuplicateError",
    "ForeignKeyViolationError",
    "MarketplaceEntry",
    "MarketplaceRepository",
    "MetadataRepository",
    "NotFoundError",
    "Project",
    "ProjectRepository",
    "ReadOnlyError",
    "SchemaVersionError",
    "UnitOfWork",
    "UnitOfWorkActiveError",
    "ValidationError",
    "ValueTooLargeError",
    "current_revision",
    "derive_outdated",
    "downgrade",
    "migrate",
    "run_with_retry",
]

# Loaded on first use: migrating imports Alembic, retrying imports tenacity.
_LAZY = {
    "migrate": "migration",
    "downgrade": "migration",
    "current_revision": "migration",
    "run_with_retry": "retry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'skillmeat_cache' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)

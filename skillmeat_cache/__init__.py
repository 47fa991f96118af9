"""skillmeat-cache: a persistent cache of SkillMeat projects and artifacts.

Service code talks to a unit of work::

    with uow:
        uow.artifacts.add(Artifact(project_id=p.id, name="pdf-tools", type="skill"))

``containers.Container`` (the composition root) builds engines and units of work.
Importing this package imports no Alembic and builds no engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import (
        CacheError,
        CacheRebuildingError,
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
        MigrationBackupError,
        MigrationFailedError,
        MigrationRestoreError,
        NotFoundError,
        ReadOnlyError,
        SchemaVersionError,
        UnitOfWorkActiveError,
        ValidationError,
        ValueTooLargeError,
    )
    from .migration import current_revision, downgrade, migrate
    from .models import (
        Artifact,
        ArtifactMetadata,
        Base,
        CacheMetadata,
        MarketplaceEntry,
        Project,
        derive_outdated,
    )
    from .repositories.base import ArtifactRepository, MarketplaceRepository, MetadataRepository, ProjectRepository
    from .retry import run_with_retry
    from .revision import HEAD_REVISION
    from .uow import AbstractUnitOfWork, UnitOfWork
    from .values import ARTIFACT_TYPES, PROJECT_STATUSES

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
    "CacheRebuildingError",
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
    "MigrationBackupError",
    "MigrationFailedError",
    "MigrationRestoreError",
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

_MODELS = ("Artifact", "ArtifactMetadata", "Base", "CacheMetadata", "MarketplaceEntry", "Project", "derive_outdated")
_REPOSITORIES = ("ArtifactRepository", "MarketplaceRepository", "MetadataRepository", "ProjectRepository")

# Every export is loaded on first use, so that a command that only reads (the CLI's
# ``projects``) imports neither the ORM models nor Alembic nor tenacity. Whatever
# ``__all__`` lists beyond these is an exception class from ``errors``.
_LAZY = {
    **dict.fromkeys(_MODELS, "models"),
    **dict.fromkeys(("ARTIFACT_TYPES", "PROJECT_STATUSES"), "values"),
    **dict.fromkeys(_REPOSITORIES, "repositories.base"),
    "HEAD_REVISION": "revision",
    "AbstractUnitOfWork": "uow",
    "UnitOfWork": "uow",
    "migrate": "migration",
    "downgrade": "migration",
    "current_revision": "migration",
    "run_with_retry": "retry",
}
_LAZY.update((name, "errors") for name in __all__ if name not in _LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'skillmeat_cache' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

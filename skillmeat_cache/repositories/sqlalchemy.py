"""The SQLAlchemy repositories, one module per aggregate.

Each takes the unit of work's session and never commits. Driver errors are mapped to our
exceptions at every public method (:mod:`.common`). ``add``/``set`` flush, so
constraint errors surface at the call that caused them. The hot write paths hand plain
SQL to the driver (:mod:`.bulk`); reads use statements built once (:mod:`.statements`).

- :mod:`.projects`: :class:`SqlAlchemyProjectRepository`
- :mod:`.artifacts`: :class:`SqlAlchemyArtifactRepository`
- :mod:`.marketplace`: :class:`SqlAlchemyMarketplaceRepository`
- :mod:`.metadata`: :class:`SqlAlchemyMetadataRepository`
"""

from __future__ import annotations

from .artifacts import SqlAlchemyArtifactRepository
from .marketplace import SqlAlchemyMarketplaceRepository
from .metadata import SqlAlchemyMetadataRepository
from .projects import SqlAlchemyProjectRepository

__all__ = [
    "SqlAlchemyArtifactRepository",
    "SqlAlchemyMarketplaceRepository",
    "SqlAlchemyMetadataRepository",
    "SqlAlchemyProjectRepository",
]

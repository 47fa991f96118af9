"""The fake's tables: the models it stores, their columns and keys, and the constraint
checks a database would make (shared by the fake unit of work and its repositories).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..errors import DuplicateError, ForeignKeyViolationError
from ..models import Artifact, ArtifactMetadata, CacheMetadata, MarketplaceEntry, Project
from ..repositories import rows as shared

__all__ = [
    "COLUMNS",
    "MODELS",
    "ORDER",
    "PK",
    "UPSERT_KEEPS",
    "Row",
    "Tables",
    "check_integrity",
    "copy_value",
    "natural_key",
    "violation",
]

Row = dict[str, Any]
Tables = dict[str, dict[Any, Row]]
MODELS = {m.__tablename__: m for m in (Project, Artifact, ArtifactMetadata, MarketplaceEntry, CacheMetadata)}
COLUMNS = {table: tuple(attr.key for attr in model.__mapper__.column_attrs) for table, model in MODELS.items()}
PK = {table: next(iter(model.__table__.primary_key)).name for table, model in MODELS.items()}
UPSERT_KEEPS = frozenset({"id", "created_at", "updated_at", *shared.ARTIFACT_KEY})  # upsert_many never changes


def natural_key(row: Row) -> tuple[str, str, str, str]:
    """An artifact's natural key, in list order: project_id, type, name, path."""
    return (row["project_id"], row["type"], row["name"], row["path"])


ORDER: dict[str, Callable[[Row], Any]] = {"projects": lambda r: (r["name"], r["path"]), "artifacts": natural_key}
ORDER["marketplace"] = lambda r: (r["type"], r["name"], r["id"])


def copy_value(value: Any) -> Any:
    """A JSON value (already checked by the models) that no entity or row shares."""
    return json.loads(json.dumps(value)) if isinstance(value, (dict, list, tuple)) else value


def violation(error: type[DuplicateError | ForeignKeyViolationError], table: str, *columns: str) -> Exception:
    """The error a database would raise for these columns of ``table``."""
    constraint = ", ".join(f"{table}.{column}" for column in columns)
    kind = "duplicate" if error is DuplicateError else "foreign key violation"
    return error(f"{kind} on table {table} ({constraint})", table=table, constraint=constraint)


def check_integrity(tables: Tables) -> None:
    """Raise what a database would for unique and foreign keys (uniques first, as a statement does)."""
    paths, keys = (
        [r["path"] for r in tables["projects"].values()],
        [natural_key(r) for r in tables["artifacts"].values()],
    )
    if len(set(paths)) != len(paths):
        raise violation(DuplicateError, "projects", "path")
    if len(set(keys)) != len(keys):
        raise violation(DuplicateError, "artifacts", *shared.ARTIFACT_KEY)
    if any(row["project_id"] not in tables["projects"] for row in tables["artifacts"].values()):
        raise violation(ForeignKeyViolationError, "artifacts", "project_id")
    if any(key not in tables["artifacts"] for key in tables["artifact_metadata"]):
        raise violation(ForeignKeyViolationError, "artifact_metadata", "artifact_id")

"""ORM models of the cache (SQLAlchemy 2 declarative, ``Mapped[...]`` style).

The Alembic migrations are the schema's source of truth; these models mirror them and a
test proves the two equal on SQLite and PostgreSQL.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from .column_types import JSONType, UTCDateTime, by_code_point
from .errors import ValidationError
from .values import (
    ARTIFACT_TYPES,
    PROJECT_STATUSES,
    TEXT_LIMITS,
    check_artifact_path,
    check_choice,
    check_json,
    check_text,
    check_warnings,
    default_artifact_path,
    derive_outdated,
    ensure_utc,
    new_id,
    normalise_labels,
    utcnow,
)

__all__ = [
    "ARTIFACT_TYPES",
    "PROJECT_STATUSES",
    "Artifact",
    "ArtifactMetadata",
    "ArtifactTag",
    "Base",
    "SEARCH_TABLE",
    "CacheMetadata",
    "MarketplaceEntry",
    "Project",
    "TEXT_LIMITS",
    "by_code_point",
    "check_artifact_path",
    "derive_outdated",
    "ensure_utc",
    "new_id",
    "utcnow",
]


def _one_of(column: str, values: tuple[str, ...]) -> str:
    """CHECK text for an enum column, built from the one list the code uses."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return list(value)
    return value


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so every constraint has a name."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        str: Text(),
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
        list[dict[str, str]]: JSONType,
    }

    # Defaults of attributes that are not column defaults (the column defaults, stated on
    # the columns, are applied at construction too: see _init_defaults).
    _defaults: ClassVar[dict[str, Callable[[], Any]]] = {}
    # What the constructor refuses to leave None: unless a model says otherwise, its NOT
    # NULL columns without a default, read off the table rather than restated.
    _required: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)  # maps the class: its columns exist from here
        if "_required" not in cls.__dict__:
            cls._required = tuple(
                key
                for key, column in cls.__mapper__.columns.items()
                if not column.nullable and column.default is None and column.server_default is None
            )

    def __init__(self, **kwargs: Any) -> None:
        mapper = type(self).__mapper__
        for key, factory in _init_defaults(type(self)).items():
            if kwargs.get(key) is None:
                setattr(self, key, factory())
        for key, value in kwargs.items():
            if key not in mapper.attrs:
                raise TypeError(f"{type(self).__name__} has no attribute {key!r}")
            setattr(self, key, value)
        for key in self._required:
            if getattr(self, key) is None:
                raise ValidationError(key, "is required")

    def to_dict(self) -> dict[str, Any]:
        """The column values as a JSON-serialisable dict (timestamps in ISO 8601)."""
        return {
            attr.key: _jsonable(getattr(self, attr.key))
            for attr in type(self).__mapper__.column_attrs
            if not attr.key.startswith("_")
        }

    def __repr__(self) -> str:
        keys = [c.key for c in type(self).__mapper__.primary_key]
        ident = ", ".join(f"{k}={getattr(self, k)!r}" for k in keys)
        return f"<{type(self).__name__} {ident}>"


_INIT_DEFAULTS: dict[type, dict[str, Callable[[], Any]]] = {}


def _init_defaults(cls: type[Base]) -> dict[str, Callable[[], Any]]:
    """What a new entity gets for an attribute not given: each column's own ``default``
    (so a new entity has its id and timestamps before it is flushed), then ``_defaults``.
    """
    found = _INIT_DEFAULTS.get(cls)
    if found is None:
        found = {}
        mapper = cls.__mapper__
        for column in cls.__table__.columns:
            default = column.default
            if default is None or not (default.is_callable or default.is_scalar):
                continue
            key = mapper.get_property_by_column(column).key
            found[key] = functools.partial(default.arg, None) if default.is_callable else constant(default.arg)
        found.update(cls._defaults)
        _INIT_DEFAULTS[cls] = found
    return found


def constant(value: Any) -> Callable[[], Any]:
    """A factory of one constant value."""
    return lambda: value


def _literal_default(value: str | bool) -> dict[str, Any]:
    """A column default stated once: the same value for the ORM and in the schema."""
    server = (true() if value else false()) if isinstance(value, bool) else text("'" + value.replace("'", "''") + "'")
    return {"default": value, "server_default": server}


def _validate_timestamp(field: str, value: datetime | None, *, required: bool = False) -> datetime | None:
    if value is None:
        if required:
            raise ValidationError(field, "is required")
        return None
    return ensure_utc(value, field)


class Project(Base):
    """A project folder that holds a ``.claude/`` directory."""

    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint(_one_of("status", PROJECT_STATUSES), name="status"),
        Index("idx_projects_status", "status"),
        Index("idx_projects_last_fetched", "last_fetched"),
    )

    id: Mapped[str] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str]
    path: Mapped[str] = mapped_column(unique=True)
    description: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_fetched: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(**_literal_default("active"))
    error_message: Mapped[str | None]
    # Digest of the sizes and mtimes of what a scan read (revision 0002); None: never read.
    fingerprint: Mapped[str | None]
    # The warnings of the last read, [{"path", "message"}] (revision 0005); None: none.
    warnings: Mapped[list[dict[str, str]] | None]

    artifacts: Mapped[list[Artifact]] = relationship(
        back_populates="project",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by=lambda: (Artifact.type, by_code_point(Artifact.name)),
    )

    @validates("id", "name", "description", "error_message", "fingerprint")
    def _validate_text(self, key: str, value: Any) -> Any:
        return check_text(key, value, required=key in ("id", "name"))

    @validates("path")
    def _validate_path(self, key: str, value: Any) -> str:
        check_text(key, value, required=True)
        if not os.path.isabs(value):
            raise ValidationError(key, f"must be an absolute path, got {value!r}")
        return value

    @validates("status")
    def _validate_status(self, key: str, value: Any) -> str:
        return check_choice(key, value, PROJECT_STATUSES)

    @validates("warnings")
    def _validate_warnings(self, key: str, value: Any) -> list[dict[str, str]] | None:
        return check_warnings(value)

    @validates("created_at", "updated_at", "last_fetched")
    def _validate_ts(self, key: str, value: datetime | None) -> datetime | None:
        return _validate_timestamp(key, value, required=key != "last_fetched")

    def is_stale(self, ttl: timedelta, now: datetime | None = None) -> bool:
        """True when the project was never fetched or was fetched longer than ``ttl`` ago."""
        if self.last_fetched is None:
            return True
        current = ensure_utc(now, "now") if now is not None else utcnow()
        return current - self.last_fetched > ttl


class Artifact(Base):
    """A skill, agent, command, MCP server or hook deployed in a project.

    ``is_outdated`` is derived from ``deployed_version`` and ``upstream_version``
    (see :func:`derive_outdated`) whenever either changes.
    """

    __tablename__ = "artifacts"
    __table_args__ = (
        # Revision 0005: two artifacts of one type and name are told apart by path.
        UniqueConstraint("project_id", "type", "name", "path"),
        CheckConstraint(_one_of("type", ARTIFACT_TYPES), name="type"),
        # The seed's name, widened to (project_id, is_outdated) in revision 0003: project
        # summaries count artifacts and outdated ones from the index alone.
        Index("idx_artifacts_project_id", "project_id", "is_outdated"),
        Index("idx_artifacts_type", "type"),
        Index("idx_artifacts_outdated", "is_outdated"),
        Index("idx_artifacts_composite", "project_id", "type"),
    )

    id: Mapped[str] = mapped_column(primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str]
    type: Mapped[str]
    # Relative to the project folder, POSIX (revision 0005); see default_artifact_path.
    path: Mapped[str]
    source: Mapped[str | None]
    deployed_version: Mapped[str | None]
    upstream_version: Mapped[str | None]
    is_outdated: Mapped[bool] = mapped_column(Boolean, **_literal_default(False))
    local_modified: Mapped[bool] = mapped_column(Boolean, **_literal_default(False))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # SkillMeat content hash of the artifact as last scanned (revision 0002).
    content_hash: Mapped[str | None]

    project: Mapped[Project] = relationship(back_populates="artifacts")
    meta: Mapped[ArtifactMetadata | None] = relationship(
        back_populates="artifact", cascade="all, delete-orphan", passive_deletes=True
    )

    def __init__(self, **kwargs: Any) -> None:
        project = kwargs.get("project")
        if project is not None and kwargs.get("project_id") is None:
            kwargs["project_id"] = project.id
        if kwargs.get("path") is None and kwargs.get("type") in ARTIFACT_TYPES and isinstance(kwargs.get("name"), str):
            kwargs["path"] = default_artifact_path(kwargs["type"], kwargs["name"])
        super().__init__(**kwargs)
        self.is_outdated = derive_outdated(self.deployed_version, self.upstream_version)

    @validates("id", "project_id", "name", "source", "content_hash")
    def _validate_text(self, key: str, value: Any) -> Any:
        return check_text(key, value, required=key not in ("source", "content_hash"))

    @validates("type")
    def _validate_type(self, key: str, value: Any) -> str:
        return check_choice(key, value, ARTIFACT_TYPES)

    @validates("path")
    def _validate_path(self, key: str, value: Any) -> str:
        return check_artifact_path(value)

    @validates("deployed_version", "upstream_version")
    def _validate_version(self, key: str, value: Any) -> str | None:
        check_text(key, value)
        deployed = value if key == "deployed_version" else self.deployed_version
        upstream = value if key == "upstream_version" else self.upstream_version
        self.is_outdated = derive_outdated(deployed, upstream)
        return value

    @validates("created_at", "updated_at")
    def _validate_ts(self, key: str, value: datetime | None) -> datetime | None:
        return _validate_timestamp(key, value, required=True)


class ArtifactTag(Base):
    """One tag of one artifact: the normalised form that makes tag lookup exact."""

    __tablename__ = "artifact_tags"
    __table_args__ = (Index("idx_artifact_tags_tag", "tag"),)
    _required = ()  # made only by ArtifactMetadata.tags, its artifact_id set on flush

    artifact_id: Mapped[str] = mapped_column(
        ForeignKey("artifact_metadata.artifact_id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(primary_key=True)


class ArtifactMetadata(Base):
    """An artifact's frontmatter document (``data``, column ``metadata``) and the fields
    lifted from it: description, tags and aliases.
    """

    __tablename__ = "artifact_metadata"
    _defaults: ClassVar[dict[str, Callable[[], Any]]] = {"tags": list, "aliases": list}

    artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    description: Mapped[str | None]
    tags: Mapped[list[str] | None]
    aliases: Mapped[list[str] | None]

    artifact: Mapped[Artifact] = relationship(back_populates="meta")
    _tag_rows: Mapped[list[ArtifactTag]] = relationship(cascade="all, delete-orphan", passive_deletes=True)

    def __init__(self, **kwargs: Any) -> None:
        artifact = kwargs.get("artifact")
        if artifact is not None and kwargs.get("artifact_id") is None:
            kwargs["artifact_id"] = artifact.id
        super().__init__(**kwargs)

    @validates("artifact_id", "description")
    def _validate_text(self, key: str, value: Any) -> Any:
        return check_text(key, value, required=key == "artifact_id")

    @validates("data")
    def _validate_data(self, key: str, value: Any) -> Any:
        return check_json(key, value)

    @validates("tags", "aliases")
    def _validate_list(self, key: str, value: Any) -> list[str]:
        values = normalise_labels(key, value)
        if key == "tags":
            self._tag_rows = [ArtifactTag(tag=tag) for tag in values]
        return values


# Code point order on PostgreSQL whatever the database's collation, so that an index
# on these columns serves ORDER BY ... COLLATE "C" (SQLite's BINARY order already is).
_CODE_POINT_TEXT = Text().with_variant(Text(collation="C"), "postgresql")

SEARCH_TABLE = Table(
    "artifact_search",
    Base.metadata,
    # Revision 0007: one narrow row per artifact, written only by the database's triggers
    # (see the migration), never by this code. It holds the listing keys of the artifact
    # and its project, and the searched text with ASCII letters lowered: ``name_l``,
    # ``description_l`` and ``tags_l`` (each tag between U+001E marks; empty without tags).
    Column("id", Integer, primary_key=True),  # the key of the SQLite full-text index
    Column("artifact_id", Text, ForeignKey("artifacts.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("project_id", Text, nullable=False),
    Column("project_path", _CODE_POINT_TEXT, nullable=False),
    Column("type", Text, nullable=False),
    Column("name", _CODE_POINT_TEXT, nullable=False),
    Column("path", _CODE_POINT_TEXT, nullable=False),
    Column("name_l", _CODE_POINT_TEXT, nullable=False),
    Column("description_l", Text, nullable=False),
    Column("tags_l", Text, nullable=False),
    # GET /artifacts?q= in its default order, and GET /search in its order, read these
    # indexes and stop at a page.
    Index("idx_artifact_search_order", "project_path", "type", "name", "path"),
    Index("idx_artifact_search_name", "name_l", "name", "project_path", "path"),
)


class MarketplaceEntry(Base):
    """An artifact offered by a marketplace, as last fetched."""

    __tablename__ = "marketplace"
    __table_args__ = (
        CheckConstraint(_one_of("type", ARTIFACT_TYPES), name="type"),
        Index("idx_marketplace_type", "type"),
        Index("idx_marketplace_name", "name"),
    )

    id: Mapped[str] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str]
    type: Mapped[str]
    url: Mapped[str | None]
    description: Mapped[str | None]
    version: Mapped[str | None]
    source: Mapped[str | None]
    cached_at: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any] | None]

    @validates("id", "name", "url", "description", "version", "source")
    def _validate_text(self, key: str, value: Any) -> Any:
        return check_text(key, value, required=key in ("id", "name"))

    @validates("type")
    def _validate_type(self, key: str, value: Any) -> str:
        return check_choice(key, value, ARTIFACT_TYPES)

    @validates("cached_at")
    def _validate_ts(self, key: str, value: datetime | None) -> datetime | None:
        return _validate_timestamp(key, value, required=True)

    @validates("data")
    def _validate_data(self, key: str, value: Any) -> Any:
        return check_json(key, value)


class CacheMetadata(Base):
    """A key/value pair about the cache itself (last full scan, settings, ...)."""

    __tablename__ = "cache_metadata"

    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @validates("key", "value")
    def _validate_text(self, key: str, value: Any) -> Any:
        return check_text(key, value, required=key == "key") if key == "key" else _check_value(value)

    @validates("updated_at")
    def _validate_ts(self, key: str, value: datetime | None) -> datetime | None:
        return _validate_timestamp(key, value, required=True)


def _check_value(value: Any) -> str:
    if value is None:
        raise ValidationError("value", "is required")
    return check_text("value", value)

"""Initial schema: projects, artifacts, artifact metadata and tags, marketplace, cache metadata.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TYPES = "type IN ('skill', 'agent', 'command', 'mcp', 'hook')"
STATUSES = "status IN ('active', 'stale', 'error')"


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_fetched", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), server_default=sa.text("'active'"), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("path", name=op.f("uq_projects_path")),
        sa.CheckConstraint(STATUSES, name=op.f("ck_projects_status")),
    )
    op.create_index("idx_projects_status", "projects", ["status"])
    op.create_index("idx_projects_last_fetched", "projects", ["last_fetched"])

    op.create_table(
        "artifacts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("project_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("deployed_version", sa.Text(), nullable=True),
        sa.Column("upstream_version", sa.Text(), nullable=True),
        sa.Column("is_outdated", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("local_modified", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_artifacts_project_id_projects"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("project_id", "type", "name", name=op.f("uq_artifacts_project_id_type_name")),
        sa.CheckConstraint(TYPES, name=op.f("ck_artifacts_type")),
    )
    op.create_index("idx_artifacts_project_id", "artifacts", ["project_id"])
    op.create_index("idx_artifacts_type", "artifacts", ["type"])
    op.create_index("idx_artifacts_outdated", "artifacts", ["is_outdated"])
    op.create_index("idx_artifacts_composite", "artifacts", ["project_id", "type"])

    op.create_table(
        "artifact_metadata",
        sa.Column("artifact_id", sa.Text(), nullable=False),
        sa.Column("metadata", _json(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", _json(), nullable=True),
        sa.Column("aliases", _json(), nullable=True),
        sa.PrimaryKeyConstraint("artifact_id", name=op.f("pk_artifact_metadata")),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.id"],
            name=op.f("fk_artifact_metadata_artifact_id_artifacts"),
            ondelete="CASCADE",
        ),
    )
    op.create_index("idx_metadata_tags", "artifact_metadata", ["tags"])

    op.create_table(
        "artifact_tags",
        sa.Column("artifact_id", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("artifact_id", "tag", name=op.f("pk_artifact_tags")),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifact_metadata.artifact_id"],
            name=op.f("fk_artifact_tags_artifact_id_artifact_metadata"),
            ondelete="CASCADE",
        ),
    )
    op.create_index("idx_artifact_tags_tag", "artifact_tags", ["tag"])

    op.create_table(
        "marketplace",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("cached_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_marketplace")),
        sa.CheckConstraint(TYPES, name=op.f("ck_marketplace_type")),
    )
    op.create_index("idx_marketplace_type", "marketplace", ["type"])
    op.create_index("idx_marketplace_name", "marketplace", ["name"])

    op.create_table(
        "cache_metadata",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_cache_metadata")),
    )


def downgrade() -> None:
    op.drop_table("cache_metadata")
    op.drop_index("idx_marketplace_name", table_name="marketplace")
    op.drop_index("idx_marketplace_type", table_name="marketplace")
    op.drop_table("marketplace")
    op.drop_index("idx_artifact_tags_tag", table_name="artifact_tags")
    op.drop_table("artifact_tags")
    op.drop_index("idx_metadata_tags", table_name="artifact_metadata")
    op.drop_table("artifact_metadata")
    op.drop_index("idx_artifacts_composite", table_name="artifacts")
    op.drop_index("idx_artifacts_outdated", table_name="artifacts")
    op.drop_index("idx_artifacts_type", table_name="artifacts")
    op.drop_index("idx_artifacts_project_id", table_name="artifacts")
    op.drop_table("artifacts")
    op.drop_index("idx_projects_last_fetched", table_name="projects")
    op.drop_index("idx_projects_status", table_name="projects")
    op.drop_table("projects")

"""Artifact paths: two artifacts of one type and name are told apart by path.

- ``artifacts.path`` (NOT NULL): the artifact's path relative to its project folder.
  Existing rows get the conventional path of their type and name
  (``skillmeat_cache.values.default_artifact_path``: ``.claude/skills/<name>``,
  ``.claude/agents/<name>.md``, ...); the next scan pairs them with what is on disk and
  keeps their ids (see docs/scanning.md).
- The artifact key becomes (project_id, type, name, path), in list order, so that its
  index also serves a project's artifact list on SQLite:
  ``uq_artifacts_project_id_type_name`` is replaced by
  ``uq_artifacts_project_id_type_name_path``.
- ``projects.warnings``: the warnings of a project's last read, so an unchanged rescan
  still reports them.
- Every project's fingerprint is cleared, so the next scan re-reads every project under
  the new layout rules instead of skipping it as unchanged.

Downgrade drops both columns and restores the old key. Before that it deletes the rows
the old key cannot hold: of several artifacts of one (project_id, type, name), the one
whose path sorts first (code point order) is kept, with its metadata; the others go.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# default_artifact_path, in SQL (kept here: a migration must not change with the code).
_CONVENTIONAL = (
    "CASE type"
    " WHEN 'skill' THEN '.claude/skills/' || name"
    " WHEN 'agent' THEN '.claude/agents/' || name || '.md'"
    " WHEN 'command' THEN '.claude/commands/' || name || '.md'"
    " WHEN 'hook' THEN '.claude/hooks/' || name"
    " ELSE '.claude/mcp/' || name END"
)


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _artifacts(unique: tuple[str, ...], path_nullable: bool) -> sa.Table:
    """The artifacts table as this revision finds or leaves it: batch mode copies it from
    this definition instead of reflecting it, so ``--sql`` (offline) runs work on SQLite.
    """
    meta = sa.MetaData()
    sa.Table("projects", meta, sa.Column("id", sa.Text(), primary_key=True))
    table = sa.Table(
        "artifacts",
        meta,
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
        sa.Column("content_hash", sa.Text(), nullable=True),
        sa.Column("path", sa.Text(), nullable=path_nullable),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_artifacts_project_id_projects", ondelete="CASCADE"
        ),
        sa.UniqueConstraint(*unique, name=f"uq_artifacts_{'_'.join(unique)}"),
        sa.CheckConstraint(TYPES, name="ck_artifacts_type"),
    )
    sa.Index("idx_artifacts_project_id", table.c.project_id, table.c.is_outdated)
    sa.Index("idx_artifacts_type", table.c.type)
    sa.Index("idx_artifacts_outdated", table.c.is_outdated)
    sa.Index("idx_artifacts_composite", table.c.project_id, table.c.type)
    return table


OLD_KEY = ("project_id", "type", "name")
NEW_KEY = ("project_id", "type", "name", "path")  # in list order: the index serves per-project lists
TYPES = "type IN ('skill', 'agent', 'command', 'mcp', 'hook')"


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("warnings", _json(), nullable=True))
    with op.batch_alter_table("artifacts") as batch:
        batch.add_column(sa.Column("path", sa.Text(), nullable=True))
    op.execute(f"UPDATE artifacts SET path = {_CONVENTIONAL}")
    op.execute("UPDATE projects SET fingerprint = NULL")
    with op.batch_alter_table("artifacts", copy_from=_artifacts(OLD_KEY, path_nullable=True)) as batch:
        batch.alter_column("path", existing_type=sa.Text(), nullable=False)
        batch.drop_constraint("uq_artifacts_project_id_type_name", type_="unique")
        batch.create_unique_constraint("uq_artifacts_project_id_type_name_path", list(NEW_KEY))


def downgrade() -> None:
    collate = ' COLLATE "C"' if op.get_context().dialect.name == "postgresql" else ""
    doomed = (
        "SELECT id FROM artifacts WHERE EXISTS (SELECT 1 FROM artifacts AS other"
        " WHERE other.project_id = artifacts.project_id AND other.type = artifacts.type"
        f" AND other.name = artifacts.name AND other.path{collate} < artifacts.path{collate})"
    )
    # Foreign keys are off while migrating on SQLite: the children go first, by hand.
    op.execute(f"DELETE FROM artifact_tags WHERE artifact_id IN ({doomed})")
    op.execute(f"DELETE FROM artifact_metadata WHERE artifact_id IN ({doomed})")
    op.execute(f"DELETE FROM artifacts WHERE id IN ({doomed})")
    with op.batch_alter_table("artifacts", copy_from=_artifacts(NEW_KEY, path_nullable=False)) as batch:
        batch.drop_constraint("uq_artifacts_project_id_type_name_path", type_="unique")
        batch.create_unique_constraint("uq_artifacts_project_id_type_name", list(OLD_KEY))
        batch.drop_column("path")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("warnings")

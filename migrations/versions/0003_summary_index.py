"""Index idx_artifacts_project_id widened from (project_id) to (project_id, is_outdated).

The project list (``ProjectRepository.summaries``) counts every project's artifacts and
outdated artifacts. With an index on ``project_id`` alone SQLite had to read every
artifact row to see ``is_outdated`` (about 36 ms at 100,000 artifacts); with both
columns in one index it counts from the index alone (about 9 ms). The new index also
serves every lookup by ``project_id`` the old one served; it keeps the seed's name.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_index("idx_artifacts_project_id")
        batch.create_index("idx_artifacts_project_id", ["project_id", "is_outdated"])


def downgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_index("idx_artifacts_project_id")
        batch.create_index("idx_artifacts_project_id", ["project_id"])

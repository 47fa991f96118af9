"""Scan state: a project fingerprint (a digest of what a scan read, so unchanged projects
are skipped) and each artifact's content hash as last scanned.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("fingerprint", sa.Text(), nullable=True))
    with op.batch_alter_table("artifacts") as batch:
        batch.add_column(sa.Column("content_hash", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_column("content_hash")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("fingerprint")

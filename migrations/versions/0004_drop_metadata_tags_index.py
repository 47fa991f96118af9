"""Index idx_metadata_tags dropped.

It was a btree over the whole JSON tag list. No query can use it (an exact tag lookup
reads ``artifact_tags``, whose ``idx_artifact_tags_tag`` serves it), and on PostgreSQL
it capped the tags of one artifact at about 2.7 kB together: a btree row can hold no
more, so a scan of an artifact with many tags failed. With it gone every indexed text
value has a limit the models enforce (``TEXT_LIMITS``), on every backend alike.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("idx_metadata_tags", table_name="artifact_metadata")


def downgrade() -> None:
    op.create_index("idx_metadata_tags", "artifact_metadata", ["tags"])

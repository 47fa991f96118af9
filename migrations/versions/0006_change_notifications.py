"""Change notifications on PostgreSQL: every statement that writes ``projects``,
``artifacts`` or ``artifact_metadata`` sends ``NOTIFY skillmeat_cache`` (payload: the
table's name) when its transaction commits.

A server listening on the channel learns of writes by any client (a CLI scan in a
terminal, a second server) without polling. PostgreSQL folds identical notifications of
one transaction into one, so a bulk write costs one notification per table. SQLite
needs nothing: a server watches ``PRAGMA data_version`` there. Nothing changes on SQLite
but the revision number.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("projects", "artifacts", "artifact_metadata")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION skillmeat_cache_notify() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN PERFORM pg_notify('skillmeat_cache', TG_TABLE_NAME); RETURN NULL; END $$"
    )
    for table in _TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION skillmeat_cache_notify()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"DROP TRIGGER {table}_notify ON {table}")
    op.execute("DROP FUNCTION skillmeat_cache_notify()")

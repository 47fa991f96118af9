"""The schema revision this code expects, known without Alembic or the migration scripts.

A test proves ``HEAD_REVISION`` equals the scripts' head and ``KNOWN_REVISIONS`` their
history, so that checking a database on the read path imports nothing heavy.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text

from .errors import SchemaVersionError

__all__ = ["HEAD_REVISION", "KNOWN_REVISIONS", "check_schema", "read_revision"]

KNOWN_REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005", "0006", "0007")
HEAD_REVISION: str = KNOWN_REVISIONS[-1]


def read_revision(connection: Connection) -> str | None:
    """The revision stamped in the database, or None when it has no schema yet."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def check_schema(connection: Connection) -> None:
    """Raise SchemaVersionError unless the database is at HEAD_REVISION."""
    current = read_revision(connection)
    if current == HEAD_REVISION:
        return
    if current is None:
        raise SchemaVersionError(
            f"the database has no cache schema (code expects revision {HEAD_REVISION}); "
            "run `skillmeat-cache migrate` to create it"
        )
    if current in KNOWN_REVISIONS:
        raise SchemaVersionError(
            f"the database is at revision {current}, behind this code's {HEAD_REVISION}; "
            "run `skillmeat-cache migrate` to upgrade it"
        )
    raise SchemaVersionError(
        f"the database is at revision {current}, which this code does not know (its head is "
        f"{HEAD_REVISION}): it was written by a newer skillmeat-cache; upgrade the package"
    )

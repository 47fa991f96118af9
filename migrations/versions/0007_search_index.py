"""The search index: ``artifact_search``, one narrow row per artifact, kept by triggers.

Search (``GET /search``, ``GET /artifacts?q=``) looks for text inside an artifact's name,
description and tags. Scanning the wide ``artifacts`` and ``artifact_metadata`` rows for
it took 150-300 ms over 100,000 artifacts. This revision adds:

- ``artifact_search``: per artifact, the listing keys (project path, type, name, path)
  and the searched text with ASCII letters lowered, as the code's ``ascii_lower``:
  ``name_l``, ``description_l`` and ``tags_l`` (each tag between U+001E marks, so that a
  tag equal to the query is found as U+001E query U+001E; empty without tags). An index
  on the listing keys, and one on the lowered name and the keys, let a listing and a
  search stop at their page.
- Triggers on ``artifacts``, ``artifact_metadata`` and ``projects`` that keep it equal
  to what they hold, whoever writes (this code, another process, a SQL shell). The code
  never writes it.
- SQLite: ``artifact_search_fts``, an FTS5 index with the trigram tokenizer (case
  sensitive, over the lowered text) whose phrase queries find any substring of three
  characters or more; kept by triggers on ``artifact_search``. Skipped, with a warning,
  where SQLite lacks FTS5 or the trigram tokenizer (before 3.34): search then reads the
  narrow table instead.
- PostgreSQL: a trigram GIN index (``pg_trgm``) on the three text columns that serves
  ``LIKE '%...%'``. Skipped, with a warning, where the extension cannot be created.

Existing rows are indexed by the upgrade. Downgrade drops all of it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("skillmeat_cache.migrations")

# The searched text of a metadata row ``m``, lowered: its description, and its tags.
_SQLITE_DESCRIPTION = "lower(coalesce({m}.description, ''))"
_SQLITE_TAGS = (
    "coalesce(char(30) || (SELECT group_concat(lower(value), char(30)) FROM json_each({m}.tags)"
    " WHERE type = 'text') || char(30), '')"
)
_SQLITE_TEXT = "description_l = " + _SQLITE_DESCRIPTION + ", tags_l = " + _SQLITE_TAGS

# An artifact moved to an unknown project keeps its old project path here: the foreign
# key check fails the statement at its end, and the error must be that one.
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER artifact_search_artifact_insert AFTER INSERT ON artifacts BEGIN
  INSERT INTO artifact_search (artifact_id, project_id, project_path, type, name, path, name_l, description_l, tags_l)
  SELECT NEW.id, NEW.project_id, p.path, NEW.type, NEW.name, NEW.path, lower(NEW.name), '', ''
  FROM projects AS p WHERE p.id = NEW.project_id;
END""",
    """CREATE TRIGGER artifact_search_artifact_update AFTER UPDATE OF project_id, type, name, path ON artifacts
WHEN OLD.project_id IS NOT NEW.project_id OR OLD.type IS NOT NEW.type OR OLD.name IS NOT NEW.name
  OR OLD.path IS NOT NEW.path BEGIN
  UPDATE artifact_search SET project_id = NEW.project_id,
    project_path = coalesce((SELECT path FROM projects WHERE id = NEW.project_id), project_path),
    type = NEW.type, name = NEW.name, path = NEW.path, name_l = lower(NEW.name)
  WHERE artifact_id = NEW.id;
END""",
    f"""CREATE TRIGGER artifact_search_metadata_insert AFTER INSERT ON artifact_metadata BEGIN
  UPDATE artifact_search SET {_SQLITE_TEXT.format(m="NEW")} WHERE artifact_id = NEW.artifact_id;
END""",
    f"""CREATE TRIGGER artifact_search_metadata_update AFTER UPDATE OF description, tags ON artifact_metadata
WHEN OLD.description IS NOT NEW.description OR OLD.tags IS NOT NEW.tags BEGIN
  UPDATE artifact_search SET {_SQLITE_TEXT.format(m="NEW")} WHERE artifact_id = NEW.artifact_id;
END""",
    """CREATE TRIGGER artifact_search_metadata_delete AFTER DELETE ON artifact_metadata BEGIN
  UPDATE artifact_search SET description_l = '', tags_l = '' WHERE artifact_id = OLD.artifact_id;
END""",
    """CREATE TRIGGER artifact_search_project_path AFTER UPDATE OF path ON projects
WHEN OLD.path IS NOT NEW.path BEGIN
  UPDATE artifact_search SET project_path = NEW.path WHERE project_id = NEW.id;
END""",
)

_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE artifact_search_fts USING fts5(name_l, description_l, tags_l, content='artifact_search',"
    " content_rowid='id', tokenize='trigram case_sensitive 1')"
)
_FTS_COLUMNS = "rowid, name_l, description_l, tags_l"
_FTS_DELETE = (
    f"INSERT INTO artifact_search_fts (artifact_search_fts, {_FTS_COLUMNS})"
    " VALUES ('delete', OLD.id, OLD.name_l, OLD.description_l, OLD.tags_l);"
)
_FTS_INSERT = (
    f"INSERT INTO artifact_search_fts ({_FTS_COLUMNS}) VALUES (NEW.id, NEW.name_l, NEW.description_l, NEW.tags_l);"
)
_SQLITE_FTS_TRIGGERS = (
    f"CREATE TRIGGER artifact_search_fts_insert AFTER INSERT ON artifact_search BEGIN {_FTS_INSERT} END",
    f"CREATE TRIGGER artifact_search_fts_delete AFTER DELETE ON artifact_search BEGIN {_FTS_DELETE} END",
    "CREATE TRIGGER artifact_search_fts_update AFTER UPDATE OF name_l, description_l, tags_l ON artifact_search"
    " WHEN OLD.name_l IS NOT NEW.name_l OR OLD.description_l IS NOT NEW.description_l OR OLD.tags_l IS NOT NEW.tags_l"
    f" BEGIN {_FTS_DELETE} {_FTS_INSERT} END",
)

_PG_TAGS_FUNCTION = """CREATE FUNCTION skillmeat_cache_search_tags(tags jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(chr(30) || (SELECT string_agg(lower(tag COLLATE "C"), chr(30))
                 FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(tags) = 'array' THEN tags END) AS tag)
    || chr(30), '')
$$"""
# Statement triggers with transition tables: a bulk write of many rows costs one set-based
# statement here, not a PL/pgSQL call per row.
_PG_FUNCTIONS = (
    _PG_TAGS_FUNCTION,
    """CREATE FUNCTION skillmeat_cache_search_artifacts_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO artifact_search (artifact_id, project_id, project_path, type, name, path, name_l, description_l,
                               tags_l)
  SELECT n.id, n.project_id, p.path, n.type, n.name, n.path, lower(n.name COLLATE "C"), '', ''
  FROM new_rows AS n JOIN projects AS p ON p.id = n.project_id;
  RETURN NULL;
END $$""",
    """CREATE FUNCTION skillmeat_cache_search_artifacts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE artifact_search AS s SET project_id = n.project_id,
    -- an unknown project fails the foreign key check at the statement's end
    project_path = coalesce((SELECT path FROM projects WHERE id = n.project_id), s.project_path),
    type = n.type, name = n.name, path = n.path, name_l = lower(n.name COLLATE "C")
  FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
  WHERE s.artifact_id = n.id AND (o.project_id, o.type, o.name, o.path) IS DISTINCT FROM
    (n.project_id, n.type, n.name, n.path);
  RETURN NULL;
END $$""",
    """CREATE FUNCTION skillmeat_cache_search_metadata_set() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE artifact_search AS s SET description_l = lower(coalesce(n.description, '') COLLATE "C"),
      tags_l = skillmeat_cache_search_tags(n.tags)
    FROM new_rows AS n WHERE s.artifact_id = n.artifact_id;
  ELSE
    UPDATE artifact_search AS s SET description_l = lower(coalesce(n.description, '') COLLATE "C"),
      tags_l = skillmeat_cache_search_tags(n.tags)
    FROM new_rows AS n JOIN old_rows AS o ON o.artifact_id = n.artifact_id
    WHERE s.artifact_id = n.artifact_id AND (o.description, o.tags) IS DISTINCT FROM (n.description, n.tags);
  END IF;
  RETURN NULL;
END $$""",
    """CREATE FUNCTION skillmeat_cache_search_metadata_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE artifact_search AS s SET description_l = '', tags_l = ''
  FROM old_rows AS o WHERE s.artifact_id = o.artifact_id;
  RETURN NULL;
END $$""",
    """CREATE FUNCTION skillmeat_cache_search_projects_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE artifact_search AS s SET project_path = n.path
  FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
  WHERE s.project_id = n.id AND o.path IS DISTINCT FROM n.path;
  RETURN NULL;
END $$""",
)
_PG_FUNCTION_NAMES = (
    "artifacts_added", "artifacts_changed", "metadata_set", "metadata_deleted", "projects_changed"
)
_STATEMENT = "FOR EACH STATEMENT EXECUTE FUNCTION skillmeat_cache_search_{}()"
_PG_TRIGGERS = (
    "CREATE TRIGGER artifact_search_artifact_insert AFTER INSERT ON artifacts REFERENCING NEW TABLE AS new_rows "
    + _STATEMENT.format("artifacts_added"),
    "CREATE TRIGGER artifact_search_artifact_update AFTER UPDATE ON artifacts"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows " + _STATEMENT.format("artifacts_changed"),
    "CREATE TRIGGER artifact_search_metadata_insert AFTER INSERT ON artifact_metadata REFERENCING NEW TABLE AS"
    " new_rows " + _STATEMENT.format("metadata_set"),
    "CREATE TRIGGER artifact_search_metadata_update AFTER UPDATE ON artifact_metadata"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows " + _STATEMENT.format("metadata_set"),
    "CREATE TRIGGER artifact_search_metadata_delete AFTER DELETE ON artifact_metadata REFERENCING OLD TABLE AS"
    " old_rows " + _STATEMENT.format("metadata_deleted"),
    "CREATE TRIGGER artifact_search_project_path AFTER UPDATE ON projects"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows " + _STATEMENT.format("projects_changed"),
)
_TRIGGERS = (
    ("artifact_search_artifact_insert", "artifacts"),
    ("artifact_search_artifact_update", "artifacts"),
    ("artifact_search_metadata_insert", "artifact_metadata"),
    ("artifact_search_metadata_update", "artifact_metadata"),
    ("artifact_search_metadata_delete", "artifact_metadata"),
    ("artifact_search_project_path", "projects"),
)


def _code_point_text() -> sa.types.TypeEngine[str]:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "artifact_search",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("artifact_id", sa.Text(), nullable=False),
        sa.Column("project_id", sa.Text(), nullable=False),
        sa.Column("project_path", _code_point_text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("name", _code_point_text(), nullable=False),
        sa.Column("path", _code_point_text(), nullable=False),
        sa.Column("name_l", _code_point_text(), nullable=False),
        sa.Column("description_l", sa.Text(), nullable=False),
        sa.Column("tags_l", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"], ["artifacts.id"], name="fk_artifact_search_artifact_id_artifacts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_artifact_search"),
        sa.UniqueConstraint("artifact_id", name="uq_artifact_search_artifact_id"),
    )
    op.create_index("idx_artifact_search_order", "artifact_search", ["project_path", "type", "name", "path"])
    op.create_index("idx_artifact_search_name", "artifact_search", ["name_l", "name", "project_path", "path"])
    if postgresql:
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def _upgrade_sqlite() -> None:
    op.execute(
        "INSERT INTO artifact_search (artifact_id, project_id, project_path, type, name, path, name_l, description_l,"
        " tags_l) SELECT a.id, a.project_id, p.path, a.type, a.name, a.path, lower(a.name),"
        f" {_SQLITE_DESCRIPTION.format(m='m')}, {_SQLITE_TAGS.format(m='m')}"
        " FROM artifacts AS a JOIN projects AS p ON p.id = a.project_id"
        " LEFT JOIN artifact_metadata AS m ON m.artifact_id = a.id"
    )
    for statement in _SQLITE_TRIGGERS:
        op.execute(statement)
    if not _try(_SQLITE_FTS, sa.exc.OperationalError):  # no FTS5 or no trigram tokenizer (SQLite < 3.34)
        return
    op.execute("INSERT INTO artifact_search_fts (artifact_search_fts) VALUES ('rebuild')")
    for statement in _SQLITE_FTS_TRIGGERS:
        op.execute(statement)


def _upgrade_postgresql() -> None:
    for statement in _PG_FUNCTIONS:
        op.execute(statement)
    op.execute(
        "INSERT INTO artifact_search (artifact_id, project_id, project_path, type, name, path, name_l, description_l,"
        ' tags_l) SELECT a.id, a.project_id, p.path, a.type, a.name, a.path, lower(a.name COLLATE "C"),'
        " lower(coalesce(m.description, '') COLLATE \"C\"), skillmeat_cache_search_tags(m.tags)"
        " FROM artifacts AS a JOIN projects AS p ON p.id = a.project_id"
        " LEFT JOIN artifact_metadata AS m ON m.artifact_id = a.id"
    )
    for statement in _PG_TRIGGERS:
        op.execute(statement)
    if not _try("CREATE EXTENSION IF NOT EXISTS pg_trgm", sa.exc.DBAPIError):  # not installed, or not allowed
        return
    op.execute(
        "CREATE INDEX idx_artifact_search_trgm ON artifact_search"
        " USING gin (name_l gin_trgm_ops, description_l gin_trgm_ops, tags_l gin_trgm_ops)"
        # A small pending list: GIN's default (4 MB) is read entry by entry by every search
        # until the next vacuum. Measured over 15,000 artifacts just scanned, a search with no
        # match took 10.6 ms with the default, 2.0 ms with 256 kB, 1.2 ms with none
        # (fastupdate off), which doubled a first scan; with 256 kB the index adds a fifth.
        " WITH (gin_pending_list_limit = 256)"
    )


def _try(statement: str, expected: type[Exception]) -> bool:
    """Run ``statement`` in a savepoint; False, with a warning, when the engine refuses
    it (offline, ``--sql``, it is simply emitted).
    """
    if context.is_offline_mode():
        op.execute(statement)
        return True
    bind = op.get_bind()
    try:
        with bind.begin_nested():
            bind.exec_driver_sql(statement)
    except expected as exc:
        log.warning("the search index is left out (%s): search will read every row", str(exc.orig).strip())
        return False
    return True


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, table in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}" if postgresql else f"DROP TRIGGER IF EXISTS {name}")
    if postgresql:
        for function in _PG_FUNCTION_NAMES:
            op.execute(f"DROP FUNCTION IF EXISTS skillmeat_cache_search_{function}()")
        op.execute("DROP FUNCTION IF EXISTS skillmeat_cache_search_tags(jsonb)")
    else:
        op.execute("DROP TABLE IF EXISTS artifact_search_fts")  # its triggers go with artifact_search
    op.drop_table("artifact_search")  # its indexes go with it

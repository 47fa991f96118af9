"""The Alembic migrations on real databases: history, round trips, models versus
migrations, the ``alembic`` command, failure, concurrency and the schema-version check.

PostgreSQL tests that need a pristine database create and drop their own (skipped
without a server, failing under CI=true, like conftest's ``pg_server_url``).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from conftest import failing_migrations, race_migrations
from sqlalchemy import Engine, MetaData, inspect
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool

import skillmeat_cache
from skillmeat_cache import Artifact, Base, Project, SchemaVersionError, UnitOfWork, revision
from skillmeat_cache.engine import create_engine_for_url
from skillmeat_cache.migration import (
    alembic_config,
    current_revision,
    downgrade,
    include_name,
    migrate,
    migrate_engine,
    migration_transaction,
    migrations_path,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("SKILLMEAT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
HEAD = skillmeat_cache.HEAD_REVISION
APP_TABLES = {
    "projects", "artifacts", "artifact_metadata", "artifact_tags", "marketplace", "cache_metadata", "artifact_search"
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no schema: a SQLite file path that does not exist yet, or an
    empty PostgreSQL database.
    """
    if request.param == "sqlite":
        return str(tmp_path / "fresh.db")
    return request.getfixturevalue("fresh_pg_url")


def _engine(url: str, **kwargs) -> Engine:
    return create_engine_for_url(url, poolclass=NullPool, **kwargs)


def _tables(url: str) -> set[str]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:  # SQLite's FTS5 tables: see test_the_search_index_is_built
            return {name for name in inspect(conn).get_table_names() if include_name(name, "table", {})}
    finally:
        engine.dispose()


def _version_rows(url: str) -> list[str]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def _clean_env(home: Path) -> dict[str, str]:
    """The environment for a child process: none of our variables, and a HOME that is
    a temporary folder, so that nothing could ever reach the real ~/.skillmeat cache.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLMEAT_CACHE_") and k != "PYTHONPATH"}
    env["HOME"] = str(home)
    return env


# --------------------------------------------------------------------------- 1. history


def test_head_and_known_revisions_match_the_scripts() -> None:
    script = ScriptDirectory.from_config(alembic_config())

    heads = script.get_heads()
    assert heads == [HEAD], "exactly one head, and HEAD_REVISION names it"
    assert revision.HEAD_REVISION == HEAD

    newest_first = list(script.walk_revisions(base="base", head="heads"))
    history = tuple(rev.revision for rev in reversed(newest_first))
    assert history == revision.KNOWN_REVISIONS
    assert history[-1] == HEAD
    assert script.get_bases() == [history[0]]
    # A straight line: every revision's parent is the one before it.
    for parent, rev in zip((None, *history[:-1]), reversed(newest_first), strict=True):
        assert rev.down_revision == parent
    # alembic_version.version_num is VARCHAR(32).
    assert all(len(rev_id) <= 32 for rev_id in history)


def test_scripts_are_the_repository_migrations_folder() -> None:
    # The editable install maps skillmeat_cache.migrations to the top-level folder, so the
    # alembic command (alembic.ini) and migrate() run the very same scripts.
    if not Path(skillmeat_cache.__file__).resolve().is_relative_to(REPO_ROOT):
        pytest.skip("skillmeat_cache is not imported from this repository (not an editable install)")
    assert migrations_path().resolve() == (REPO_ROOT / "migrations").resolve()


# --------------------------------------------------------------------------- 2. round trip


def test_upgrade_downgrade_upgrade(fresh_url: str) -> None:
    assert current_revision(fresh_url) is None
    assert not _tables(fresh_url) & APP_TABLES

    migrate(fresh_url)
    assert current_revision(fresh_url) == HEAD
    assert _tables(fresh_url) == APP_TABLES | {"alembic_version"}

    downgrade(fresh_url, "base")
    assert current_revision(fresh_url) is None
    assert _tables(fresh_url) - {"alembic_version"} == set(), "downgrade base leaves no application table"
    assert _version_rows(fresh_url) == []

    migrate(fresh_url)
    assert current_revision(fresh_url) == HEAD
    assert _tables(fresh_url) == APP_TABLES | {"alembic_version"}
    assert _version_rows(fresh_url) == [HEAD]


# --------------------------------------------------------------------------- 3. models == migrations

CHECKS = {"projects": "ck_projects_status", "artifacts": "ck_artifacts_type", "marketplace": "ck_marketplace_type"}
INDEXES = {
    "projects": {"idx_projects_status", "idx_projects_last_fetched"},
    "artifacts": {
        "idx_artifacts_project_id",
        "idx_artifacts_type",
        "idx_artifacts_outdated",
        "idx_artifacts_composite",
    },
    "artifact_metadata": set(),
    "artifact_tags": {"idx_artifact_tags_tag"},
    "marketplace": {"idx_marketplace_type", "idx_marketplace_name"},
    "artifact_search": {"idx_artifact_search_order", "idx_artifact_search_name"},
}
FOREIGN_KEYS = {
    # (table, constrained columns) -> (referred table, referred columns)
    ("artifacts", ("project_id",)): ("projects", ("id",)),
    ("artifact_metadata", ("artifact_id",)): ("artifacts", ("id",)),
    ("artifact_tags", ("artifact_id",)): ("artifact_metadata", ("artifact_id",)),
    ("artifact_search", ("artifact_id",)): ("artifacts", ("id",)),
}


def _model_columns(kind: type[sa.types.TypeEngine]) -> set[tuple[str, str]]:
    """(table, column) of every model column whose type is, or is based on, ``kind``."""
    found = set()
    for table in Base.metadata.tables.values():
        for column in table.columns:
            col_type = column.type
            impl = getattr(col_type, "impl", col_type)
            if isinstance(col_type, kind) or isinstance(impl, kind):
                found.add((table.name, column.name))
    return found


def test_models_equal_migrations(fresh_url: str) -> None:
    migrate(fresh_url)
    engine = _engine(fresh_url)
    try:
        with engine.connect() as conn:
            opts = {"compare_type": True, "compare_server_default": True, "include_name": include_name}
            context = MigrationContext.configure(conn, opts=opts)
            assert compare_metadata(context, Base.metadata) == []

            # The comparison is live: a model drifting from the database is reported.
            drifted = MetaData()
            for table in Base.metadata.sorted_tables:
                table.to_metadata(drifted)
            drifted.tables["projects"].append_column(sa.Column("extra", sa.Text()))
            drifted.tables["marketplace"].c.data.type = sa.Text()
            opts = {"compare_type": True, "include_name": include_name}
            diffs = compare_metadata(MigrationContext.configure(conn, opts=opts), drifted)
            kinds = {(d[0] if isinstance(d, tuple) else d[0][0]) for d in diffs}
            assert kinds == {"add_column", "modify_type"}, diffs

            _assert_what_compare_metadata_cannot_see(conn)
    finally:
        engine.dispose()


def _assert_what_compare_metadata_cannot_see(conn: sa.Connection) -> None:
    insp = inspect(conn)
    for table, name in CHECKS.items():
        assert name in {ck["name"] for ck in insp.get_check_constraints(table)}, table

    uniques = {uq["name"]: uq["column_names"] for uq in insp.get_unique_constraints("artifacts")}
    assert uniques.get("uq_artifacts_project_id_type_name_path") == ["project_id", "type", "name", "path"]
    assert {uq["name"] for uq in insp.get_unique_constraints("projects")} == {"uq_projects_path"}

    for table, names in INDEXES.items():
        assert names <= {ix["name"] for ix in insp.get_indexes(table)}, table

    seen = {}
    for table in APP_TABLES:
        for fk in insp.get_foreign_keys(table):
            key = (table, tuple(fk["constrained_columns"]))
            seen[key] = (fk["referred_table"], tuple(fk["referred_columns"]))
            assert (fk["options"].get("ondelete") or "").upper() == "CASCADE", key
    assert seen == FOREIGN_KEYS

    if conn.dialect.name != "postgresql":
        return
    json_columns = _model_columns(sa.JSON)
    timestamp_columns = _model_columns(sa.DateTime)
    assert len(json_columns) == 5 and len(timestamp_columns) == 7  # not a vacuous check
    types = {
        (table, column): data_type
        for table, column, data_type in conn.execute(
            sa.text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema()"
            )
        )
    }
    for key in json_columns:
        assert types[key] == "jsonb", key
    for key in timestamp_columns:
        assert types[key] == "timestamp with time zone", key
    # And reflection agrees, so compare_metadata compared JSONB against JSONB.
    assert isinstance(next(c for c in insp.get_columns("marketplace") if c["name"] == "data")["type"], postgresql.JSONB)


# --------------------------------------------------------------------------- 4. the alembic command


def _alembic(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"alembic {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_alembic_command_with_x_url(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    db = tmp_path / "x.db"
    url = f"sqlite:///{db}"

    _alembic("-x", f"url={url}", "upgrade", "head", env=env)
    assert current_revision(str(db)) == HEAD
    assert _tables(str(db)) == APP_TABLES | {"alembic_version"}
    assert HEAD in _alembic("-x", f"url={url}", "current", env=env).stdout

    _alembic("-x", f"url={url}", "downgrade", "base", env=env)
    assert current_revision(str(db)) is None
    assert _tables(str(db)) == {"alembic_version"}
    assert not (tmp_path / ".skillmeat").exists(), "the default cache was touched"


def test_alembic_command_with_environment_variable(tmp_path: Path) -> None:
    db = tmp_path / "from-env.db"
    env = {**_clean_env(tmp_path), "SKILLMEAT_CACHE_URL": str(db)}

    _alembic("upgrade", "head", env=env)
    assert current_revision(str(db)) == HEAD
    _alembic("downgrade", "base", env=env)
    assert current_revision(str(db)) is None
    assert _tables(str(db)) == {"alembic_version"}
    assert not (tmp_path / ".skillmeat").exists(), "the default cache was touched"


def test_alembic_offline_sql_accepts_a_bare_path(tmp_path: Path) -> None:
    # alembic.ini documents `alembic -x url=PATH`; --sql must accept the same PATH.
    db = tmp_path / "offline.db"
    result = _alembic("-x", f"url={db}", "upgrade", "head", "--sql", env=_clean_env(tmp_path))
    assert "CREATE TABLE projects" in result.stdout
    assert f"version_num='{HEAD}'" in result.stdout or f"VALUES ('{HEAD}')" in result.stdout
    assert not db.exists(), "offline mode must not touch the database"


# --------------------------------------------------------------------------- 5. failure half-way

def test_failed_migration_leaves_previous_revision(fresh_url: str, tmp_path: Path) -> None:
    migrate(fresh_url)
    engine = _engine(fresh_url)
    try:
        with Session(engine) as session, session.begin():
            session.add(Project(name="kept", path="/srv/kept"))

        config = Config()
        config.set_main_option("script_location", str(failing_migrations(tmp_path)))
        assert ScriptDirectory.from_config(config).get_heads() == ["0008"]

        with engine.connect() as conn:
            config.attributes["connection"] = conn
            with pytest.raises(RuntimeError, match="boom"), migration_transaction(conn):
                command.upgrade(config, "head")
            if conn.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1, "foreign keys back on"
    finally:
        engine.dispose()

    assert current_revision(fresh_url) == HEAD
    assert _version_rows(fresh_url) == [HEAD]
    assert "half_done" not in _tables(fresh_url)
    engine = _engine(fresh_url)
    try:
        with engine.connect() as conn:
            assert "half_done_flag" not in {c["name"] for c in inspect(conn).get_columns("projects")}
            assert conn.execute(sa.text("SELECT name FROM projects")).scalars().all() == ["kept"]
    finally:
        engine.dispose()
    # And the database still migrates normally afterwards.
    migrate(fresh_url)
    assert current_revision(fresh_url) == HEAD


# --------------------------------------------------------------------------- 6. concurrency

@pytest.mark.slow
def test_concurrent_first_migration_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "race.db"
    assert not db.exists()
    assert race_migrations(str(db), 6, tmp_path) == ["done"] * 6
    assert current_revision(str(db)) == HEAD
    assert _version_rows(str(db)) == [HEAD]
    assert _tables(str(db)) == APP_TABLES | {"alembic_version"}


def test_migrate_waits_out_a_busy_new_file(tmp_path: Path) -> None:
    # What makes the SQLite race above fail now and then, made deterministic: on a new
    # file, the connect handler's switch to WAL needs an exclusive lock and may get
    # SQLITE_BUSY without waiting (two connections switching at once) or after the busy
    # timeout. migrate() must retry opening the connection instead of failing.
    db = tmp_path / "busy.db"
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # a new file, so still in rollback-journal mode
    release = threading.Timer(1.0, holder.execute, args=("COMMIT",))
    release.start()
    engine = create_engine_for_url(str(db), busy_timeout=0.1, poolclass=NullPool)
    try:
        migrate_engine(engine)
    finally:
        release.join()
        holder.close()
        engine.dispose()
    assert current_revision(str(db)) == HEAD


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_first_migration_postgres(fresh_pg_url: str, tmp_path: Path) -> None:
    assert race_migrations(fresh_pg_url, 4, tmp_path) == ["done"] * 4
    assert current_revision(fresh_pg_url) == HEAD
    assert _version_rows(fresh_pg_url) == [HEAD]
    assert _tables(fresh_pg_url) == APP_TABLES | {"alembic_version"}


# --------------------------------------------------------------------------- 7. schema version check


def _uow(engine: Engine, read_only: bool = False) -> UnitOfWork:
    return UnitOfWork(sessionmaker(bind=engine, expire_on_commit=False), read_only=read_only)


def test_unit_of_work_checks_the_schema_version_once_per_engine(fresh_url: str) -> None:
    first = create_engine_for_url(fresh_url)
    second = None
    try:
        with pytest.raises(SchemaVersionError, match="run `skillmeat-cache migrate`"), _uow(first):
            pass  # pragma: no cover - never entered

        migrate(fresh_url)
        # A failed check is not remembered: the same engine works once the schema is there.
        with _uow(first) as uow:
            project = uow.projects.add(Project(name="p", path="/srv/p"))

        admin = _engine(fresh_url)
        try:
            with admin.begin() as conn:
                conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        finally:
            admin.dispose()
        assert current_revision(fresh_url) == "9999"

        # Checked once per engine: the engine that passed keeps working ...
        with _uow(first, read_only=True) as uow:
            assert uow.projects.get(project.id) is not None
        # ... while a new engine sees the unknown revision.
        second = create_engine_for_url(fresh_url)
        with pytest.raises(SchemaVersionError, match="upgrade the package") as caught, _uow(second):
            pass  # pragma: no cover - never entered
        assert "9999" in str(caught.value)
        # Not remembered either: it still raises.
        with pytest.raises(SchemaVersionError), _uow(second, read_only=True):
            pass  # pragma: no cover - never entered
    finally:
        first.dispose()
        if second is not None:
            second.dispose()


def test_unit_of_work_at_head_works(db_url: str) -> None:
    engine = create_engine_for_url(db_url)
    try:
        with _uow(engine) as uow:
            uow.projects.add(Project(name="p", path="/srv/head"))
        with _uow(engine, read_only=True) as uow:
            assert uow.projects.count() == 1
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- 8. rows kept, foreign keys


def test_migrate_at_head_is_a_no_op_that_keeps_rows(db_url: str) -> None:
    engine = _engine(db_url)
    try:
        with Session(engine) as session, session.begin():
            project = Project(name="p", path="/srv/rows")
            session.add(project)
            session.flush()
            session.add(Artifact(project_id=project.id, name="pdf-tools", type="skill"))
        ids = _row_ids(engine)

        migrate(db_url)

        assert current_revision(db_url) == HEAD
        assert _version_rows(db_url) == [HEAD]
        assert _row_ids(engine) == ids
    finally:
        engine.dispose()


def _row_ids(engine: Engine) -> tuple[list[str], list[tuple[str, str]]]:
    with engine.connect() as conn:
        projects = conn.execute(sa.text("SELECT id FROM projects")).scalars().all()
        artifacts = [tuple(row) for row in conn.execute(sa.text("SELECT id, project_id FROM artifacts"))]
    assert len(projects) == 1 and len(artifacts) == 1
    return projects, artifacts


def test_foreign_keys_are_on_again_after_a_migration_on_an_engine(tmp_path: Path) -> None:
    # One pooled DBAPI connection: the one the migration used is the one we get back.
    engine = create_engine_for_url(str(tmp_path / "fk.db"), poolclass=StaticPool)
    try:
        migrate_engine(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        migrate_engine(engine)  # the no-op run at head too
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        # Enforced, not just reported: a dangling artifact is refused, a delete cascades.
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO artifacts (id, project_id, name, type, path, created_at, updated_at) "
                    "VALUES ('a', 'missing', 'n', 'skill', 's', '2026-01-01', '2026-01-01')"
                )
            )
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO projects (id, name, path, created_at, updated_at) "
                    "VALUES ('p', 'p', '/srv/fk', '2026-01-01', '2026-01-01')"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO artifacts (id, project_id, name, type, path, created_at, updated_at) "
                    "VALUES ('a', 'p', 'n', 'skill', 's', '2026-01-01', '2026-01-01')"
                )
            )
            conn.execute(sa.text("DELETE FROM projects"))
            assert conn.execute(sa.text("SELECT count(*) FROM artifacts")).scalar() == 0
    finally:
        engine.dispose()


def test_database_check_constraints_accept_exactly_the_codes_enums(db_url: str) -> None:
    """The migration's CHECK lists and the code's ARTIFACT_TYPES / PROJECT_STATUSES agree
    (SkillMeat's own cache once had "mcp" in one and "mcp_server" in the other)."""
    from skillmeat_cache import ARTIFACT_TYPES, PROJECT_STATUSES

    engine = _engine(db_url)
    try:
        for status in PROJECT_STATUSES:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO projects (id, name, path, status, created_at, updated_at) "
                        "VALUES (:s, :s, :p, :s, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"s": status, "p": f"/w/{status}"},
                )
        for type_ in ARTIFACT_TYPES:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO artifacts (id, project_id, name, type, path, created_at, updated_at) "
                        "VALUES (:t, 'active', :t, :t, :t, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"t": type_},
                )
        for sql in ("UPDATE projects SET status = 'archived'", "UPDATE artifacts SET type = 'mcp_server'"):
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
                conn.execute(sa.text(sql))
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- revision 0005


def _seed_0004(url: str) -> None:
    migrate(url, "0004")
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO projects (id, name, path, created_at, updated_at, fingerprint)"
                    " VALUES ('p', 'p', '/srv/p', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'fp')"
                )
            )
            for id_, type_, name in [("s", "skill", "pdf"), ("a", "agent", "rev"), ("c", "command", "go"),
                                     ("h", "hook", "fmt"), ("m", "mcp", "gh")]:  # fmt: skip
                conn.execute(
                    sa.text(
                        "INSERT INTO artifacts (id, project_id, name, type, created_at, updated_at)"
                        " VALUES (:i, 'p', :n, :t, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"i": id_, "n": name, "t": type_},
                )
    finally:
        engine.dispose()


def test_0005_backfills_paths_clears_fingerprints_and_widens_the_key(fresh_url: str) -> None:
    _seed_0004(fresh_url)
    migrate(fresh_url)
    engine = _engine(fresh_url)
    try:
        with engine.begin() as conn:
            paths = dict(conn.execute(sa.text("SELECT id, path FROM artifacts")).all())
            assert paths == {
                "s": ".claude/skills/pdf",
                "a": ".claude/agents/rev.md",
                "c": ".claude/commands/go.md",
                "h": ".claude/hooks/fmt",
                "m": ".claude/mcp/gh",
            }
            assert conn.execute(sa.text("SELECT fingerprint, warnings FROM projects")).one() == (None, None)
            # A second skill named pdf at another path is a new artifact now ...
            conn.execute(
                sa.text(
                    "INSERT INTO artifacts (id, project_id, name, type, path, created_at, updated_at)"
                    " VALUES ('s2', 'p', 'pdf', 'skill', '.codex/skills/pdf', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        # ... but the same path twice still is not.
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO artifacts (id, project_id, name, type, path, created_at, updated_at)"
                    " VALUES ('s3', 'p', 'pdf', 'skill', '.codex/skills/pdf', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO artifact_metadata (artifact_id, description) VALUES ('s', 'kept'), ('s2', 'dropped')"
                )
            )
            conn.execute(sa.text("INSERT INTO artifact_tags (artifact_id, tag) VALUES ('s2', 't')"))
    finally:
        engine.dispose()
    downgrade(fresh_url, "0004")
    engine = _engine(fresh_url)
    try:
        with engine.begin() as conn:
            # The row whose path sorts first (.claude before .codex) is the one kept, with its metadata.
            assert sorted(r[0] for r in conn.execute(sa.text("SELECT id FROM artifacts"))) == ["a", "c", "h", "m", "s"]
            assert conn.execute(sa.text("SELECT artifact_id, description FROM artifact_metadata")).all() == [
                ("s", "kept")
            ]
            assert conn.execute(sa.text("SELECT count(*) FROM artifact_tags")).scalar() == 0
            columns = {c["name"] for c in inspect(conn).get_columns("artifacts")}
            assert "path" not in columns
            uniques = {u["name"] for u in inspect(conn).get_unique_constraints("artifacts")}
            assert uniques == {"uq_artifacts_project_id_type_name"}
    finally:
        engine.dispose()
    migrate(fresh_url)
    assert current_revision(fresh_url) == HEAD

"""The bad-input catalogue (docs/errors.md): every case is one test here (or an existing
test the catalogue cites).

Each case gives a specific error of ours (the API: a CacheError subclass; the CLI: exit 1
and exactly one ``error:`` line on stderr, no traceback), or, for a bad file met by a scan,
a ``warning:`` line naming it while the scan goes on. Each test first seeds rows and proves
afterwards that every row stored before is still there.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from conftest import container_on, factory_for, refuse_scandir, succeeded, write_file
from sqlalchemy import event, text

import skillmeat_cache.reader as reader_module
import skillmeat_cache.services as services
from skillmeat_cache import (
    Artifact,
    CacheError,
    DuplicateError,
    ForeignKeyViolationError,
    MarketplaceEntry,
    Project,
    SchemaVersionError,
    ValidationError,
    migrate,
)
from skillmeat_cache.engine import build_engine, create_engine_for_url, to_url
from skillmeat_cache.errors import (
    DatabaseCorruptError,
    DatabaseError,
    DatabaseFullError,
    DatabaseReadOnlyError,
    DatabaseUnavailableError,
    ValueTooLargeError,
)
from skillmeat_cache.models import TEXT_LIMITS
from skillmeat_cache.services import InputError, scan

TABLES = ("projects", "artifacts", "artifact_metadata", "artifact_tags", "marketplace", "cache_metadata")


def _permission_bits_apply() -> bool:
    """Whether a folder without write permission stops this process (not for root, unless
    run without CAP_DAC_OVERRIDE, e.g. ``setpriv --bounding-set=-dac_override,-dac_read_search``).
    """
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o500)
        try:
            open(os.path.join(folder, "probe"), "w").close()
        except PermissionError:
            return True
        finally:
            os.chmod(folder, 0o700)
    return False


PERMISSIONS_APPLY = _permission_bits_apply()

# --------------------------------------------------------------------------- helpers


def _freeze(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value[:1] in "[{":
        try:  # SQLite hands JSON back as text; PostgreSQL as objects
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    return value


def snapshot(url: str) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table, as comparable tuples."""
    engine = create_engine_for_url(url)
    try:
        with engine.connect() as conn:
            return {
                t: {tuple(_freeze(v) for v in row) for row in conn.execute(text(f"SELECT * FROM {t}"))} for t in TABLES
            }
    finally:
        engine.dispose()


def seed(url: str) -> dict[str, set[tuple[Any, ...]]]:
    """Rows in every table (paths outside any scanned tree); returns their snapshot."""
    engine, uow = factory_for(url)
    try:
        with uow() as u:
            alpha = u.projects.add(Project(name="seeded", path="/seed/alpha", description="kept"))
            beta = u.projects.add(Project(name="other", path="/seed/beta"))
            kept = u.artifacts.add(Artifact(project_id=alpha.id, name="kept-skill", type="skill", deployed_version="1"))
            u.artifacts.add(Artifact(project_id=beta.id, name="kept-agent", type="agent"))
            u.metadata.set(kept.id, data={"k": "v", "n": 1}, description="d", tags=["t1", "t2"], aliases=["a"])
            u.marketplace.add(MarketplaceEntry(id="m1", name="kept-skill", type="skill", version="2"))
            u.metadata.set_value("seeded", "yes")
    finally:
        engine.dispose()
    before = snapshot(url)
    assert all(before[t] for t in TABLES)
    return before


def assert_kept(before: dict[str, set[tuple[Any, ...]]], url: str, *, unchanged: bool = False) -> None:
    """Every row of ``before`` is still there (and nothing else changed when ``unchanged``)."""
    after = snapshot(url)
    for table in TABLES:
        assert before[table] <= after[table], f"rows lost from {table}"
        if unchanged:
            assert after[table] == before[table], f"{table} changed"


def assert_refused(db_url: str, write: Callable[[Any, Project], None], field: str, match: str | None = None) -> None:
    """``write(uow, project)`` raises ValidationError naming ``field`` (its message matching
    ``match``) and the database is left exactly as it was."""
    before = seed(db_url)
    engine, uow = factory_for(db_url)
    with uow() as u:
        project = u.projects.get_by_path("/seed/alpha")
    with pytest.raises(ValidationError, match=match) as info, uow() as u:
        write(u, project)
    engine.dispose()
    assert info.value.field == field
    assert_kept(before, db_url, unchanged=True)


def one_error_line(result: Result, *fragments: str) -> str:
    """Exit 1, exactly one ``error:`` line on stderr, no traceback; returns the line."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an escaped exception
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def sqlite_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def make_skill(project: Path, name: str = "s", content: str | bytes = "---\nname: s\nversion: 1.0\n---\n") -> Path:
    return write_file(project / ".claude" / "skills" / name / "SKILL.md", content)


def warnings_of(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


# --------------------------------------------------------------------------- values given to the API


def _bad_type_artifact(u: Any, p: Project) -> None:
    u.artifacts.add(Artifact(project_id=p.id, name="x", type="widget"))


def _bad_type_row(u: Any, p: Project) -> None:
    u.artifacts.upsert_many(
        [{"project_id": p.id, "type": "skill", "name": "ok"}, {"project_id": p.id, "type": "plugin", "name": "x"}]
    )


def _bad_type_marketplace(u: Any, p: Project) -> None:
    u.marketplace.upsert_many([{"id": "z", "name": "x", "type": "mcp_server"}])


def _bad_status(u: Any, p: Project) -> None:
    u.projects.get(p.id).status = "gone"


@pytest.mark.parametrize(
    ("write", "field"),
    [
        pytest.param(_bad_type_artifact, "type", id="artifact-type"),
        pytest.param(_bad_type_row, "type", id="bulk-row-type"),
        pytest.param(_bad_type_marketplace, "type", id="marketplace-type"),
        pytest.param(_bad_status, "status", id="project-status"),
    ],
)
def test_invalid_type_or_status_is_a_validation_error(db_url, write, field):
    assert_refused(db_url, write, field)


def _empty_project_name(u: Any, p: Project) -> None:
    u.projects.add(Project(name="", path="/new"))


def _blank_artifact_name(u: Any, p: Project) -> None:
    u.artifacts.add(Artifact(project_id=p.id, name="   ", type="skill"))


def _empty_row_name(u: Any, p: Project) -> None:
    u.artifacts.upsert_many([{"project_id": p.id, "type": "skill", "name": ""}])


def _empty_marketplace_name(u: Any, p: Project) -> None:
    u.marketplace.add(MarketplaceEntry(name="", type="skill"))


def _empty_tag(u: Any, p: Project) -> None:
    artifact = u.artifacts.list_for_project(p.id)[0]
    u.metadata.set_many([{"artifact_id": artifact.id, "tags": ["ok", ""]}])


@pytest.mark.parametrize(
    ("write", "field"),
    [
        pytest.param(_empty_project_name, "name", id="project"),
        pytest.param(_blank_artifact_name, "name", id="artifact"),
        pytest.param(_empty_row_name, "name", id="bulk-row"),
        pytest.param(_empty_marketplace_name, "name", id="marketplace"),
        pytest.param(_empty_tag, "tags", id="metadata-tag"),
    ],
)
def test_empty_name_is_a_validation_error(db_url, write, field):
    assert_refused(db_url, write, field)


def test_ten_megabyte_text_in_a_plain_column_is_stored_verbatim(db_url):
    before = seed(db_url)
    text_ = secrets.token_hex(5 * 1024 * 1024)  # 10 MiB of text that does not compress
    engine, uow = factory_for(db_url)
    with uow() as u:
        added = u.projects.add(Project(name="big", path="/big", description=text_))
    with uow(read_only=True) as u:
        again = u.projects.get(added.id)
        assert again.description == text_
    engine.dispose()
    assert_kept(before, db_url)


def _long_artifact_name(u: Any, p: Project, value: str) -> None:
    u.artifacts.add(Artifact(project_id=p.id, name=value, type="skill"))


def _long_bulk_artifact_name(u: Any, p: Project, value: str) -> None:
    u.artifacts.upsert_many([{"project_id": p.id, "type": "skill", "name": value}])


def _long_project_name(u: Any, p: Project, value: str) -> None:
    u.projects.add(Project(name=value, path="/long"))


def _long_path(u: Any, p: Project, value: str) -> None:
    u.projects.add(Project(name="long", path="/" + value[1:]))


def _long_marketplace_name(u: Any, p: Project, value: str) -> None:
    u.marketplace.add(MarketplaceEntry(name=value, type="skill"))


def _long_tag(u: Any, p: Project, value: str) -> None:
    artifact = u.artifacts.add(Artifact(project_id=p.id, name="tagged", type="skill"))
    u.metadata.set(artifact.id, data=None, tags=["ok", value])


def _long_key(u: Any, p: Project, value: str) -> None:
    u.metadata.set_value(value, "v")


LONG_TEXT_WRITES = {
    "name": _long_artifact_name,
    "bulk name": _long_bulk_artifact_name,
    "project name": _long_project_name,
    "path": _long_path,
    "marketplace name": _long_marketplace_name,
    "tag": _long_tag,
    "key": _long_key,
}
LONG_TEXT_FIELDS = {"bulk name": "name", "project name": "name", "marketplace name": "name", "tag": "tags"}


@pytest.mark.parametrize("what", LONG_TEXT_WRITES)
def test_too_long_text_in_an_indexed_column_is_a_validation_error_on_every_backend(db_url, what):
    """Every backend (and the fake, see test_fakes) refuses the same lengths: PostgreSQL's
    btree could not hold a few kB, so the models refuse it before any database sees it."""
    field = LONG_TEXT_FIELDS.get(what, what)
    limit = TEXT_LIMITS[field]
    before = seed(db_url)
    engine, uow = factory_for(db_url)
    with uow(read_only=True) as u:
        project = u.projects.get_by_path("/seed/alpha")
    for value in ("é" * (limit // 2 + 1), secrets.token_hex(5 * 1024 * 1024)):
        with pytest.raises(ValidationError, match=f"at most {limit} bytes") as info, uow() as u:
            _long_artifact_name(u, project, "written-first")
            LONG_TEXT_WRITES[what](u, project, value)
        assert info.value.field == field
        assert_kept(before, db_url, unchanged=True)
    # A value of exactly the limit (in UTF-8 bytes, multi-byte characters) fits everywhere.
    at_limit = "é" * (limit // 2) + "x" * (limit % 2)
    with uow() as u:
        LONG_TEXT_WRITES[what](u, project, at_limit)
    engine.dispose()
    assert_kept(before, db_url)


def test_relative_project_path_is_a_validation_error(db_url):
    before = seed(db_url)
    engine, uow = factory_for(db_url)
    with pytest.raises(ValidationError, match="absolute path") as info, uow() as u:
        u.projects.add(Project(name="p", path="code/p"))
    engine.dispose()
    assert info.value.field == "path"
    assert_kept(before, db_url, unchanged=True)


def _text_in_project(value: str) -> Callable[[Any, Project], None]:
    def write(u: Any, p: Project) -> None:
        u.projects.add(Project(name=value, path="/new"))

    return write


def _text_in_path(value: str) -> Callable[[Any, Project], None]:
    def write(u: Any, p: Project) -> None:
        u.projects.add(Project(name="n", path="/new/" + value))

    return write


def _text_in_row(value: str) -> Callable[[Any, Project], None]:
    def write(u: Any, p: Project) -> None:
        u.artifacts.upsert_many(
            [{"project_id": p.id, "type": "skill", "name": "ok"}, {"project_id": p.id, "type": "skill", "name": value}]
        )

    return write


def _text_in_metadata_row(value: str) -> Callable[[Any, Project], None]:
    def write(u: Any, p: Project) -> None:
        artifact = u.artifacts.list_for_project(p.id)[0]
        u.metadata.set_many([{"artifact_id": artifact.id, "description": "fine", "tags": ["ok", value]}])

    return write


def _text_in_marketplace_row(value: str) -> Callable[[Any, Project], None]:
    def write(u: Any, p: Project) -> None:
        u.marketplace.upsert_many([{"id": "z", "name": "x", "type": "skill", "description": value}])

    return write


def _text_in_search(value: str) -> Callable[[Any, Project], None]:
    def write(u: Any, p: Project) -> None:
        u.artifacts.search(value)

    return write


def _text_in_lookup(value: str) -> Callable[[Any, Project], None]:
    def write(u: Any, p: Project) -> None:
        services.find_project(u, value)

    return write


_TEXT_PLACES = [
    ("model-name", _text_in_project, "name"),
    ("model-path", _text_in_path, "path"),
    ("bulk-artifact-row", _text_in_row, "name"),
    ("bulk-metadata-row", _text_in_metadata_row, "tags"),
    ("bulk-marketplace-row", _text_in_marketplace_row, "description"),
    ("search", _text_in_search, "text"),
    ("find-project", _text_in_lookup, "project"),
]


@pytest.mark.parametrize(
    ("value", "message"),
    [pytest.param("a\x00b", "NUL byte", id="nul"), pytest.param("a\ud800b", "unpaired surrogate", id="surrogate")],
)
@pytest.mark.parametrize(("where", "field"), [pytest.param(m, f, id=i) for i, m, f in _TEXT_PLACES])
def test_text_that_cannot_be_stored_is_a_validation_error(db_url, value, message, where, field):
    assert_refused(db_url, where(value), field, message)


@pytest.mark.parametrize("value", ["a\x00b", "a\ud800b"], ids=["nul", "surrogate"])
def test_lookup_text_that_cannot_be_stored_is_a_validation_error(db_url, value):
    engine, uow = factory_for(db_url)
    try:
        for lookup in (
            lambda u: u.metadata.artifacts_with_tag(value),
            lambda u: u.projects.get_by_path(value),
            lambda u: u.projects.get(value),
        ):
            with pytest.raises(ValidationError), uow(read_only=True) as u:
                lookup(u)
    finally:
        engine.dispose()


def test_duplicate_path_is_a_duplicate_error(db_url):
    """Also: tests/integration/test_errors.py::test_duplicate_project_path_names_table_and_chains_the_driver_error."""
    before = seed(db_url)
    engine, uow = factory_for(db_url)
    with pytest.raises(DuplicateError) as info, uow() as u:
        u.projects.add(Project(name="ok", path="/ok"))
        u.projects.add(Project(name="again", path="/seed/alpha"))
    engine.dispose()
    assert info.value.table == "projects"
    assert_kept(before, db_url, unchanged=True)


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda u: u.artifacts.add(Artifact(project_id="ghost", name="x", type="skill")), id="artifact"),
        pytest.param(
            lambda u: u.artifacts.upsert_many([{"project_id": "ghost", "type": "skill", "name": "x"}]), id="bulk-row"
        ),
        pytest.param(lambda u: u.metadata.set("ghost", data={"a": 1}), id="metadata"),
        pytest.param(lambda u: u.metadata.set_many([{"artifact_id": "ghost", "tags": ["t"]}]), id="bulk-metadata"),
    ],
)
def test_artifact_of_a_missing_project_is_a_foreign_key_error(db_url, write):
    """Also: tests/integration/test_repositories.py::test_duplicate_artifact_key_and_missing_project."""
    before = seed(db_url)
    engine, uow = factory_for(db_url)
    with pytest.raises(ForeignKeyViolationError), uow() as u:
        u.metadata.set_value("written-first", "then rolled back")
        write(u)
    engine.dispose()
    assert_kept(before, db_url, unchanged=True)


NAIVE = datetime(2026, 1, 1)


@pytest.mark.parametrize(
    ("write", "field"),
    [
        pytest.param(lambda u, p: setattr(u.projects.get(p.id), "last_fetched", NAIVE), "last_fetched", id="entity"),
        pytest.param(lambda u, p: u.projects.touch_many([p.id], NAIVE), "when", id="touch_many"),
        pytest.param(lambda u, p: u.projects.stale(timedelta(days=1), now=NAIVE), "now", id="stale-now"),
        pytest.param(lambda u, p: u.marketplace.purge_older_than(timedelta(days=1), now=NAIVE), "now", id="purge-now"),
        pytest.param(
            lambda u, p: u.artifacts.upsert_many(
                [{"project_id": p.id, "type": "skill", "name": "x", "updated_at": NAIVE}]
            ),
            "updated_at",
            id="bulk-row",
        ),
        pytest.param(
            lambda u, p: u.marketplace.upsert_many([{"id": "z", "name": "x", "type": "skill", "cached_at": NAIVE}]),
            "cached_at",
            id="marketplace-row",
        ),
    ],
)
def test_naive_datetime_is_a_validation_error(db_url, write, field):
    assert_refused(db_url, write, field, "naive")


def test_naive_datetime_given_to_a_scan_is_a_validation_error(sqlite_url, tmp_path):
    before = seed(sqlite_url)
    make_skill(tmp_path / "tree" / "p")
    engine, uow = factory_for(sqlite_url)
    with pytest.raises(ValidationError, match="now: naive"):
        scan(uow, [tmp_path / "tree"], now=NAIVE)
    engine.dispose()
    assert_kept(before, sqlite_url, unchanged=True)


# --------------------------------------------------------------------------- command-line arguments


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(("artifacts", "--project", "a\x00b"), "error: --project: contains a NUL byte", id="--project"),
        pytest.param(("artifacts", "--tag", "a\x00b"), "error: --tag: contains a NUL byte", id="--tag"),
        pytest.param(("artifacts", "--search", "a\x00b"), "error: --search: contains a NUL byte", id="--search"),
        pytest.param(("forget", "a\x00b"), "error: PROJECT: contains a NUL byte", id="forget"),
        pytest.param(("scan", "/tmp/a\x00b"), "error: ROOT: contains a NUL byte", id="scan-root"),
        pytest.param(
            ("marketplace", "import", "/tmp/a\x00b"), "error: FILE: contains a NUL byte", id="marketplace-file"
        ),
        pytest.param(
            ("artifacts", "--project", "\udcff"),
            "error: --project: is not valid UTF-8 text",
            id="--project-undecodable",
        ),
        pytest.param(("artifacts", "--tag", "\udcff"), "error: --tag: is not valid UTF-8 text", id="--tag-undecodable"),
        pytest.param(
            ("artifacts", "--search", "x\udcff"), "error: --search: is not valid UTF-8 text", id="--search-undecodable"
        ),
        pytest.param(("forget", "/p/\udcff"), "error: PROJECT: is not valid UTF-8 text", id="forget-undecodable"),
    ],
)
def test_cli_argument_that_cannot_be_text_is_one_error_line(run, db_url, args, fragment):
    """NUL bytes cannot come from a real command line (only from a program calling us);
    undecodable bytes arrive as unpaired surrogates (``$'\\xff'`` in a shell).
    """
    before = seed(db_url)
    one_error_line(run("--db", db_url, *args), fragment)
    assert_kept(before, db_url, unchanged=True)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(
            ("artifacts", "--project", "/no/such/project"), "error: no cached project with id or path", id="--project"
        ),
        pytest.param(("forget", "nope"), "error: no cached project with id or path 'nope'", id="forget"),
        pytest.param(
            ("projects", "--older-than", "soon"), "error: duration: expected a number and a unit", id="--older-than"
        ),
        pytest.param(("marketplace", "purge", "--older-than", "7x"), "error: duration:", id="purge"),
    ],
)
def test_unknown_project_or_bad_duration_is_one_error_line(run, db_url, args, fragment):
    """Also: tests/e2e/test_cli_scan.py::test_bad_input_gives_exit_1_and_one_error_line."""
    before = seed(db_url)
    one_error_line(run("--db", db_url, *args), fragment)
    assert_kept(before, db_url, unchanged=True)


def test_database_argument_with_a_nul_byte_is_one_error_line(run, tmp_path):
    one_error_line(run("--db", str(tmp_path / "a\x00b.db"), "status"), "error: --db: contains a NUL byte")
    assert list(tmp_path.iterdir()) == []


def test_scan_root_with_undecodable_bytes_is_a_warning(run, sqlite_url, tmp_path):
    before = seed(sqlite_url)
    tree = tmp_path / "tree"
    weird = Path(os.fsdecode(bytes(tree) + b"/caf\xe9"))
    make_skill(weird)
    make_skill(tree / "good")
    as_root = succeeded(run("--db", sqlite_url, "scan", str(weird)))
    assert warnings_of(as_root) == [
        f"warning: {tree}/caf\\xe9: root not scanned: its path is not valid UTF-8 text (it could not be stored)"
    ]
    below = succeeded(run("--db", sqlite_url, "scan", str(tree)))
    assert "folder not scanned: its name is not valid UTF-8 text" in below.stderr
    assert "1 added" in below.stdout
    assert_kept(before, sqlite_url)


def test_scan_root_that_does_not_exist_is_a_warning(run, sqlite_url, tmp_path):
    before = seed(sqlite_url)
    result = succeeded(run("--db", sqlite_url, "scan", str(tmp_path / "nowhere"), "--json"))
    summary = json.loads(result.stdout)
    assert summary["projects_seen"] == 0
    assert summary["warnings"] == [{"path": str(tmp_path / "nowhere"), "message": "root not scanned: does not exist"}]
    assert_kept(before, sqlite_url, unchanged=True)


def test_scan_root_that_is_a_file_is_a_warning(run, sqlite_url, tmp_path):
    before = seed(sqlite_url)
    (tmp_path / "file.txt").write_text("x")
    result = succeeded(run("--db", sqlite_url, "scan", str(tmp_path / "file.txt")))
    assert warnings_of(result) == [f"warning: {tmp_path / 'file.txt'}: root not scanned: not a folder"]
    assert_kept(before, sqlite_url, unchanged=True)


def test_relative_scan_root_is_resolved_against_the_current_folder(run, sqlite_url, tmp_path, monkeypatch):
    before = seed(sqlite_url)
    make_skill(tmp_path / "tree" / "p")
    monkeypatch.chdir(tmp_path)
    succeeded(run("--db", sqlite_url, "scan", "tree"))
    paths = {p["path"] for p in json.loads(succeeded(run("--db", sqlite_url, "projects", "--json")).stdout)}
    assert str((tmp_path / "tree" / "p").resolve()) in paths
    assert all(os.path.isabs(p) for p in paths)
    assert_kept(before, sqlite_url)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("--db", "DB", "artifacts", "--type", "widget"), id="--type"),
        pytest.param(("--db", "DB", "projects", "--status", "gone"), id="--status"),
        pytest.param(("--db", "DB", "scan", ".", "--max-depth", "-1"), id="--max-depth"),
        pytest.param(("--synchronous", "sometimes", "--db", "DB", "status"), id="--synchronous"),
        pytest.param(("--env", "staging", "status"), id="--env"),
    ],
)
def test_invalid_choice_on_the_command_line_is_a_usage_error(run, sqlite_url, args):
    """Usage errors keep click's exit code 2 and its usage text (README)."""
    before = seed(sqlite_url)
    result = run(*(sqlite_url if a == "DB" else a for a in args))
    assert result.exit_code == 2 and "Invalid value" in result.stderr
    assert_kept(before, sqlite_url, unchanged=True)


# --------------------------------------------------------------------------- files a scan meets


def _malformed_yaml(bad: Path, outside: Path) -> None:
    make_skill(bad, content="---\nname: [unclosed\n---\n")


def _malformed_project_toml(bad: Path, outside: Path) -> None:
    make_skill(bad)
    (bad / ".claude" / ".skillmeat-project.toml").write_text("name = \n")


def _malformed_deployed_toml(bad: Path, outside: Path) -> None:
    make_skill(bad)
    (bad / ".claude" / ".skillmeat-deployed.toml").write_text("[[deployed]\nartifact_path = 1\n")


def _malformed_mcp_json(bad: Path, outside: Path) -> None:
    make_skill(bad)
    path = bad / ".claude" / "mcp" / "srv" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")


def _non_utf8(bad: Path, outside: Path) -> None:
    make_skill(bad, content="---\nname: caf\xe9\n---\n".encode("latin-1"))


def _binary(bad: Path, outside: Path) -> None:
    make_skill(bad, content=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(512))


def _symlink_loops(bad: Path, outside: Path) -> None:
    make_skill(bad)
    skills = bad / ".claude" / "skills"
    (skills / "loop").symlink_to(skills, target_is_directory=True)  # a skill folder that is its parent
    (skills / "s" / "again").symlink_to(skills / "s", target_is_directory=True)
    (bad.parent / "self").symlink_to(bad.parent, target_is_directory=True)  # the root inside itself
    (bad / "x").symlink_to(bad / "y")
    (bad / "y").symlink_to(bad / "x")


def _symlink_out_of_root(bad: Path, outside: Path) -> None:
    make_skill(bad)
    (bad / "escape").symlink_to(outside, target_is_directory=True)


def _symlink_out_of_project(bad: Path, outside: Path) -> None:
    make_skill(bad)
    (bad / ".claude" / "skills" / "stolen").symlink_to(
        outside / "secret" / ".claude" / "skills" / "s", target_is_directory=True
    )


def _type_folder_is_a_file(bad: Path, outside: Path) -> None:
    (bad / ".claude").mkdir(parents=True)
    (bad / ".claude" / "skills").write_text("not a folder")


def _undecodable_folder_name(bad: Path, outside: Path) -> None:
    make_skill(Path(os.fsdecode(bytes(bad) + b"-\xff")))
    make_skill(bad)


HOSTILE = {
    "malformed-yaml": (_malformed_yaml, "malformed frontmatter", 1),
    "malformed-project-toml": (_malformed_project_toml, "malformed TOML", 1),
    "malformed-deployed-toml": (_malformed_deployed_toml, "malformed TOML", 1),
    "malformed-mcp-json": (_malformed_mcp_json, "malformed JSON", 2),
    "non-utf8-file": (_non_utf8, "not UTF-8 text", 1),
    "binary-file": (_binary, "binary file", 1),
    "symlink-loops": (_symlink_loops, "symlink loop", 1),
    "symlink-out-of-root": (_symlink_out_of_root, None, 1),
    "symlink-out-of-project": (_symlink_out_of_project, "symlink resolves outside the project", 1),
    "type-folder-is-a-file": (_type_folder_is_a_file, "'skills' is not a folder", 0),
    "undecodable-folder-name": (_undecodable_folder_name, "not valid UTF-8 text", 1),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_scan_meets_a_bad_file_warns_and_goes_on(run, sqlite_url, tmp_path, case):
    before = seed(sqlite_url)
    build, fragment, bad_artifacts = HOSTILE[case]
    root, outside = tmp_path / "root", tmp_path / "outside"
    make_skill(outside / "secret", content="---\ndescription: secret\n---\n")
    make_skill(root / "a-good")
    build(root / "bad", outside)
    result = succeeded(run("--db", sqlite_url, "scan", str(root), "--json"))
    summary = json.loads(result.stdout)
    messages = [w["message"] for w in summary["warnings"]]
    if fragment is None:
        assert messages == []
    else:
        assert any(fragment in m for m in messages), messages
        assert all("\n" not in m for m in messages)
    assert (summary["projects_added"], summary["projects_error"]) == (2, 0)
    assert summary["artifacts_added"] == 1 + bad_artifacts
    stored = json.loads(succeeded(run("--db", sqlite_url, "projects", "--json")).stdout)
    assert not any(str(outside) in p["path"] for p in stored)
    assert "secret" not in succeeded(run("--db", sqlite_url, "artifacts", "--json")).stdout
    assert_kept(before, sqlite_url)


def test_unreadable_folder_is_a_warning(run, sqlite_url, tmp_path, monkeypatch):
    """Permission bits do not stop root, so the refusal is simulated at ``os.scandir``;
    tests/unit/test_scanner.py::test_unreadable_folder_is_warned_and_skipped_for_real does it
    with chmod 000 when not root.
    """
    before = seed(sqlite_url)
    root = tmp_path / "root"
    make_skill(root / "locked" / "inside")
    make_skill(root / "open")
    make_skill(root / "project-with-locked-claude")
    real_scandir = os.scandir
    refuse_scandir(monkeypatch, root / "locked", root / "project-with-locked-claude" / ".claude")
    summary = json.loads(succeeded(run("--db", sqlite_url, "scan", str(root), "--json")).stdout)
    assert sorted((w["path"], w["message"]) for w in summary["warnings"]) == sorted(
        [
            (str((root / "locked").resolve()), "folder not scanned: Permission denied"),
            (
                str((root / "project-with-locked-claude" / ".claude").resolve()),
                ".claude not readable: Permission denied",
            ),
        ]
    )
    assert (summary["projects_added"], summary["projects_error"]) == (1, 1)
    monkeypatch.setattr(os, "scandir", real_scandir)
    projects = {p["path"]: p for p in json.loads(succeeded(run("--db", sqlite_url, "projects", "--json")).stdout)}
    locked = projects[str((root / "project-with-locked-claude").resolve())]
    assert locked["status"] == "error" and "Permission denied" in locked["error_message"]
    assert_kept(before, sqlite_url)


def test_fifty_megabyte_skill_md_is_not_loaded_whole(sqlite_url, tmp_path, capsys):
    before = seed(sqlite_url)
    path = make_skill(
        tmp_path / "tree" / "big",
        name="big",
        content="---\nname: big\nversion: 2.5\ntags: [large]\n---\n" + "text\n" * 70_000,
    )
    with open(path, "r+b") as handle:
        handle.truncate(50 * 1024 * 1024)  # the rest is a sparse hole of zero bytes
    engine, uow = factory_for(sqlite_url)
    started = time.perf_counter()
    tracemalloc.start()
    try:
        summary = scan(uow, [tmp_path / "tree"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\n50 MB SKILL.md: scanned in {elapsed:.2f} s, peak Python memory {peak / 1e6:.1f} MB")
    assert (summary.artifacts_added, summary.warnings) == (1, [])
    with uow(read_only=True) as u:
        (artifact,) = u.artifacts.search("big")
        assert artifact.deployed_version == "2.5"
        assert [a.id for a in u.metadata.artifacts_with_tag("large")] == [artifact.id]
    engine.dispose()
    assert peak < 16 * 1024 * 1024  # loose: a 50 MB read would show
    assert_kept(before, sqlite_url)


@pytest.mark.parametrize("what", ["folder", "claude"])
def test_folder_removed_mid_scan(sqlite_url, tmp_path, monkeypatch, what):
    """Removed between discovery and reading: a warning; a new project is not stored, a
    cached one is marked stale with its artifacts kept (not emptied), the others go on.
    """
    before = seed(sqlite_url)
    tree = tmp_path / "tree"
    for name in ("a", "b", "c"):
        make_skill(tree / name)
    engine, uow = factory_for(sqlite_url)
    scan(uow, [tree])
    make_skill(tree / "b", name="second")  # b changed: it will be re-read
    make_skill(tree / "d")  # a new project
    real = reader_module.read_project

    def vanish_first(path: str) -> Any:
        if Path(path).name in ("b", "d"):
            shutil.rmtree(path if what == "folder" else Path(path) / ".claude")
        return real(path)

    monkeypatch.setattr(reader_module, "read_project", vanish_first)
    summary = scan(uow, [tree])
    assert sorted((Path(w.path).name, w.message) for w in summary.warnings) == [
        ("b", "project folder vanished during the scan; not read"),
        ("d", "project folder vanished during the scan; not read"),
    ]
    assert (summary.projects_stale, summary.projects_added, summary.projects_error) == (1, 0, 0)
    with uow(read_only=True) as u:
        b = u.projects.get_by_path(str((tree / "b").resolve()))
        assert b.status == "stale" and len(u.artifacts.list_for_project(b.id)) == 1
        assert u.projects.get_by_path(str((tree / "d").resolve())) is None
        assert u.projects.count(status="active") == 2 + 2  # a, c and the two seeded
    engine.dispose()
    assert_kept(before, sqlite_url)


def test_tag_too_long_to_index_is_left_out_of_the_tag_list_with_a_warning(db_url, tmp_path):
    """A 6 kB tag (PostgreSQL's btree could not hold it): the artifact is stored, the tag
    stays in the frontmatter document but not in the indexed tag list."""
    before = seed(db_url)
    tree = tmp_path / "tree"
    huge = secrets.token_hex(3000)
    make_skill(tree / "b-huge", content=f"---\ndescription: {huge}\ntags: [small, {huge}]\n---\n")
    engine, uow = factory_for(db_url)
    summary = scan(uow, [tree])
    assert (summary.projects_added, summary.projects_error) == (1, 0)
    (warning,) = summary.warnings
    assert warning.message == "1 tags longer than 255 bytes left out of the tag list"
    with uow(read_only=True) as u:
        project = u.projects.get_by_path(str((tree / "b-huge").resolve()))
        (artifact,) = u.artifacts.list_for_project(project.id)
        meta = u.metadata.get(artifact.id)
        assert meta.tags == ["small"] and meta.data["tags"] == ["small", huge] and meta.description == huge
        assert [a.id for a in u.metadata.artifacts_with_tag("small")] == [artifact.id]
    engine.dispose()
    assert_kept(before, db_url)


def test_project_whose_data_cannot_be_stored_is_an_error_and_the_scan_goes_on(sqlite_url, tmp_path):
    """A description over a lowered SQLITE_LIMIT_LENGTH: ValueTooLargeError inside, the
    project recorded with status error, a warning, and every other project stored.
    """
    before = seed(sqlite_url)
    tree = tmp_path / "tree"
    make_skill(tree / "a-good")
    make_skill(tree / "b-huge", content=f"---\ndescription: {secrets.token_hex(3000)}\n---\n")
    make_skill(tree / "c-good")
    engine, uow = factory_for(sqlite_url)

    @event.listens_for(engine, "connect")
    def _limit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 5000)

    summary = scan(uow, [tree])
    assert (summary.projects_added, summary.projects_error) == (2, 1)
    (warning,) = summary.warnings
    assert warning.path == str((tree / "b-huge").resolve())
    assert warning.message.startswith("cannot store project: value too large for the database")
    with uow(read_only=True) as u:
        bad = u.projects.get_by_path(warning.path)
        assert bad.status == "error" and bad.error_message == warning.message
        assert u.artifacts.count(project_id=bad.id) == 0
    engine.dispose()
    assert_kept(before, sqlite_url)


# --------------------------------------------------------------------------- marketplace files


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param("{not json", "is not valid JSON: Expecting property name", id="malformed-json"),
        pytest.param(b"\xff\xfe[]", "is not UTF-8 text", id="non-utf8"),
        pytest.param(b"\x00\x01\x02binary", "is not valid JSON", id="binary"),
        pytest.param('{"id": "x"}', "expected a JSON list", id="not-a-list"),
        pytest.param('[{"id": "x", "type": "skill"}]', "entry 0 (x) lacks name", id="missing-name"),
        pytest.param('[{"id": "x", "name": "n", "type": "plugin"}]', "type: must be one of", id="invalid-type"),
        pytest.param('[{"id": "x", "name": "n\\u0000", "type": "skill"}]', "contains a NUL byte", id="nul-in-json"),
        pytest.param(
            '[{"id": "x", "name": "n\\ud800", "type": "skill"}]', "unpaired surrogate", id="surrogate-in-json"
        ),
        pytest.param(None, "cannot read", id="missing-file"),
        pytest.param("folder", "cannot read", id="a-folder"),
    ],
)
def test_bad_marketplace_file_is_one_error_line(run, db_url, tmp_path, content, fragment):
    before = seed(db_url)
    path = tmp_path / "market.json"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    one_error_line(run("--db", db_url, "marketplace", "import", str(path)), fragment)
    assert_kept(before, db_url, unchanged=True)


def test_bad_marketplace_file_through_the_api_is_an_input_error(sqlite_url, tmp_path):
    before = seed(sqlite_url)
    (tmp_path / "m.json").write_text("[1, 2")
    engine, uow = factory_for(sqlite_url)
    with pytest.raises(InputError, match="not valid JSON"):
        services.import_marketplace(uow, tmp_path / "m.json")
    engine.dispose()
    assert_kept(before, sqlite_url, unchanged=True)


# --------------------------------------------------------------------------- the database itself


def test_database_path_that_is_a_folder_is_one_error_line(run, tmp_path):
    (tmp_path / "db").mkdir()
    one_error_line(run("--db", str(tmp_path / "db"), "status"), "it is a folder")
    assert list((tmp_path / "db").iterdir()) == []


def test_database_folder_that_is_a_file_is_one_error_line(run, tmp_path):
    """The portable stand-in for a folder we may not write: a file where the folder should be."""
    (tmp_path / "notes.txt").write_text("mine")
    one_error_line(run("--db", str(tmp_path / "notes.txt" / "cache.db"), "scan", str(tmp_path)), "is not a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(not PERMISSIONS_APPLY, reason="permission bits do not stop this user (root)")
def test_database_in_a_read_only_folder(run, tmp_path, sqlite_url):
    folder = tmp_path / "ro"
    folder.mkdir()
    shutil.copyfile(sqlite_file(sqlite_url), folder / "cache.db")
    url = f"sqlite:///{folder / 'cache.db'}"
    before = seed(url)
    folder.chmod(0o500)
    try:
        one_error_line(run("--db", str(folder / "new.db"), "status"), "cannot create database", "Permission denied")
        for args in (("projects",), ("scan", str(tmp_path))):  # SQLite cannot create the -wal/-shm files
            one_error_line(run("--db", url, *args), "error: database is read-only (SQLITE_READONLY")
    finally:
        folder.chmod(0o700)
    assert_kept(before, url, unchanged=True)


def _read_only_url(url: str) -> str:
    """The same file as a SQLite URI opened with ``mode=ro`` (what a read-only file or
    mount gives, whoever runs)."""
    return f"sqlite:///file:{sqlite_file(url)}?mode=ro&uri=true"


def test_read_only_database_file_through_the_api(sqlite_url):
    before = seed(sqlite_url)
    engine, uow = factory_for(_read_only_url(sqlite_url))
    with uow(read_only=True) as u:
        assert u.projects.count() == 2
    with pytest.raises(DatabaseReadOnlyError, match="SQLITE_READONLY") as info, uow() as u:
        u.projects.add(Project(name="n", path="/n"))
    engine.dispose()
    assert "\n" not in str(info.value)
    assert_kept(before, sqlite_url, unchanged=True)


def test_read_only_database_file_through_the_cli(run, sqlite_url, tmp_path):
    before = seed(sqlite_url)
    make_skill(tmp_path / "tree" / "p")
    url = _read_only_url(sqlite_url)
    assert "seeded" in succeeded(run("--db", url, "projects")).stdout  # reading works
    one_error_line(run("--db", url, "scan", str(tmp_path / "tree")), "error: database is read-only (SQLITE_READONLY")
    assert_kept(before, sqlite_url, unchanged=True)


def test_read_only_uri_of_a_missing_file_is_an_error_and_creates_nothing(run, tmp_path):
    missing = tmp_path / "missing.db"
    url = f"sqlite:///file:{missing}?mode=ro&uri=true"
    engine, uow = factory_for(url)
    with pytest.raises(DatabaseUnavailableError, match="SQLITE_CANTOPEN"), uow(read_only=True) as u:
        u.projects.count()
    engine.dispose()
    one_error_line(run("--db", url, "projects"), "error: cannot open the database file (SQLITE_CANTOPEN")
    assert not missing.exists()
    with pytest.raises(CacheError, match="needs a database like file:"):
        create_engine_for_url(f"sqlite:///{missing}?uri=true")


def test_file_that_is_not_a_database_through_the_api(tmp_path):
    """The CLI case: tests/e2e/test_cli.py::test_a_file_that_is_not_a_database_is_an_error_and_is_not_modified."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    before = path.read_bytes()
    engine, uow = factory_for(str(path))
    with pytest.raises(DatabaseCorruptError, match="SQLITE_NOTADB"), uow() as u:
        u.projects.count()
    engine.dispose()
    assert path.read_bytes() == before


def _truncated_copy(url: str, tmp_path: Path) -> Path:
    engine, uow = factory_for(url)
    with uow() as u:
        project = u.projects.get_by_path("/seed/alpha")
        u.artifacts.upsert_many(
            [{"project_id": project.id, "type": "skill", "name": f"a{i:04}", "source": "x" * 300} for i in range(800)]
        )
    engine.dispose()
    with sqlite3.connect(sqlite_file(url)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = tmp_path / "truncated.db"
    shutil.copyfile(sqlite_file(url), copy)
    os.truncate(copy, copy.stat().st_size // 2)
    return copy


@pytest.mark.parametrize(
    "command", [("projects",), ("artifacts", "--json"), ("scan", "TREE"), ("forget", "/seed/alpha")]
)
def test_truncated_database_is_one_error_line_and_left_as_it_is(run, sqlite_url, tmp_path, command):
    seed(sqlite_url)
    copy = _truncated_copy(sqlite_url, tmp_path)
    original = copy.read_bytes()
    make_skill(tmp_path / "tree" / "p")
    args = [str(tmp_path / "tree") if a == "TREE" else a for a in command]
    one_error_line(run("--db", str(copy), *args), "error: database file is damaged or not a database (SQLITE_CORRUPT")
    assert copy.read_bytes() == original


def test_truncated_database_through_the_api(sqlite_url, tmp_path):
    seed(sqlite_url)
    copy = _truncated_copy(sqlite_url, tmp_path)
    engine, uow = factory_for(str(copy))
    with pytest.raises(DatabaseCorruptError), uow(read_only=True) as u:
        u.artifacts.search("")
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def newer_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A seeded database whose revision was written by a newer version of the code."""
    url = str(tmp_path / "newer.db") if request.param == "sqlite" else request.getfixturevalue("fresh_pg_url")
    migrate(url)
    yield url


def test_database_at_a_newer_revision_is_refused_and_kept(run, newer_db, tmp_path):
    """The status command: tests/e2e/test_cli.py::test_a_database_from_newer_code_is_refused_and_kept."""
    url = to_url(newer_db)
    before = seed(url)
    engine = create_engine_for_url(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    make_skill(tmp_path / "tree" / "p")
    one_error_line(run("--db", url, "scan", str(tmp_path / "tree")), "at revision 9999", "newer skillmeat-cache")
    one_error_line(run("--db", url, "migrate"), "newer skillmeat-cache")
    one_error_line(run("--db", url, "downgrade", "0001"), "newer skillmeat-cache")
    engine, uow = factory_for(url)
    with pytest.raises(SchemaVersionError, match="upgrade the package"), uow() as u:
        u.projects.count()
    engine.dispose()
    assert_kept(before, url, unchanged=True)


def _full_after(pages: int) -> Callable[[Any], None]:
    """A connect listener: the database may grow by ``pages`` pages, then it is full."""

    def install(engine: Any) -> None:
        @event.listens_for(engine, "connect")
        def _max_pages(dbapi_connection: Any, _record: Any) -> None:
            count = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count = {count + pages}")

    return install


def test_full_disk_through_the_api(sqlite_url):
    before = seed(sqlite_url)
    engine, uow = factory_for(sqlite_url)
    _full_after(3)(engine)
    with uow() as u:
        project = u.projects.get_by_path("/seed/alpha")
    with pytest.raises(DatabaseFullError, match="SQLITE_FULL") as info, uow() as u:
        for i in range(500):
            u.artifacts.add(Artifact(project_id=project.id, name=f"n{i:03}" + "x" * 200, type="skill"))
    assert info.value.__cause__ is not None  # the driver error stays chained
    with pytest.raises(DatabaseFullError), uow() as u:
        u.artifacts.upsert_many([{"project_id": project.id, "type": "agent", "name": f"b{i}" * 50} for i in range(500)])
    with uow() as u:  # a small write still fits: the cache stays usable
        u.metadata.set_value("after", "full")
    engine.dispose()
    assert_kept(before, sqlite_url)


def test_full_disk_through_the_cli_scan(run, sqlite_url, tmp_path, monkeypatch):
    from benchmarks.corpus import generate

    before = seed(sqlite_url)
    generate(tmp_path / "tree", projects=20, artifacts=15, seed=5)
    from skillmeat_cache import engine as engine_module

    real = engine_module.create_engine_for_url

    def small_disk(url: str, **kwargs: Any) -> Any:
        engine = real(url, **kwargs)
        _full_after(8)(engine)
        return engine

    monkeypatch.setattr(engine_module, "create_engine_for_url", small_disk)
    one_error_line(
        run("--db", sqlite_url, "scan", str(tmp_path / "tree")), "error: database or disk is full (SQLITE_FULL)"
    )
    assert_kept(before, sqlite_url)
    monkeypatch.setattr(engine_module, "create_engine_for_url", real)
    done = json.loads(succeeded(run("--db", sqlite_url, "scan", str(tmp_path / "tree"), "--json")).stdout)
    assert done["projects_seen"] == 20  # space again: the next scan completes
    assert_kept(before, sqlite_url)


# --------------------------------------------------------------------------- database URLs and servers


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        pytest.param("postgresql://u:pw-secret@host:notaport/db", "not a valid database URL", id="bad-port"),
        pytest.param("postgresql://u:pw-secret@[::1/db", "not a valid database URL", id="bad-host"),
        pytest.param("postgresql://u:pw@secret@host/db", "more than one '@'", id="unescaped-at"),
        pytest.param("mysql://u:pw-secret@host/db", "unsupported database mysql://u:***@host/db", id="unsupported"),
    ],
)
def test_malformed_database_url_is_one_error_line_without_the_password(run, url, fragment):
    line = one_error_line(run("--db", url, "status"), fragment)
    assert "secret" not in line


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postgresql://u:pw-secret@host:notaport/db", "not a valid database URL"),
        ("postgresql://u:pw@secret@host/db", "more than one '@'"),
    ],
    ids=["bad-port", "unescaped-at"],
)
def test_malformed_database_url_through_the_api_is_a_cache_error_without_the_password(url, fragment):
    for make in (create_engine_for_url, lambda u: build_engine(database_url=u)):
        with pytest.raises(CacheError, match=fragment) as info:
            make(url)
        assert "secret" not in str(info.value)


@pytest.mark.postgres
def test_postgres_unreachable_is_a_database_unavailable_error(db_url_pg):
    """The CLI line: tests/e2e/test_cli.py::test_password_never_appears_in_errors and
    tests/integration/test_security.py::test_password_never_appears_in_output_logs_or_errors.
    """
    before = seed(db_url_pg)
    engine, uow = factory_for("postgresql://alice:s3cr3t-pw@127.0.0.1:1/nowhere")
    with pytest.raises(DatabaseUnavailableError, match="cannot connect to the database") as info, uow() as u:
        u.projects.count()
    engine.dispose()
    assert "s3cr3t-pw" not in str(info.value)
    assert_kept(before, db_url_pg, unchanged=True)


def _terminate(application_name: str) -> int:
    import psycopg
    from conftest import PG_ADMIN_URL

    conninfo = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_until_gone(application_name: str) -> None:
    """Until the terminated backend has closed its connection (it exits asynchronously)."""
    import psycopg
    from conftest import PG_ADMIN_URL

    conninfo = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    deadline = time.monotonic() + 10
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while time.monotonic() < deadline:
            sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            if conn.execute(sql, (application_name,)).fetchone()[0] == 0:
                return
            time.sleep(0.01)
    raise AssertionError("the terminated backend did not go away")


@pytest.mark.postgres
def test_postgres_restarted_between_and_during_units_of_work(db_url_pg):
    """Between two units of work the pool sees the dead connection (its socket turned
    readable: the server's goodbye) and replaces it, so the next one works; a connection
    killed inside a unit of work gives DatabaseUnavailableError, its writes are rolled
    back, and the next one works again.
    """
    before = seed(db_url_pg)
    name = f"victim_{secrets.token_hex(4)}"
    engine, uow = factory_for(f"{db_url_pg}?application_name={name}")
    with uow() as u:
        assert u.projects.count() == 2
    assert _terminate(name) == 1
    _wait_until_gone(name)
    with uow() as u:  # the liveness check at checkout: no error at all
        u.projects.add(Project(name="after-restart", path="/after"))
    with pytest.raises(DatabaseUnavailableError, match="57P01"), uow() as u:
        u.projects.add(Project(name="lost", path="/lost"))
        u.session.flush()
        assert _terminate(name) == 1
        u.projects.count()
    with uow(read_only=True) as u:
        assert u.projects.get_by_path("/after") is not None and u.projects.get_by_path("/lost") is None
    engine.dispose()
    assert_kept(before, db_url_pg)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (("sqlite", 13), DatabaseFullError),
        (("sqlite", 11), DatabaseCorruptError),
        (("sqlite", 26), DatabaseCorruptError),
        (("sqlite", 8), DatabaseReadOnlyError),
        (("sqlite", 1032), DatabaseReadOnlyError),  # SQLITE_READONLY_DBMOVED
        (("sqlite", 14), DatabaseUnavailableError),
        (("sqlite", 18), ValueTooLargeError),
        (("pg", "53100"), DatabaseFullError),
        (("pg", "25006"), DatabaseReadOnlyError),
        (("pg", "54000"), ValueTooLargeError),
        (("pg", "57P01"), DatabaseUnavailableError),
        (("pg", "08006"), DatabaseUnavailableError),
        (("pg", "28P01"), DatabaseUnavailableError),
        (("pg", "3D000"), DatabaseUnavailableError),
        (("pg", "42P01"), DatabaseError),
    ],
)
def test_driver_codes_map_to_specific_errors(code, expected):
    """Codes that cannot be provoked on demand here (a full PostgreSQL disk, a standby)."""
    from sqlalchemy import exc as sa_exc

    from skillmeat_cache.db_errors import map_db_error

    class Orig(Exception):
        pass

    orig = Orig("driver message\nsecond line")
    if code[0] == "sqlite":
        orig.sqlite_errorcode = code[1]  # type: ignore[attr-defined]
        orig.sqlite_errorname = f"CODE_{code[1]}"  # type: ignore[attr-defined]
    else:
        orig.sqlstate = code[1]  # type: ignore[attr-defined]
    mapped = map_db_error(sa_exc.DatabaseError("SELECT 1", {}, orig))
    assert type(mapped) is expected
    assert "\n" not in str(mapped)


@pytest.mark.parametrize(
    "args",
    [("migrate", "--to", "nonsense"), ("downgrade", "nonsense")],
    ids=["migrate-to", "downgrade"],
)
def test_unknown_target_revision_is_one_error_line(run, sqlite_url, args):
    before = seed(sqlite_url)
    one_error_line(
        run("--db", sqlite_url, *args), "error: migration refused: Can't locate revision identified by 'nonsense'"
    )
    assert_kept(before, sqlite_url, unchanged=True)


@pytest.mark.postgres
@pytest.mark.parametrize("read_only", [False, True])
def test_postgres_pool_pings_only_connections_idle_for_long(db_url_pg, monkeypatch, mocker, read_only):
    """Back-to-back units of work cost no ping round trip; a connection idle longer than
    PING_AFTER_IDLE_SECONDS is pinged, and one that fails the ping is replaced unseen
    (read-only units: on the read engine's pool, which has the same check)."""
    from skillmeat_cache import connections as connections_module

    engine = create_engine_for_url(db_url_pg, busy_timeout=2)
    container = container_on(engine)
    bind = container.read_engine() if read_only else engine
    assert (bind is engine) is not read_only

    def uow():
        return container.unit_of_work(read_only=read_only)

    ping = mocker.spy(bind.dialect, "do_ping")
    for _ in range(5):
        with uow() as u:
            u.projects.count()
    assert ping.call_count == 0
    monkeypatch.setattr(connections_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    with uow() as u:
        u.projects.count()
    assert ping.call_count == 1
    ping.side_effect = [OSError("no answer")]  # the next ping fails: that connection is dropped
    with uow() as u:
        assert u.projects.count() == 0
        assert u.session.get_bind() is bind
    assert ping.call_count == 2
    engine.dispose()


@pytest.mark.postgres
def test_without_the_liveness_check_a_dead_pooled_connection_surfaces(db_url_pg):
    """The control for the test above: with pool_pre_ping=False given explicitly (no
    check at all) the first unit of work after a terminated backend fails."""
    name = f"victim_{secrets.token_hex(4)}"
    engine, uow = factory_for(f"{db_url_pg}?application_name={name}", pool_pre_ping=False)
    with uow() as u:
        u.projects.count()
    assert _terminate(name) == 1
    _wait_until_gone(name)
    with pytest.raises(DatabaseUnavailableError), uow() as u:
        u.projects.count()
    with uow() as u:  # the pool was invalidated on the disconnect: the next one works
        assert u.projects.count() == 0
    engine.dispose()

"""The command line's edges: --version, an empty --db, durations that cannot be one, a
HOME that cannot hold the cache, foreign SQLite files, read-only folders, plurals."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import succeeded, without_dac_override, write_file


def one_error_line(result, *fragments: str):
    """Exit 1, nothing on stdout, exactly one ``error:`` line on stderr holding every fragment."""
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result


def test_version_prints_the_package_version(run):
    result = succeeded(run("--version"))
    assert result.stdout == f"skillmeat-cache {version('skillmeat-cache')}\n"


def test_empty_db_is_a_usage_error(run, tmp_path):
    result = run("--db", "", "status")
    assert result.exit_code == 2 and "--db" in result.stderr
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(
    ("duration", "message"),
    [
        ("99999999999d", "too long"),  # timedelta overflow
        ("999999999d", "too long"),  # a timedelta, but now minus it is before year 1
        ("²d", "expected a number and a unit"),  # str.isdigit() accepts it; only ASCII digits do
        ("٣d", "expected a number and a unit"),  # Arabic-Indic three: int() would read it as 3
    ],
    ids=["overflow", "before-year-1", "superscript-two", "arabic-indic-digit"],
)
def test_duration_that_cannot_be_one_is_one_error_line(run, duration, message):
    one_error_line(run("projects", "--older-than", duration), "error: duration: ", message)
    one_error_line(run("marketplace", "purge", "--older-than", duration), "error: duration: ", message)


def test_duration_through_a_real_process_has_no_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLMEAT_CACHE_")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "skillmeat_cache", "projects", "--older-than", "99999999999d"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: duration: ") and proc.stderr.count("\n") == 1


def test_home_that_cannot_hold_the_cache_folder_is_one_error_line(run, tmp_path):
    home = tmp_path / "home"
    home.write_text("HOME is a regular file here\n")
    result = one_error_line(
        run("status"), f"cannot create the cache folder {home / '.skillmeat' / 'cache'}", "--db", "SKILLMEAT_CACHE_URL"
    )
    assert "Not a directory" in result.stderr
    assert home.read_text() == "HOME is a regular file here\n"


@pytest.mark.postgres
@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_status_of_an_unmigrated_postgres_database_is_one_error_line(run, fresh_pg_url, as_json):
    result = run("--db", fresh_pg_url, "status", *(["--json"] if as_json else []))
    one_error_line(result, "no cache schema", "skillmeat-cache migrate")


LONG = "Reviews pull requests for style, naming, tests and the docs that go with them, then says so"


def _tree(root: Path) -> None:
    """Two projects whose artifacts the cache would otherwise list in another order."""
    for project in ("b-proj", "a-proj"):
        claude = root / project / ".claude"
        write_file(
            claude / "skills" / "zeta" / "SKILL.md", "---\nname: zeta\ndescription: Z skill\ntags: [z, last]\n---\n"
        )
        write_file(claude / "skills" / "alpha" / "SKILL.md", f"---\nname: alpha\ndescription: {LONG}\n---\n")
        write_file(claude / "agents" / "reviewer.md", "---\nname: reviewer\ntags: [review]\n---\n")


def test_artifacts_show_path_description_and_tags_in_project_type_name_order(run, tmp_path):
    _tree(tmp_path / "tree")
    db = str(tmp_path / "cache.db")
    succeeded(run("--db", db, "scan", str(tmp_path / "tree")))
    listed = json.loads(succeeded(run("--db", db, "artifacts", "--json")).stdout)
    paths = {p["id"]: p["path"] for p in json.loads(run("--db", db, "projects", "--json").stdout)}
    keys = [(Path(paths[a["project_id"]]).name, a["type"], a["name"]) for a in listed]
    assert keys == [
        (p, t, n)
        for p in ("a-proj", "b-proj")
        for t, n in (("agent", "reviewer"), ("skill", "alpha"), ("skill", "zeta"))
    ]
    reviewer = next(a for a in listed if a["name"] == "reviewer")
    assert (reviewer["path"], reviewer["tags"]) == (".claude/agents/reviewer.md", ["review"])
    assert next(a for a in listed if a["name"] == "zeta")["description"] == "Z skill"
    table = succeeded(run("--db", db, "artifacts")).stdout
    lines = table.splitlines()
    assert lines[0].strip() == "6 artifacts"
    header = next(line for line in lines if "type" in line and "name" in line)
    assert [h.strip() for h in header.strip("┃ ").split("┃")][:5] == ["type", "name", "path", "description", "tags"]
    rows = [line for line in lines if "│" in line and ("alpha" in line or "zeta" in line or "reviewer" in line)]
    assert ["reviewer" in r for r in rows] == [True, False, False, True, False, False]
    zeta = next(r for r in rows if "zeta" in r)
    assert "Z skill" in zeta and "z, last" in zeta
    alpha = next(r for r in rows if "alpha" in r)
    assert "Reviews pull requests" in alpha and "…" in table and LONG not in table  # cut, though rich may wrap it
    one = succeeded(run("--db", db, "artifacts", "--type", "agent", "--project", paths[listed[0]["project_id"]]))
    assert one.stdout.splitlines()[0].strip() == "1 artifact"


def test_counts_are_singular_or_plural_and_scan_warnings_go_to_stderr(run, tmp_path):
    db = str(tmp_path / "cache.db")
    write_file(tmp_path / "tree" / "p" / ".claude" / "skills" / "s" / "SKILL.md", "---\nname: s\n---\n")
    scan = succeeded(run("--db", db, "scan", str(tmp_path / "tree"), str(tmp_path / "missing")))
    assert scan.stderr == f"warning: {tmp_path / 'missing'}: root not scanned: does not exist\n"
    assert "warning:" not in scan.stdout and "1 warning, " in scan.stdout and ", 0 errors" in scan.stdout
    two = succeeded(run("--db", db, "scan", str(tmp_path / "nowhere"), str(tmp_path / "missing")))
    assert "2 warnings, " in two.stdout and two.stderr.count("warning: ") == 2
    assert "1 warning, " not in two.stdout
    assert succeeded(run("--db", db, "projects")).stdout.splitlines()[0].strip() == "1 project"
    assert succeeded(run("--db", db, "artifacts")).stdout.splitlines()[0].strip() == "1 artifact"
    assert succeeded(run("--db", db, "projects", "--status", "error")).stdout.splitlines()[0].strip() == "0 projects"


def _foreign_file(path: Path, tables: tuple[str, ...], revision: str | None) -> None:
    """A SQLite file of another program, in rollback-journal mode (journal_mode=delete)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        for table in tables:
            conn.execute(f"CREATE TABLE {table} (id TEXT PRIMARY KEY, name TEXT)")
            conn.execute(f"INSERT INTO {table} VALUES ('1', 'theirs')")
        if revision is not None:
            conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
            conn.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
        conn.commit()
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    finally:
        conn.close()
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))


def _fingerprint(path: Path) -> tuple[bytes, int, list[str]]:
    siblings = sorted(p.name for p in path.parent.iterdir())
    return path.read_bytes(), path.stat().st_mtime_ns, siblings


def _journal_mode(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()


SKILLMEAT_TABLES = ("projects", "artifacts", "collections", "collection_artifacts", "marketplace_sources")


@pytest.mark.parametrize(
    ("tables", "revision", "default", "fragments"),
    [
        (SKILLMEAT_TABLES, "a1b2c3d4e5f6", True, ("is SkillMeat's own cache", "collections")),
        (SKILLMEAT_TABLES, None, True, ("is SkillMeat's own cache",)),
        (("projects", "artifacts"), "a1b2c3d4e5f6", True, ("is SkillMeat's own cache", "a1b2c3d4e5f6")),
        (SKILLMEAT_TABLES, "a1b2c3d4e5f6", False, ("looks like SkillMeat's own cache",)),
        (("notes", "todo"), None, False, ("holds another program's tables (notes, todo)",)),
        (("projects", "artifacts"), None, False, ("holds another program's tables (artifacts, projects)",)),
    ],
    ids=[
        "skillmeat-default",
        "skillmeat-no-alembic",
        "unknown-revision-default",
        "skillmeat-elsewhere",
        "other",
        "our-names",
    ],
)
def test_a_foreign_sqlite_file_is_never_modified(run, tmp_path, tables, revision, default, fragments):
    path = tmp_path / "home" / ".skillmeat" / "cache" / "cache.db" if default else tmp_path / "theirs.db"
    _foreign_file(path, tables, revision)
    (tmp_path / "tree").mkdir()
    before = _fingerprint(path)
    db = () if default else ("--db", str(path))
    for args in (
        ("status",),
        ("status", "--json"),
        ("projects",),
        ("artifacts",),
        ("scan", str(tmp_path / "tree")),
        ("migrate",),
        ("downgrade", "base"),
    ):
        result = one_error_line(run(*db, *args), f"error: {path} ", "not a skillmeat-cache database", *fragments)
        assert "--db PATH" in result.stderr and "SKILLMEAT_CACHE_URL" in result.stderr
        assert _fingerprint(path) == before, args
    assert _journal_mode(path) == "delete"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert names == set(tables) | ({"alembic_version"} if revision else set())


def test_our_own_files_are_not_taken_for_foreign_ones(run, tmp_path):
    path = tmp_path / "ours.db"
    succeeded(run("--db", str(path), "migrate"))
    succeeded(run("--db", str(path), "downgrade", "base"))  # only an empty alembic_version left
    succeeded(run("--db", str(path), "status"))  # migrated again on first use
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    one_error_line(run("--db", str(path), "status"), "newer skillmeat-cache")  # ours, from newer code
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    succeeded(run("--db", str(empty), "status"))


def test_read_only_url_on_a_read_only_folder_says_what_to_use(run, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "cache.db"
    tree = tmp_path / "tree"
    write_file(tree / "p" / ".claude" / "skills" / "s" / "SKILL.md", "---\nname: s\n---\n")
    succeeded(run("--db", str(path), "scan", str(tree)))  # a real cache, in WAL mode, closed cleanly
    assert sorted(p.name for p in folder.iterdir()) == ["cache.db"]
    before = path.read_bytes()
    prefix = without_dac_override()
    path.chmod(0o444)
    folder.chmod(0o555)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLMEAT_CACHE_")}
    env["HOME"] = str(tmp_path / "home")

    def cli(url: str) -> subprocess.CompletedProcess[str]:
        command = [*prefix, sys.executable, "-m", "skillmeat_cache", "--db", url, "projects", "--json"]
        return subprocess.run(command, env=env, capture_output=True, text=True)

    try:
        probe = subprocess.run([*prefix, "touch", str(folder / "probe")], capture_output=True)
        if probe.returncode == 0:
            pytest.skip("the folder stayed writable for this user")
        read_only = cli(f"sqlite:///file:{path}?mode=ro&uri=true")
        immutable = cli(f"sqlite:///file:{path}?immutable=1&uri=true")
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)
    if read_only.returncode == 0:  # a SQLite that can read it as it is: fine too
        assert [p["name"] for p in json.loads(read_only.stdout)] == ["p"]
    else:
        assert read_only.returncode == 1 and read_only.stdout == "" and "Traceback" not in read_only.stderr
        assert read_only.stderr.count("\n") == 1 and read_only.stderr.startswith("error: database is read-only")
        assert "immutable=1&uri=true" in read_only.stderr
    # what the line proposes works
    assert immutable.returncode == 0, immutable.stderr
    assert [p["name"] for p in json.loads(immutable.stdout)] == ["p"]
    assert path.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["cache.db"]


def test_a_duration_of_thousands_of_digits_is_one_error_line(run):
    result = run("projects", "--older-than", "9" * 5000 + "d")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "is too long" in result.output and len(result.output) < 200


def test_purge_and_list_count_entries_in_the_singular_and_plural(run, tmp_path):
    import json

    file = tmp_path / "market.json"
    file.write_text(json.dumps([{"id": "e1", "name": "one", "type": "skill", "version": "1.0"}]))
    db = str(tmp_path / "c.db")
    assert "imported 1 marketplace entry from" in run("--db", db, "marketplace", "import", str(file)).output
    assert run("--db", db, "marketplace", "list").output.splitlines()[0].strip() == "1 marketplace entry"
    assert run("--db", db, "marketplace", "purge", "--older-than", "1d").output == "purged 0 marketplace entries\n"

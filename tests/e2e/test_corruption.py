"""A damaged cache, for real: pages overwritten with garbage in the middle of a file that
holds data (after a checkpoint), a truncated file, a file of random bytes. The default
cache heals itself; a file named explicitly is left alone and its error names
``repair``; ``check`` finds damage and broken rules; ``repair`` keeps what can be read."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from benchmarks.api import free_port
from benchmarks.corpus import generate, marketplace_entries
from benchmarks.server_faults import damage_pages
from skillmeat_cache import HEAD_REVISION
from skillmeat_cache.api.schemas import StatusOut
from skillmeat_cache.cli_repair import run_healing
from skillmeat_cache.engine import create_engine_for_url
from skillmeat_cache.integrity import CHECKS
from tests.conftest import server_process, succeeded
from tests.e2e.test_serve import API, Events, _env

ASIDE = re.compile(r"cache\.db\.(corrupt|repaired)-(\d{8}T\d{6}Z)(-\d+)?$")


@dataclass
class Cache:
    """A default cache filled through the CLI: projects, artifacts with upstream versions,
    marketplace entries, the remembered root; and what it held."""

    db: Path
    tree: Path
    artifacts: dict[str, Any]
    marketplace: list[dict[str, Any]]
    projects: set[str]


def _json(result: Any) -> Any:
    return json.loads(succeeded(result).stdout)


def checkpoint(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def fill(run: Any, tmp_path: Path, *db_args: str) -> Cache:
    tree = tmp_path / "tree"
    generate(tree, projects=8, artifacts=12, seed=5)
    succeeded(run(*db_args, "scan", str(tree)))
    market = tmp_path / "market.json"
    market.write_text(json.dumps(marketplace_entries(seed=5)))
    succeeded(run(*db_args, "marketplace", "import", str(market)))
    succeeded(run(*db_args, "check-updates"))
    db = Path(db_args[1]) if db_args else tmp_path / "home" / ".skillmeat" / "cache" / "cache.db"
    checkpoint(db)
    artifacts = {a["id"]: a for a in _json(run(*db_args, "artifacts", "--json"))}
    assert any(a["upstream_version"] for a in artifacts.values())
    projects = {p["path"] for p in _json(run(*db_args, "projects", "--json"))}
    return Cache(db, tree.resolve(), artifacts, _json(run(*db_args, "marketplace", "list", "--json")), projects)


@pytest.fixture
def cache(run: Any, tmp_path: Path) -> Cache:
    return fill(run, tmp_path)


def leaf_pages(db: Path, table: str) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'", (table,))]


def damage(db: Path, how: str) -> bytes:
    """Damage ``db`` (no -wal left: checkpointed); its bytes afterwards."""
    for side in ("-wal", "-shm"):
        Path(f"{db}{side}").unlink(missing_ok=True)
    garbage = random.Random(7)
    if how == "pages":  # two leaf pages of the artifacts table, in the middle of the file
        pages = sorted(leaf_pages(db, "artifacts"))
        with open(db, "r+b") as f:
            for page in pages[len(pages) // 3 : len(pages) // 3 + 2]:
                f.seek((page - 1) * 4096)
                f.write(garbage.randbytes(4096))
    elif how == "truncated":
        os.truncate(db, db.stat().st_size // 2)
    else:
        db.write_bytes(garbage.randbytes(db.stat().st_size))
    return db.read_bytes()


def asides(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ASIDE.search(p.name))


def assert_aside(folder: Path, kind: str, content: bytes | None = None) -> Path:
    [kept] = asides(folder)
    match = ASIDE.search(kept.name)
    assert match and match.group(1) == kind
    stamp = datetime.strptime(match.group(2), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=10)
    if content is not None:
        assert kept.read_bytes() == content  # moved, never written
    return kept


# --------------------------------------------------------------------------- the default cache heals


@pytest.mark.parametrize(("how", "code"), [("pages", "SQLITE_CORRUPT"), ("truncated", "SQLITE_CORRUPT"),
                                           ("not-a-database", "SQLITE_NOTADB")])
def test_a_damaged_default_cache_is_moved_aside_and_rebuilt(run: Any, cache: Cache, how: str, code: str) -> None:
    damaged = damage(cache.db, how)
    result = run("artifacts", "--json")
    assert result.exit_code == 0 and result.exception is None, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: the cache ") and f"({code})" in lines[0], lines
    kept = assert_aside(cache.db.parent, "corrupt", damaged)
    assert str(kept) in lines[0]
    listed = {a["id"]: a for a in json.loads(result.stdout)}
    projects = {p["path"] for p in _json(run("projects", "--json"))}
    if how == "not-a-database":  # nothing can be read, the roots included
        assert "the remembered scan roots are lost" in lines[0]
        assert listed == {} and projects == set()
    else:  # the fresh cache holds the rescanned projects, every artifact back
        assert "8 projects rescanned from 1 remembered root" in lines[0]
        assert projects == cache.projects and len(listed) == len(cache.artifacts)
    again = run("status", "--json")  # healed once: the next command finds a sound cache
    assert again.exit_code == 0 and again.stderr == "" and json.loads(again.stdout)["revision"] == HEAD_REVISION
    assert len(asides(cache.db.parent)) == 1


def test_the_heal_happens_once_and_never_moves_a_sound_file(cache: Cache) -> None:
    """A command that keeps failing with SQLITE_CORRUPT on a file quick_check finds sound
    (another process healed it first, say) runs twice, then its error is reported."""
    bad = cache.db.parent.parent / "notes.db"
    bad.write_bytes(b"not a database" * 300)
    engine = create_engine_for_url(str(bad))
    try:
        engine.connect()
    except Exception as exc:  # the real driver error, as a command would meet it
        corrupt = exc
    engine.dispose()
    calls = []

    class State:  # the CLI's state for the default cache
        db = None
        url = "sqlite:///" + str(cache.db)
        synchronous = None

        def close(self) -> None:
            calls.append("close")

    def command(_state: Any) -> None:
        calls.append("run")
        raise corrupt

    before = cache.db.read_bytes()
    with pytest.raises(type(corrupt)):
        run_healing(State(), command, {})
    assert calls == ["run", "close", "run"]
    assert cache.db.read_bytes() == before and asides(cache.db.parent) == []


@pytest.mark.parametrize("given", ["--db", "url", "env", "default-path"])
def test_a_damaged_file_named_explicitly_is_never_moved(
    run: Any, cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    """Named is named, even when it is the default path (``--db ~/.skillmeat/cache/cache.db``)."""
    copy = tmp_path / "team" / "cache.db"
    copy.parent.mkdir()
    shutil.copyfile(cache.db, copy)
    if given == "default-path":
        copy, given = cache.db, "--db"
    damaged = damage(copy, "pages")
    args = {"--db": ["--db", str(copy)], "url": ["--db", f"sqlite:///{copy}"], "env": []}[given]
    if given == "env":
        monkeypatch.setenv("SKILLMEAT_CACHE_URL", str(copy))
    result = run(*args, "artifacts", "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: database file is damaged")
    assert "(SQLITE_CORRUPT" in result.stderr and "`skillmeat-cache repair`" in result.stderr
    assert copy.read_bytes() == damaged and asides(copy.parent) == []
    assert asides(cache.db.parent) == []


# --------------------------------------------------------------------------- check


def test_check_passes_a_sound_cache(run: Any, cache: Cache) -> None:
    for args in (("check",), ("check", "--thorough")):
        result = succeeded(run(*args))
        assert result.stdout.startswith("ok: sqlite:///") and result.stdout.count("\n") == 1
    report = _json(run("check", "--json"))
    assert report["clean"] is True and report["problems"] == []
    assert report["checks"] == dict.fromkeys(CHECKS, "ok")


def test_check_reports_a_damaged_file_without_touching_it(run: Any, cache: Cache) -> None:
    damaged = damage(cache.db, "pages")
    result = run("check")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("integrity: quick_check: ")
    assert all(line.split(":")[0] in CHECKS for line in lines)
    assert run("check", "--thorough").stdout.startswith("integrity: integrity_check: ")
    report = json.loads(run("check", "--json").stdout)
    assert report["clean"] is False and report["checks"]["integrity"] == "problems"
    assert cache.db.read_bytes() == damaged and asides(cache.db.parent) == []
    damage(cache.db, "not-a-database")
    report = json.loads(run("check", "--json").stdout)
    assert [p["message"] for p in report["problems"]] == ["quick_check: SQLITE_NOTADB: file is not a database"]


def test_check_finds_rows_that_break_the_rules(run: Any, cache: Cache) -> None:
    artifact = next(a for a in cache.artifacts.values() if a["upstream_version"])
    entry = cache.marketplace[0]
    with sqlite3.connect(cache.db) as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")  # what a foreign writer could do
        project_id = conn.execute("SELECT id FROM projects ORDER BY path LIMIT 1").fetchone()[0]
        conn.execute("UPDATE projects SET status = 'gone' WHERE id = ?", (project_id,))
        conn.execute("UPDATE artifact_metadata SET metadata = '{oops' WHERE artifact_id = ?", (artifact["id"],))
        conn.execute("UPDATE artifacts SET is_outdated = 1 - is_outdated WHERE id = ?", (artifact["id"],))
        conn.execute("UPDATE marketplace SET cached_at = 'last week' WHERE id = ?", (entry["id"],))
    result = run("check")
    assert result.exit_code == 1
    assert sorted(result.stdout.splitlines()) == sorted([
        f"rules: projects {project_id!r}: status: must be one of active, stale, error, got 'gone'",
        f"rules: artifacts {artifact['id']!r}: is_outdated: is {not artifact['is_outdated']}, "
        f"its versions say {artifact['is_outdated']}",
        f"rules: artifact_metadata {artifact['id']!r}: metadata: is not valid JSON",
        f"rules: marketplace {entry['id']!r}: cached_at: is not a timestamp: 'last week'",
    ])
    report = json.loads(run("check", "--json").stdout)
    assert {p["check"] for p in report["problems"]} == {"rules"} and len(report["problems"]) == 4


def test_check_finds_a_search_index_unequal_to_its_tables(run: Any, cache: Cache) -> None:
    with sqlite3.connect(cache.db) as conn:
        ids = [i for (i,) in conn.execute("SELECT artifact_id FROM artifact_metadata WHERE tags != '[]' ORDER BY 1")]
        conn.execute("DELETE FROM artifact_search WHERE artifact_id = ?", (ids[0],))
        conn.execute("DROP TRIGGER artifact_search_artifact_update")
        conn.execute("UPDATE artifacts SET name = 'renamed-by-hand' WHERE id = ?", (ids[1],))
        conn.execute("DROP TRIGGER artifact_search_fts_update")  # the full-text index falls behind too
        conn.execute("UPDATE artifact_search SET description_l = 'zzz' WHERE artifact_id = ?", (ids[2],))
        conn.execute("DELETE FROM artifact_tags WHERE artifact_id = ?", (ids[3],))
    result = run("check")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert f"search index: 1 row missing from artifact_search: {ids[0]!r}" in lines
    differ = sorted(ids[1:3])
    assert f"search index: 2 rows in artifact_search differ from their artifacts: {differ[0]!r}, {differ[1]!r}" in lines
    assert any(line.startswith("tags: ") and "missing from artifact_tags" in line for line in lines)
    assert any(line.startswith("full-text index: artifact_search_fts differs from artifact_search") for line in lines)
    assert {line.split(":")[0] for line in lines} == {"search index", "tags", "full-text index"}


def test_check_names_a_schema_behind_or_ahead_of_the_code(run: Any, tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    succeeded(run("--db", str(db), "migrate", "--to", "0005"))
    result = run("--db", str(db), "check")
    assert result.exit_code == 1
    assert result.stdout == f"revision: at 0005, behind head {HEAD_REVISION}: run `skillmeat-cache migrate`\n"
    report = json.loads(run("--db", str(db), "check", "--json").stdout)
    assert report["checks"]["rules"] == "skipped: the schema is not at head"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    assert run("--db", str(db), "check").stdout.startswith("revision: at 9999, which this code does not know")


@pytest.mark.postgres
def test_check_on_postgres_does_what_applies(run: Any, tmp_path: Path, db_url_pg: str) -> None:
    succeeded(run("--db", db_url_pg, "migrate"))
    tree = tmp_path / "tree"
    generate(tree, projects=3, artifacts=6, seed=5)
    succeeded(run("--db", db_url_pg, "scan", str(tree)))
    clean = run("--db", db_url_pg, "check")
    assert clean.exit_code == 0 and clean.stdout.startswith("ok: postgresql")
    assert clean.stderr.startswith("note: the integrity of the files and the foreign keys are the PostgreSQL server's")
    report = _json(run("--db", db_url_pg, "check", "--json"))
    assert report["checks"]["integrity"].startswith("skipped") and report["checks"]["search index"] == "ok"
    engine = create_engine_for_url(db_url_pg)
    try:
        with engine.begin() as conn:
            first, second = conn.execute(text("SELECT id FROM artifacts ORDER BY id LIMIT 2")).scalars()
            conn.execute(text("UPDATE artifacts SET is_outdated = NOT is_outdated WHERE id = :i"), {"i": first})
            conn.execute(text("ALTER TABLE artifacts DISABLE TRIGGER artifact_search_artifact_update"))
            conn.execute(text("UPDATE artifacts SET name = 'renamed-by-hand' WHERE id = :i"), {"i": second})
            conn.execute(text("ALTER TABLE artifacts ENABLE TRIGGER artifact_search_artifact_update"))
    finally:
        engine.dispose()
    result = run("--db", db_url_pg, "check")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"rules: artifacts {first!r}: is_outdated: is True, its versions say False",
        f"search index: 1 row in artifact_search differ from their artifacts: {second!r}",
    ]


# --------------------------------------------------------------------------- repair


def test_repair_keeps_marketplace_entries_and_upstream_versions_and_rescans(run: Any, cache: Cache) -> None:
    damaged = damage(cache.db, "pages")
    result = succeeded(run("repair"))
    [line] = result.stdout.splitlines()
    assert line.startswith(f"repaired {cache.db}: rows kept (of those read): projects 8/8, artifacts ")
    assert "marketplace " in line and "8 projects rescanned from 1 remembered root" in line
    kept_file = assert_aside(cache.db.parent, "corrupt", damaged)
    assert line.endswith(f"the old file is kept as {kept_file}")
    assert _json(run("marketplace", "list", "--json")) == cache.marketplace
    after = {a["id"]: a for a in _json(run("artifacts", "--json"))}
    assert len(after) == len(cache.artifacts)  # the rescan brought back what the damage took
    kept = set(after) & set(cache.artifacts)
    lost = set(cache.artifacts) - kept
    assert lost and kept, "the damage should cost some artifact rows, not all"
    assert {i: after[i]["upstream_version"] for i in kept} == {i: cache.artifacts[i]["upstream_version"] for i in kept}
    assert any(cache.artifacts[i]["upstream_version"] for i in kept)
    assert {p["path"] for p in _json(run("projects", "--json"))} == cache.projects
    assert succeeded(run("check")).stdout.startswith("ok: ")


def test_repair_of_a_sound_file_named_explicitly_keeps_every_row(run: Any, tmp_path: Path) -> None:
    db = tmp_path / "mine" / "cache.db"
    db.parent.mkdir()
    cache = fill(run, tmp_path, "--db", str(db))
    before = db.read_bytes()
    report = _json(run("--db", str(db), "repair", "--json"))
    assert report["was_damaged"] is False and report["damaged_tables"] == {}
    assert report["kept"] == report["read"] and report["kept"]["artifacts"] == len(cache.artifacts)
    assert report["roots"] == [str(cache.tree)] and report["projects_rescanned"] == 8
    kept = assert_aside(db.parent, "repaired", before)
    assert report["moved_to"] == str(kept)
    # The file repair builds is migrated without a pre-migration copy: the old one is kept.
    assert not [p.name for p in db.parent.iterdir() if ".pre-" in p.name]
    after = {a["id"]: a for a in _json(run("--db", str(db), "artifacts", "--json"))}
    assert {i: (a["upstream_version"], a["is_outdated"]) for i, a in after.items()} == {
        i: (a["upstream_version"], a["is_outdated"]) for i, a in cache.artifacts.items()
    }
    assert _json(run("--db", str(db), "marketplace", "list", "--json")) == cache.marketplace


def test_repair_of_random_bytes_says_the_roots_are_lost(run: Any, cache: Cache) -> None:
    damage(cache.db, "not-a-database")
    line = succeeded(run("repair")).stdout
    assert "projects 0/0" in line and "the remembered scan roots are lost: scan your folders again" in line
    assert _json(run("status", "--json"))["revision"] == HEAD_REVISION
    assert succeeded(run("check")).stdout.startswith("ok: ")


def test_repair_refuses_what_it_cannot_rebuild(run: Any, tmp_path: Path) -> None:
    for args, message in (
        (["--db", str(tmp_path / "missing.db")], f"error: no database file at {tmp_path / 'missing.db'}"),
        (["--db", f"sqlite:///file:{tmp_path / 'x.db'}?mode=ro&uri=true"], "error: repair writes the database"),
        (["--db", "postgresql://u:secret@127.0.0.1:1/x"], "error: repair rebuilds SQLite files"),
    ):
        result = run(*args, "repair")
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
        assert result.stderr.startswith(message) and "secret" not in result.stderr


# --------------------------------------------------------------------------- the server heals at start


@pytest.mark.slow
def test_the_server_heals_a_damaged_default_cache_at_start(run: Any, cache: Cache, tmp_path: Path) -> None:
    damaged = damage(cache.db, "pages")
    port = free_port()
    cmd = [sys.executable, "-m", "skillmeat_cache", "serve", "--port", str(port), "--no-watch"]
    with server_process(cmd, port, env=_env(tmp_path / "home")) as srv:
        recovered = StatusOut.model_validate(httpx.get(srv.base + API + "/status", timeout=10).json()).recovered
        kept = assert_aside(cache.db.parent, "corrupt", damaged)
        assert recovered is not None and recovered.moved_to == str(kept)
        assert "8 projects rescanned" in recovered.summary
        events = Events(srv.base, last_event_id="0")
        _id, _name, data = events.wait(lambda name, _data: name == "cache_recovered")
        assert data["moved_to"] == str(kept)
        events.close()
    assert [line for line in srv.output.splitlines() if line.startswith("warning:")] == [
        f"warning: the cache was damaged; it is rebuilt and the damaged file is kept as {kept}: {recovered.summary}"
    ]


@pytest.mark.slow
def test_the_server_heals_damage_it_meets_while_running(run: Any, cache: Cache, tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "skillmeat_cache", "serve", "--port", str(port), "--no-watch"]
    statuses: list[int] = []
    with server_process(cmd, port, env=_env(tmp_path / "home")) as srv:
        events = Events(srv.base)
        with httpx.Client(base_url=srv.base + API, timeout=10) as client:
            before = client.get("/status").json()
            assert before["recovered"] is None and before["artifacts"] == len(cache.artifacts)
            damage_pages(cache.db)
            for _ in range(600):  # reads while the server finds the damage and heals it
                response = client.get("/artifacts", params={"limit": 500})
                statuses.append(response.status_code)
                if response.status_code == 200 and client.get("/status").json()["recovered"]:
                    break
                assert response.status_code == 503 and response.headers["Retry-After"] == "5", response.text
                time.sleep(0.05)
            healed = {a["id"]: a for a in response.json()["items"]}
            status = StatusOut.model_validate(client.get("/status").json())
        _id, _name, data = events.wait(lambda name, _data: name == "cache_recovered", timeout=30)
        events.close()
    assert 503 in statuses and set(statuses) == {200, 503}
    kept = assert_aside(cache.db.parent, "corrupt")
    assert status.recovered is not None and status.recovered.moved_to == str(kept) == data["moved_to"]
    # Every artifact row was on a damaged page: the rescan of the remembered root gave
    # each one back (new ids), under the projects copied from the old file.
    def key(a: dict[str, Any]) -> tuple[str, ...]:
        return a["project_id"], a["type"], a["name"], a["path"]

    assert sorted(map(key, healed.values())) == sorted(map(key, cache.artifacts.values()))
    assert not healed.keys() & cache.artifacts.keys()
    assert [line for line in srv.output.splitlines() if line.startswith("warning:")] == [
        f"warning: the cache was damaged; it is rebuilt and the damaged file is kept as {kept}: "
        f"{status.recovered.summary}"
    ]
    assert succeeded(run("check")).stdout.startswith("ok")

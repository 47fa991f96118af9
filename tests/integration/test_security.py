"""Hostile data and secrets: SQL-looking text is stored verbatim through bound parameters,
the cache is private, passwords never leak, the scanner stays inside its roots and runs
nothing, and a path stored in the cache is re-checked on disk before it is trusted.

Cited rather than repeated: the default cache folder 0700 and file 0600
(tests/integration/test_container.py::test_file_environments_live_under_home_with_private_permissions,
tests/e2e/test_cli.py::test_status_creates_and_migrates_the_default_cache); symlinks out of a
root or a project (tests/unit/test_scanner.py::test_symlink_out_of_root_is_not_followed,
::test_symlink_out_of_the_project_is_skipped_with_a_warning,
::test_claude_folder_linking_outside_is_not_read).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import container_on, factory_for, succeeded, write_file
from sqlalchemy import event, inspect
from sqlalchemy.engine import make_url

from skillmeat_cache import Artifact, MarketplaceEntry, Project
from skillmeat_cache.engine import create_engine_for_url
from skillmeat_cache.services import scan

HOSTILE = [
    "'; DROP TABLE projects; --",
    'Robert"); DROP TABLE artifacts; --',
    "x' OR '1'='1",
    "%' OR 1=1 --",
    "_%\\",
    "$$; DELETE FROM artifacts; $$",
    "1; UPDATE projects SET status = 'error'",
    "'); SELECT pg_sleep(10); --",
]
TABLES = {"projects", "artifacts", "artifact_metadata", "artifact_tags", "marketplace", "cache_metadata"}

# --------------------------------------------------------------------------- helpers


def tables_of(url: str) -> set[str]:
    engine = create_engine_for_url(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- SQL-looking text


def test_sql_text_is_stored_and_read_back_verbatim_through_the_api(db_url):
    engine = create_engine_for_url(db_url, busy_timeout=2)
    container = container_on(engine)
    uow = container.unit_of_work
    statements: list[str] = []

    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    for bind in {engine, container.read_engine()}:  # PostgreSQL: reads have an engine of their own
        event.listen(bind, "before_cursor_execute", _record)

    ids = {}
    with uow() as u:
        for i, value in enumerate(HOSTILE):
            project = u.projects.add(Project(name=value, path=f"/h/{i}/{value}", description=value))
            artifact = u.artifacts.add(
                Artifact(project_id=project.id, name=value, type="skill", source=value, deployed_version=value)
            )
            u.metadata.set(
                artifact.id, data={value: value, "list": [value]}, description=value, tags=[value], aliases=[value]
            )
            u.artifacts.upsert_many([{"project_id": project.id, "type": "agent", "name": value, "source": value}])
            u.marketplace.upsert_many(
                [{"id": f"m{i}", "name": value, "type": "skill", "description": value, "data": {"v": value}}]
            )
            u.metadata.set_value(value, value)
            ids[value] = (project.id, artifact.id)
    with uow(read_only=True) as u:
        for value, (project_id, artifact_id) in ids.items():
            project = u.projects.get(project_id)
            assert (project.name, project.description) == (value, value)
            assert u.projects.get_by_path(project.path).id == project_id
            artifact = u.artifacts.get(artifact_id)
            assert (artifact.name, artifact.source, artifact.deployed_version) == (value, value, value)
            meta = u.metadata.get(artifact_id)
            assert (meta.data, meta.description, meta.tags, meta.aliases) == (
                {value: value, "list": [value]},
                value,
                [value],
                [value],
            )
            assert [a.id for a in u.metadata.artifacts_with_tag(value)] == [artifact_id]
            found = u.artifacts.search(value)
            assert {a.name for a in found} == {value}  # LIKE wildcards in the text are literal
            assert u.artifacts.get_by_key(project_id, "agent", value).source == value
            assert u.metadata.get_value(value) == value
        assert sorted(e.name for e in u.marketplace.list()) == sorted(HOSTILE)
        assert u.projects.count() == len(HOSTILE) and u.artifacts.count() == 2 * len(HOSTILE)
    engine.dispose()
    assert tables_of(db_url) >= TABLES
    assert len(statements) > 10
    leaked = [s for s in statements if any(v in s for v in HOSTILE)]
    assert leaked == []  # the text travelled as bound parameters only, never in SQL


def _hostile_tree(root: Path) -> Path:
    project = root / HOSTILE[0]
    claude = project / ".claude"
    write_file(
        claude / ".skillmeat-project.toml", f"name = {json.dumps(HOSTILE[1])}\ndescription = {json.dumps(HOSTILE[2])}\n"
    )
    fields = "\n".join(
        [
            f"description: {json.dumps(HOSTILE[3])}",
            f"version: {json.dumps(HOSTILE[6])}",
            f"source: {json.dumps(HOSTILE[5])}",
            f"tags: {json.dumps(HOSTILE)}",
            f"{json.dumps(HOSTILE[7])}: {json.dumps(HOSTILE[0])}",
        ]
    )
    write_file(claude / "skills" / HOSTILE[1] / "SKILL.md", f"---\n{fields}\n---\nbody\n")
    write_file(claude / "agents" / f"{HOSTILE[2]}.md", f"---\ndescription: {json.dumps(HOSTILE[4])}\n---\n")
    write_file(claude / "mcp" / HOSTILE[7] / "mcp.json", json.dumps({"description": HOSTILE[0], "version": "1"}))
    return project


def test_sql_text_is_stored_and_read_back_verbatim_through_a_scan(run, db_url, tmp_path):
    project = _hostile_tree(tmp_path / "tree")
    summary = json.loads(succeeded(run("--db", db_url, "scan", str(tmp_path / "tree"), "--json")).stdout)
    assert (summary["projects_added"], summary["artifacts_added"], summary["warnings"]) == (1, 3, [])
    (stored,) = json.loads(succeeded(run("--db", db_url, "projects", "--json")).stdout)
    assert (stored["name"], stored["description"], stored["path"]) == (HOSTILE[1], HOSTILE[2], str(project.resolve()))
    by_name = {a["name"]: a for a in json.loads(succeeded(run("--db", db_url, "artifacts", "--json")).stdout)}
    assert set(by_name) == {HOSTILE[1], HOSTILE[2], HOSTILE[7]}
    skill = by_name[HOSTILE[1]]
    assert (skill["deployed_version"], skill["source"]) == (HOSTILE[6], HOSTILE[5])
    for tag in HOSTILE:
        tagged = json.loads(succeeded(run("--db", db_url, "artifacts", "--tag", tag, "--json")).stdout)
        assert [a["name"] for a in tagged] == [HOSTILE[1]]
    searched = json.loads(succeeded(run("--db", db_url, "artifacts", "--search", HOSTILE[4], "--json")).stdout)
    assert [a["name"] for a in searched] == [HOSTILE[2]]  # found by its description, wildcards literal
    mine = json.loads(succeeded(run("--db", db_url, "artifacts", "--project", str(project), "--json")).stdout)
    assert len(mine) == 3
    engine, uow = factory_for(db_url)
    with uow(read_only=True) as u:
        meta = u.metadata.get(skill["id"])
        assert meta.description == HOSTILE[3] and meta.tags == HOSTILE
        assert meta.data[HOSTILE[7]] == HOSTILE[0]
    engine.dispose()
    assert "forgot" in succeeded(run("--db", db_url, "forget", str(project))).stdout
    assert json.loads(succeeded(run("--db", db_url, "projects", "--json")).stdout) == []
    assert tables_of(db_url) >= TABLES
    assert project.is_dir()  # forget never touches the folder


# --------------------------------------------------------------------------- private files


def test_a_new_database_file_and_its_wal_and_shm_are_private(run, tmp_path, monkeypatch):
    """Whatever the umask: the file is created 0600 before SQLite opens it, and SQLite gives
    its -wal and -shm files the database file's permissions.
    """
    old = os.umask(0o022)
    try:
        db = tmp_path / "shared-folder" / "cache.db"
        db.parent.mkdir()
        succeeded(run("--db", str(db), "status"))
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        engine, uow = factory_for(str(db))
        with uow() as u:
            u.projects.add(Project(name="p", path="/p"))
            companions = [Path(f"{db}-wal"), Path(f"{db}-shm")]
            assert all(p.exists() for p in companions)
            assert {stat.S_IMODE(p.stat().st_mode) for p in companions} == {0o600}
        engine.dispose()
        assert stat.S_IMODE(db.parent.stat().st_mode) == 0o755  # a folder the user chose is left as it is
    finally:
        os.umask(old)


# --------------------------------------------------------------------------- passwords

SECRET = "pa55-w0rd-s3cret"


def _pg_url(database: str, user: str = "postgres") -> str:
    from conftest import PG_ADMIN_URL

    return (
        make_url(PG_ADMIN_URL)
        .set(username=user, password=SECRET, database=database)
        .render_as_string(hide_password=False)
    )


def _cases() -> list[Any]:
    pg = pytest.mark.postgres
    return [
        pytest.param(lambda: f"postgresql://alice:{SECRET}@127.0.0.1:1/nowhere", 1, id="unreachable"),
        pytest.param(lambda: _pg_url("test", user="no_such_role"), 1, id="unknown-role", marks=pg),
        pytest.param(lambda: _pg_url("no_such_database"), 1, id="unknown-database", marks=pg),
        pytest.param(lambda: f"postgresql://alice:{SECRET}@127.0.0.1:notaport/db", 1, id="malformed"),
        pytest.param(lambda: f"postgresql://alice:{SECRET}@x@127.0.0.1/db", 1, id="unescaped-at"),
        pytest.param(lambda: f"mysql://alice:{SECRET}@127.0.0.1/db", 1, id="unsupported"),
        pytest.param(None, 0, id="accepted-password", marks=pg),  # trust auth ignores it: success paths
    ]


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything SQLAlchemy, the driver and our code log, down to DEBUG."""
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "psycopg", "alembic", "skillmeat_cache"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


@pytest.mark.parametrize(("make", "code"), _cases())
def test_password_never_appears_in_output_logs_or_errors(run, debug_logs, request, make, code, tmp_path):
    url = make() if make is not None else _pg_url(make_url(request.getfixturevalue("db_url_pg")).database)
    seen: list[str] = []
    for args in (["status"], ["projects", "--json"], ["scan", str(tmp_path)], ["migrate"], ["--debug", "status"]):
        result = run("--db", url, *args)
        seen += [result.output, result.stderr]
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            assert args[0] == "--debug", "".join(traceback.format_exception(result.exception))
            seen.append("".join(traceback.format_exception(result.exception)))  # what --debug prints, causes included
        elif args[0] != "--debug":
            assert result.exit_code == code, result.output
            if code:
                assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    seen.append(debug_logs.text)
    if code == 0:
        assert "postgres:***@" in seen[0]  # status shows the URL, masked
    try:  # the API: the exception, its chain and the engine
        engine, uow = factory_for(url)
        seen.append(repr(engine))
        with uow() as u:
            u.projects.count()
        engine.dispose()
    except Exception as exc:
        seen += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    seen.append(debug_logs.text)
    if url.startswith("postgresql") and "notaport" not in url and "@x@" not in url:
        assert debug_logs.records  # an engine was built: the capture did see its logging
    leaks = [text for text in seen if SECRET in text]
    assert leaks == []


def test_password_never_appears_on_a_real_stderr_even_with_debug(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "SKILLMEAT_CACHE_URL": f"postgresql://alice:{SECRET}@127.0.0.1:1/x"}
    for extra in ([], ["--debug"]):
        done = subprocess.run(
            [sys.executable, "-m", "skillmeat_cache", *extra, "status"], env=env, capture_output=True, text=True
        )
        assert done.returncode == 1
        assert SECRET not in done.stdout + done.stderr
        assert ("Traceback" in done.stderr) == bool(extra)


# --------------------------------------------------------------------------- the scanner's reach

_EXEC_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty"}
_FILE_EVENTS = {"open", "os.scandir", "os.listdir"}
_recording: list[tuple[str, Any]] | None = None


def _audit(event_name: str, args: tuple[Any, ...]) -> None:
    if _recording is not None and (event_name in _FILE_EVENTS or event_name in _EXEC_EVENTS):
        _recording.append((event_name, args[0] if args else None))


sys.addaudithook(_audit)  # hooks cannot be removed; this one records only inside `recorded()`


def recorded(fn: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The file and process events (``sys.audit``) raised while ``fn`` runs."""
    global _recording
    _recording = []
    try:
        fn()
        return _recording
    finally:
        _recording = None


def _paths(events: list[tuple[str, Any]]) -> set[str]:
    """The resolved paths of the file events, leaving out the interpreter's own files."""
    skip = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix, "/dev/", "/proc/", "/sys/"})
    paths = set()
    for name, arg in events:
        if name not in _FILE_EVENTS or isinstance(arg, int) or arg is None:
            continue
        real = os.path.realpath(os.fsdecode(arg))
        if not real.startswith(skip) and not real.endswith((".py", ".pyc", ".so")):
            paths.add(real)
    return paths


def _inside(path: str, root: Path) -> bool:
    real = str(root.resolve())
    return path == real or path.startswith(real + os.sep)


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A root whose projects point outside it in every way a symlink can, an outside
    folder holding secrets, and a marker file that anything executed would create.
    """
    root, outside, marker = tmp_path / "root", tmp_path / "outside", tmp_path / "EXECUTED"
    touch = f"touch {marker}"
    write_file(
        outside / "secret-project" / ".claude" / "skills" / "secret" / "SKILL.md", "---\ndescription: secret\n---\n"
    )
    write_file(outside / "secret.toml", 'name = "secret"\n')
    write_file(outside / "secret.json", '{"description": "secret"}')
    write_file(outside / "secret.md", "---\ndescription: secret\n---\n")
    claude = root / "p" / ".claude"
    write_file(claude / "skills" / "s" / "SKILL.md", "---\ndescription: mine\n---\n")
    (claude / "skills" / "s" / "leak").symlink_to(outside / "secret.md")
    (claude / "skills" / "stolen").symlink_to(outside / "secret-project" / ".claude" / "skills" / "secret")
    (claude / "agents").mkdir()
    (claude / "agents" / "a.md").symlink_to(outside / "secret.md")
    (claude / ".skillmeat-project.toml").symlink_to(outside / "secret.toml")
    write_file(claude / "mcp" / "m" / "placeholder.txt", "")
    (claude / "mcp" / "m" / "mcp.json").symlink_to(outside / "secret.json")
    (claude / "commands").symlink_to(outside, target_is_directory=True)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "q").mkdir()
    (root / "q" / ".claude").symlink_to(outside / "secret-project" / ".claude", target_is_directory=True)
    (root / "etc").symlink_to("/etc", target_is_directory=True)
    # things that would run if anything executed what it finds
    hook = write_file(claude / "hooks" / "h" / "HOOK.md", f"---\ndescription: hook\ncommand: {touch}\n---\n")
    script = write_file(hook.parent / "hook.sh", f"#!/bin/sh\n{touch}\n")
    script.chmod(0o755)
    write_file(claude / "skills" / "evil" / "SKILL.md", f'---\nx: !!python/object/apply:os.system ["{touch}"]\n---\n')
    write_file(
        claude / "skills" / "evil2" / "SKILL.md",
        f'---\nx: !!python/object/new:subprocess.Popen [["sh", "-c", "{touch}"]]\n---\n',
    )
    write_file(claude / "mcp" / "srv" / "mcp.json", json.dumps({"command": "sh", "args": ["-c", touch]}))
    write_file(root / "p" / "conftest.py", f"import os\nos.system({touch!r})\n")
    write_file(claude / "skills" / "s" / "__init__.py", f"import os\nos.system({touch!r})\n")
    return root, outside, marker


def test_scanner_reads_only_inside_its_roots_and_executes_nothing(hostile, sqlite_url):
    root, _outside, marker = hostile
    engine, uow = factory_for(sqlite_url)
    scan(uow, [root])  # warm-up: lazy imports happen now, not while recording
    with uow() as u:
        for project in u.projects.list():
            u.projects.delete(project.id)
    summary = None

    def go() -> None:
        nonlocal summary
        summary = scan(uow, [root], full=True)

    events = recorded(go)
    paths = _paths(events)
    assert paths and all(_inside(p, root) for p in paths), sorted(p for p in paths if not _inside(p, root))
    assert not any(name in _EXEC_EVENTS for name, _ in events)
    assert not marker.exists()
    with uow(read_only=True) as u:
        stored = u.artifacts.search("")
        assert "secret" not in {a.name for a in stored}
        assert all(
            not (m and "secret" in json.dumps(m.data)) for m in u.metadata.get_many([a.id for a in stored]).values()
        )
        assert {p.path for p in u.projects.list()} == {str((root / "p").resolve()), str((root / "q").resolve())}
    engine.dispose()
    evil = [w for w in summary.warnings if "/skills/evil" in w.path]
    assert len(evil) == 2 and all("malformed frontmatter" in w.message for w in evil)


# --------------------------------------------------------------------------- paths stored in the cache


def _project(root: Path, name: str, skill: str = "s") -> Path:
    write_file(root / name / ".claude" / "skills" / skill / "SKILL.md", f"---\ndescription: {skill}\n---\n")
    return root / name


def test_deleted_project_answers_from_cache_until_a_scan_marks_it_stale(run, sqlite_url, tmp_path):
    """The cache answers from what it stored (it is a cache); only a scan looks at the disk
    again, and then the project is marked stale, never silently kept active. The stale
    marking alone: tests/e2e/test_cli_scan.py::test_project_folder_removed_is_marked_stale.
    """
    project = _project(tmp_path / "root", "p")
    succeeded(run("--db", sqlite_url, "scan", str(tmp_path / "root")))
    shutil.rmtree(project)
    cached = json.loads(succeeded(run("--db", sqlite_url, "artifacts", "--project", str(project), "--json")).stdout)
    assert [a["name"] for a in cached] == ["s"]
    summary = json.loads(succeeded(run("--db", sqlite_url, "scan", str(tmp_path / "root"), "--json")).stdout)
    assert summary["projects_stale"] == 1
    (stale,) = json.loads(succeeded(run("--db", sqlite_url, "projects", "--status", "stale", "--json")).stdout)
    assert stale["path"] == str(project.resolve()) and stale["artifact_count"] == 1
    succeeded(run("--db", sqlite_url, "forget", str(project)))
    assert json.loads(succeeded(run("--db", sqlite_url, "projects", "--json")).stdout) == []


def test_cached_project_that_became_a_symlink_out_of_the_root_is_not_followed(run, sqlite_url, tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    project = _project(root, "p")
    succeeded(run("--db", sqlite_url, "scan", str(root)))
    moved = outside / "p"
    moved.parent.mkdir()
    project.rename(moved)
    _project(outside, "p", skill="outsider")
    project.symlink_to(moved, target_is_directory=True)  # the cached path now leads outside
    events = recorded(lambda: succeeded(run("--db", sqlite_url, "scan", str(root), "--json")))
    assert not any(_inside(p, outside) for p in _paths(events))
    (stale,) = json.loads(succeeded(run("--db", sqlite_url, "projects", "--status", "stale", "--json")).stdout)
    assert stale["path"] == str(project)
    names = {a["name"] for a in json.loads(succeeded(run("--db", sqlite_url, "artifacts", "--json")).stdout)}
    assert names == {"s"}  # what was cached, nothing read through the link
    succeeded(run("--db", sqlite_url, "forget", str(project)))
    assert project.is_symlink() and (moved / ".claude" / "skills" / "outsider").is_dir()  # untouched


def test_stored_path_that_leaves_the_root_through_dot_dot_is_not_trusted(sqlite_url, tmp_path):
    """A path written into the cache by another program, spelled to look as if under the
    scanned root: the scan re-checks it (it does not resolve to itself) and marks it stale
    without reading anything there.
    """
    root, outside = tmp_path / "root", tmp_path / "outside"
    _project(root, "p")
    _project(outside, "secret")
    sneaky = f"{root.resolve()}/../outside/secret"
    engine, uow = factory_for(sqlite_url)
    with uow() as u:
        u.projects.add(Project(name="sneaky", path=sneaky))
        u.marketplace.add(MarketplaceEntry(id="m", name="x", type="skill"))
    summary = None

    def go() -> None:
        nonlocal summary
        summary = scan(uow, [root])

    events = recorded(go)
    assert summary.projects_stale == 1
    assert not any(_inside(p, outside) for p in _paths(events))
    with uow(read_only=True) as u:
        assert u.projects.get_by_path(sneaky).status == "stale"
        assert u.artifacts.count() == 1  # only root/p's skill
    engine.dispose()

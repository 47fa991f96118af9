"""Shared fixtures: real databases (a SQLite file under tmp_path, a throwaway PostgreSQL
database), migrated by our own migrations."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from dependency_injector import providers
from sqlalchemy import Engine, text

from benchmarks.postgres import throwaway_postgres_database
from skillmeat_cache import HEAD_REVISION, UnitOfWork, migrate
from skillmeat_cache.cli import main
from skillmeat_cache.container import Container
from skillmeat_cache.engine import create_engine_for_url
from skillmeat_cache.errors import DatabaseUnavailableError
from skillmeat_cache.migration import migrations_path

PG_ADMIN_URL = os.environ.get("SKILLMEAT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TABLES = ("artifact_tags", "artifact_metadata", "artifacts", "projects", "marketplace", "cache_metadata")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
    pytest.skip(f"PostgreSQL not reachable: {reason}")


@contextmanager
def throwaway_pg_database(prefix: str, options: str = "") -> Iterator[str]:
    """Create an empty PostgreSQL database (``options``: extra CREATE DATABASE clauses),
    yield its URL, drop it afterwards. Skips without a reachable server, fails under CI=true."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(throwaway_postgres_database(PG_ADMIN_URL, prefix, options))
        except DatabaseUnavailableError as exc:
            _pg_unavailable(str(exc))
        yield url


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this run, migrated to head; dropped at the end."""
    with throwaway_pg_database("skillmeat_test") as url:
        migrate(url)
        yield url


@pytest.fixture(scope="session")
def collated_pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database whose collation is not byte order (ICU ``en-US``:
    ``"a" < "B"``, ``lower("É") = "é"``), where the server offers ICU; else its default."""
    icu = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
    try:
        with throwaway_pg_database("skillmeat_icu", icu) as url:
            migrate(url)
            yield url
            return
    except Exception as exc:  # a server without ICU (or older than 15)
        if "icu" not in str(exc).lower() and "locale" not in str(exc).lower():
            raise
    with throwaway_pg_database("skillmeat_icu") as url:
        migrate(url)
        yield url


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """An empty PostgreSQL database of this test's own (no schema); dropped afterwards."""
    with throwaway_pg_database("skillmeat_fresh") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; tests copy it."""
    path = tmp_path_factory.mktemp("template") / "cache.db"
    migrate(str(path))
    return path


def _sqlite_url(template: Path, tmp_path: Path) -> str:
    path = tmp_path / "cache.db"
    shutil.copyfile(template, path)
    return "sqlite:///" + str(path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        yield _sqlite_url(sqlite_template, tmp_path)
        return
    url = request.getfixturevalue("pg_server_url")
    engine = create_engine_for_url(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty SQLite file."""
    return _sqlite_url(sqlite_template, tmp_path)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the migrated database, with a short busy timeout."""
    eng = create_engine_for_url(db_url, busy_timeout=2)
    yield eng
    eng.dispose()


def container_on(engine: Engine) -> Container:
    """A container whose engine provider is overridden by ``engine`` (the dependency-injector
    way to point every unit of work at a test database); the caller disposes of the engine.
    """
    container = Container()
    container.engine.override(providers.Object(engine))
    return container


def units_of_work(engine: Engine) -> Callable[..., UnitOfWork]:
    """The container's unit-of-work factory on ``engine``: ``factory(read_only=True)``."""
    return container_on(engine).unit_of_work


def factory_for(url: str, **engine_kwargs: Any) -> tuple[Engine, Callable[..., UnitOfWork]]:
    """An engine on ``url`` (busy timeout 2 s unless given) and units of work on it; the
    caller disposes of the engine."""
    engine_kwargs.setdefault("busy_timeout", 2)
    engine = create_engine_for_url(url, **engine_kwargs)
    return engine, units_of_work(engine)


def write_file(path: Path, content: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to ``path``, creating its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def refuse_scandir(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    """Make the scanner's ``os.scandir`` refuse these folders as an unreadable folder would
    (permission bits do not stop root, so tests simulate the refusal here)."""
    refused = {str(path.resolve()) for path in paths}
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if os.fspath(path) in refused:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


def named_keys(keys: dict[tuple[str, str, str], str]) -> dict[tuple[str, str], str]:
    """``keys_for_project``'s ``{(type, path, name): id}`` as ``{(type, name): id}`` for
    tests whose artifacts each have a distinct (type, name)."""
    named = {(type_, name): id_ for (type_, _path, name), id_ in keys.items()}
    assert len(named) == len(keys), keys
    return named


def without_dac_override() -> list[str]:
    """A command prefix under which permission bits bind this user: nothing for a normal
    user; for root, ``setpriv`` dropping CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (root
    keeps owning the files, so their owner bits apply). Skips when neither is possible.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv is missing: permission bits cannot be made to bind")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"running as root and setpriv cannot drop CAP_DAC_OVERRIDE here: {probe.stderr.strip()}")
    return prefix


FAILING_REVISION = '''
"""Fails half-way (test only)."""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
    op.add_column("projects", sa.Column("half_done_flag", sa.Text(), nullable=True))
    op.execute("UPDATE projects SET name = 'clobbered'")
    {escape}
    op.execute("DELETE FROM artifacts")
    {before_raise}
    raise RuntimeError("boom: revision 0008 failed half-way")


def downgrade() -> None:
    op.drop_column("projects", "half_done_flag")
    op.drop_table("half_done")
'''

# For ``failing_migrations(escape=...)``: commits what the revision did so far, as a step
# that must run outside the migration's transaction does (VACUUM, Alembic's
# autocommit_block); SQLite's rollback cannot undo it, only the copy can.
ESCAPE_TRANSACTION = 'op.execute("COMMIT")'


def failing_migrations(folder: Path, *, escape: str = "pass", before_raise: str = "pass") -> Path:
    """Our migrations copied to ``folder/migrations``, plus a revision 0008 after head that
    changes the schema and the rows (a table and a column added, project names clobbered,
    artifacts deleted), runs the statements ``escape`` and ``before_raise`` on the way,
    then raises ``RuntimeError("boom: revision 0008 failed half-way")``. Returns the folder
    to put in place of ``migration.migrations_path()``.
    """
    scripts = folder / "migrations"
    shutil.copytree(migrations_path(), scripts, ignore=shutil.ignore_patterns("__pycache__"))
    text = textwrap.dedent(FAILING_REVISION).format(head=HEAD_REVISION, escape=escape, before_raise=before_raise)
    (scripts / "versions" / "0008_failing.py").write_text(text)
    return scripts


MIGRATION_RACER = """
import sys
from pathlib import Path

import alembic.command  # noqa: F401  (imported before the start signal: the race is the migration)
import alembic.runtime.migration  # noqa: F401
from skillmeat_cache import migration

if sys.argv[2] != "-":
    migration.migrations_path = lambda: Path(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
try:
    migration.migrate(sys.argv[1])
except migration.DatabaseError as exc:
    print(type(exc).__name__, flush=True)
else:
    print("done", flush=True)
"""


def race_migrations(url: str, processes: int, tmp_path: Path, scripts: Path | None = None) -> list[str]:
    """Start ``processes`` migrations of ``url`` at one moment (each its own process, with
    none of our environment variables and HOME in ``tmp_path``; ``scripts``: migrations
    in place of ours, as from :func:`failing_migrations`). What each printed last:
    ``done``, or the name of the DatabaseError it raised; any other failure fails the test.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLMEAT_CACHE_") and k != "PYTHONPATH"}
    env["HOME"] = str(tmp_path)
    argv = [sys.executable, "-c", MIGRATION_RACER, url, "-" if scripts is None else str(scripts)]
    racers = [
        subprocess.Popen(argv, cwd=tmp_path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    try:
        for racer in racers:  # the barrier: everyone has imported everything
            line = racer.stdout.readline()
            assert line.strip() == "ready", racer.stderr.read() if racer.poll() is not None else line
        for racer in racers:
            racer.stdin.write("go\n")
            racer.stdin.flush()
        results = [racer.communicate(timeout=120) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
    assert [racer.returncode for racer in racers] == [0] * processes, [err for _out, err in results]
    return [out.strip() for out, _err in results]


@dataclass
class RunningServer:
    """A server process: where it listens; once it stopped, what it printed."""

    base: str
    port: int
    output: str = ""


@contextmanager
def server_process(argv: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[RunningServer]:
    """Run ``argv``, a server listening on loopback ``port``; yield once its ``/status``
    answers 200 (failing when the process exits first or takes over 30 s). Stopped with
    SIGTERM after the block, which it must take cleanly (uvicorn re-raises the signal it
    stopped on once it has shut down); its stdout and stderr are then in ``output``.
    """
    running = RunningServer(f"http://127.0.0.1:{port}", port)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if httpx.get(running.base + "/api/v1/cache/status", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
        running.output = proc.communicate()[0]
        assert proc.returncode in (0, -signal.SIGTERM), running.output


def succeeded(result: Result) -> Result:
    """A CLI result that exited 0 without an exception."""
    assert result.exit_code == 0 and result.exception is None, (result.output, result.exception)
    return result


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Runs the CLI with a private HOME and none of our environment variables set."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("SKILLMEAT_CACHE_URL", "SKILLMEAT_CACHE_ENV", "SKILLMEAT_CACHE_SYNCHRONOUS"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args))


@pytest.fixture
def uow_factory(engine: Engine) -> Callable[..., UnitOfWork]:
    """Makes units of work on ``engine``."""
    return units_of_work(engine)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "fake"])
def any_uow(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Callable[..., Any]]:
    """Unit-of-work factories on each real backend and on the fake: contract tests."""
    if request.param == "fake":
        from skillmeat_cache.testing import FakeStore

        store = FakeStore()
        yield lambda read_only=False: store.unit_of_work(read_only=read_only)
        return
    url = _sqlite_url(sqlite_template, tmp_path) if request.param == "sqlite" else request.getfixturevalue("db_url_pg")
    eng, factory = factory_for(url)
    yield factory
    eng.dispose()


@pytest.fixture
def db_url_pg(pg_server_url: str) -> str:
    """The PostgreSQL test database, emptied."""
    engine = create_engine_for_url(pg_server_url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    engine.dispose()
    return pg_server_url

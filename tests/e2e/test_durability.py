"""The durability setting (docs/durability.md): ``--synchronous`` / SKILLMEAT_CACHE_SYNCHRONOUS
reach every SQLite connection the command line opens. (The container's ``synchronous``
config: tests/integration/test_container.py::test_settings_reach_every_connection.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import event

import skillmeat_cache.engine as engine_module
from skillmeat_cache.cli import main

NORMAL, FULL = 1, 2  # PRAGMA synchronous values


@pytest.fixture
def pragmas(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """``PRAGMA synchronous`` as every connection the CLI opens sees it once set up."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("SKILLMEAT_CACHE_URL", "SKILLMEAT_CACHE_ENV", "SKILLMEAT_CACHE_SYNCHRONOUS"):
        monkeypatch.delenv(name, raising=False)
    seen: list[int] = []
    real = engine_module.create_engine_for_url

    def spy(url: str, **kwargs: Any) -> Any:
        engine = real(url, **kwargs)
        if engine.dialect.name == "sqlite":

            @event.listens_for(engine, "connect")  # runs after the engine's own set-up
            def _record(dbapi_connection: Any, _record: Any) -> None:
                seen.append(dbapi_connection.execute("PRAGMA synchronous").fetchone()[0])

        return engine

    monkeypatch.setattr(engine_module, "create_engine_for_url", spy)
    return seen


@pytest.mark.parametrize(
    ("options", "environ", "expected"),
    [
        ((), None, NORMAL),
        (("--synchronous", "full"), None, FULL),
        (("--synchronous", "FULL"), None, FULL),
        (("--synchronous", "normal"), None, NORMAL),
        ((), "full", FULL),
        ((), "Normal", NORMAL),
        (("--synchronous", "normal"), "full", NORMAL),  # the option wins over the variable
    ],
)
def test_synchronous_reaches_every_connection_of_every_command(
    pragmas, tmp_path, monkeypatch, options, environ, expected
):
    if environ is not None:
        monkeypatch.setenv("SKILLMEAT_CACHE_SYNCHRONOUS", environ)
    (tmp_path / "tree" / "p" / ".claude" / "skills" / "s").mkdir(parents=True)
    (tmp_path / "tree" / "p" / ".claude" / "skills" / "s" / "SKILL.md").write_text("---\nname: s\n---\n")
    db = str(tmp_path / "cache.db")
    runner = CliRunner()
    for command in (["migrate"], ["scan", str(tmp_path / "tree")], ["projects"], ["status"], ["forget", "/nowhere"]):
        result = runner.invoke(main, [*options, "--db", db, *command])
        assert result.exit_code in (0, 1) and isinstance(result.exception, (SystemExit, type(None))), result.output
    assert len(pragmas) >= 5 and set(pragmas) == {expected}


def test_default_cache_also_gets_the_setting(pragmas):
    result = CliRunner().invoke(main, ["--synchronous", "full", "status"])
    assert result.exit_code == 0, result.output
    assert pragmas and set(pragmas) == {FULL}


@pytest.mark.postgres
def test_postgres_accepts_and_ignores_the_option(db_url_pg, pragmas):
    """Durability on PostgreSQL is the server's setting (docs/durability.md)."""
    result = CliRunner().invoke(main, ["--synchronous", "full", "--db", db_url_pg, "status"])
    assert result.exit_code == 0, result.output
    assert pragmas == []

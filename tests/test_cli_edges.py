"""The command line's edges: --version, an empty --db, durations that cannot be one, a
HOME that cannot hold the cache, foreign SQLite files, read-only folders, plurals."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version

import pytest
from conftest import succeeded


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

"""The command line's edges: --version, an empty --db, durations that cannot be one, a
HOME that cannot hold the cache, foreign SQLite files, read-only folders, plurals."""

from __future__ import annotations

from importlib.metadata import version

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

"""The built wheel: what it holds, and that an installed copy (not the repository) finds
its migration scripts and migrates a database from an unrelated folder.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

import skillmeat_cache

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
# Left out of the copy the wheel is built from: VCS data, virtualenvs (CI keeps one in
# the clone), build output and caches. tests/ is copied, so "no tests in the wheel" means
# something.
NOT_SOURCES = (".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".coverage")


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _setuptools_can_build_here() -> bool:
    # pyproject.toml's `license = "MIT"` (an SPDX expression) needs setuptools >= 77.
    try:
        return Version(importlib.metadata.version("setuptools")) >= Version("77")
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the repository (an in-tree build would
    leave build/ and stale egg-info in the working tree).
    """
    source = tmp_path_factory.mktemp("source") / "skillmeat-cache"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    out = tmp_path_factory.mktemp("wheelhouse")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)]
    if _setuptools_can_build_here():
        cmd.insert(4, "--no-build-isolation")
    # Otherwise pip fetches a setuptools that satisfies [build-system] from the registry.
    _run(cmd)
    wheels = list(out.glob("skillmeat_cache-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        top_level = set(archive.read(f"{dist_info}/top_level.txt").decode().split())

    for required in (
        "containers.py",
        "skillmeat_cache/__init__.py",
        "skillmeat_cache/py.typed",
        "skillmeat_cache/testing/__init__.py",
        "skillmeat_cache/testing/repositories.py",
        "skillmeat_cache/migrations/env.py",
        "skillmeat_cache/migrations/script.py.mako",
        "skillmeat_cache/migrations/versions/0001_initial_schema.py",
    ):
        assert required in names, required
    # Every revision in the repository ships, not just the first one.
    for script in (REPO_ROOT / "migrations" / "versions").glob("*.py"):
        assert f"skillmeat_cache/migrations/versions/{script.name}" in names, script.name

    assert not [n for n in names if n.startswith("migrations/")], "a top-level migrations package"
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n], "tests in the wheel"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    roots = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert roots == {"containers.py", "skillmeat_cache"}
    assert top_level == {"containers", "skillmeat_cache"}


IMPORT_CHECK = """
import containers, skillmeat_cache
from skillmeat_cache.migration import migrations_path
print(skillmeat_cache.__file__)
print(containers.__file__)
print(migrations_path())
"""

MIGRATE_CHECK = """
import sys
import skillmeat_cache
from skillmeat_cache.migration import current_revision, migrate

migrate(sys.argv[1])
assert current_revision(sys.argv[1]) == skillmeat_cache.HEAD_REVISION
print(current_revision(sys.argv[1]))
"""


def test_installed_wheel_imports_and_migrates_from_anywhere(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(_run([str(python), "-c", where]).stdout.strip())
    # Dependencies come from this machine, no network. --system-site-packages shows the
    # base interpreter's packages; when the tests run in a virtualenv (CI does) the
    # dependencies live in that one, so its site-packages are listed too. Paths added by
    # a .pth file come after the venv's own, and their .pth files (such as the editable
    # install's finder) are not run.
    outer = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    (purelib / "_outer_site_packages.pth").write_text("\n".join(dict.fromkeys(outer)) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLMEAT_CACHE_") and k != "PYTHONPATH"}
    env |= {"HOME": str(tmp_path), "PYTHONNOUSERSITE": "1"}

    # --force-reinstall: the editable install of the same version is visible and must
    # not count as "already satisfied"; it lives outside the venv, so pip leaves it be.
    _run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", "--quiet", str(wheel)],
        cwd=elsewhere,
        env=env,
    )

    paths = [Path(line) for line in _run([str(python), "-c", IMPORT_CHECK], cwd=elsewhere, env=env).stdout.split()]
    assert len(paths) == 3, paths
    for path in paths:
        assert path.resolve().is_relative_to(purelib.resolve()), f"{path} is not the installed copy"
        assert not path.resolve().is_relative_to(REPO_ROOT), path
    assert paths[0] == purelib / "skillmeat_cache" / "__init__.py"
    assert paths[1] == purelib / "containers.py"
    assert paths[2] == purelib / "skillmeat_cache" / "migrations"

    db = tmp_path / "installed.db"
    result = _run([str(python), "-c", MIGRATE_CHECK, str(db)], cwd=elsewhere, env=env)
    assert result.stdout.strip() == skillmeat_cache.HEAD_REVISION
    assert not (tmp_path / ".skillmeat").exists(), "the default cache was touched"

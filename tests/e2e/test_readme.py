"""The README's promises: its example code runs, its first command line is the main job."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_first_lines_install_run_the_main_job_and_test():
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert len(block) == 2
    assert block[0].startswith("pip install -e") and "skillmeat-cache scan examples/projects" in block[0]
    assert block[1] == "pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\npytest\n" in ci


def test_main_job_command_on_the_embedded_default(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("SKILLMEAT_CACHE_URL", None)
    env.pop("SKILLMEAT_CACHE_ENV", None)
    cli = [sys.executable, "-m", "skillmeat_cache"]
    scan = subprocess.run([*cli, "scan", "examples/projects"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert scan.returncode == 0, scan.stderr
    assert "4 seen" in scan.stdout and "20 added" in scan.stdout
    listed = subprocess.run([*cli, "projects"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and "web-app" in listed.stdout and "4 projects" in listed.stdout
    assert (tmp_path / ".skillmeat" / "cache" / "cache.db").exists()


def test_python_example_runs(tmp_path):
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    env = {**os.environ, "HOME": str(tmp_path)}
    subprocess.run(
        [sys.executable, "-m", "skillmeat_cache", "--env", "dev", "migrate"], env=env, check=True, capture_output=True
    )
    check = code + (
        "\nwith container.unit_of_work() as uow:\n"
        "    p = uow.projects.get_by_path('/home/me/code/demo')\n"
        "    assert [a.name for a in uow.artifacts.list_for_project(p.id)] == ['pdf-tools']\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", check], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"

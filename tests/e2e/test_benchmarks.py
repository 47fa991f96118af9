"""The repository benchmark (``python -m benchmarks``) at its small size, one run.

No timing is asserted. What is: the harness runs every workload on a database built by
our migrations, both sides return the same answers (the harness compares them and
raises otherwise), and the report names every workload, with the SQLAlchemy-alone floor
for W3 and W6 only.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import psycopg
import pytest
from conftest import PG_ADMIN_URL, _pg_unavailable

from benchmarks.workloads import TARGETS, main


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_benchmark_runs_every_workload_and_reports_it(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg_url = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    if backend == "postgres":
        try:
            psycopg.connect(pg_url, connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            _pg_unavailable(str(exc).splitlines()[0])
    out = tmp_path / "results.json"
    args = ["--size", "small", "--runs", "1", "--backend", backend, "--json", str(out), "--pg-url", pg_url]

    try:
        main(args)  # exits 1 when a target fails, as most do at this size
    finally:
        gc.unfreeze()  # the harness freezes its heap; give the rest of the session its own back

    printed = capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    assert [(r["backend"], r["id"]) for r in results] == [(backend, w) for w in TARGETS]
    for r in results:
        assert r["ours"] > 0 and r["raw"] > 0 and len(r["ours_runs"]) == len(r["raw_runs"]) == 1
        assert r["ratio"] == pytest.approx(r["ours"] / r["raw"])
        assert (r["alone"] is not None) is (r["id"] in ("W3", "W6"))
        assert f"| {backend} | {r['id']} |" in printed
    assert f"{backend} W3 " in printed.split("SQLAlchemy alone (")[1]


@pytest.mark.slow
def test_the_api_benchmark_reports_every_target(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m benchmarks.api --quick``: both servers run, every row A1-A6 is printed
    (timings are not asserted: at this size the ratios are mostly framework overhead)."""
    from benchmarks.api import main as api_main

    api_main(["--quick", "--backend", "sqlite"])
    printed = capsys.readouterr().out
    rows = [line.split()[0] for line in printed.splitlines() if line[:1] == "A" and line[1:2].isdigit()]
    assert sorted(set(rows)) == ["A1", "A2", "A3", "A4", "A5", "A6"], printed
    assert "SkillMeat's shape" in printed and "miss 0" in printed and "err 0" in printed


@pytest.mark.slow
def test_the_api_benchmark_can_run_the_reads_alone(capsys: pytest.CaptureFixture[str]) -> None:
    """``--reads-only --requests N``: A1 and A2 (and the detail page), N requests a cell."""
    from benchmarks.api import main as api_main

    api_main(["--quick", "--backend", "sqlite", "--reads-only", "--requests", "3"])
    printed = capsys.readouterr().out
    rows = [line.split()[0] for line in printed.splitlines() if line[:1] == "A" and line[1:2].isdigit()]
    assert sorted(set(rows)) == ["A1", "A2"] and rows.count("A2") == 6, printed
    assert "GET /projects/{id}" in printed and "A3" not in printed

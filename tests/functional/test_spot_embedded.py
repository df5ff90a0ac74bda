"""Spot routes on the embedded backend: every tile runs in the local pool, the planned route
is recorded on each tile and shown by the report and the CLI, and the answer is the same
whichever route a job names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import scheduled
from tilefan.bootstrap import Config
from tilefan.domain.randgen import random_region
from tilefan.domain.records import Status
from tilefan.entrypoints.cli.main import main
from tilefan.pipeline.report import tile_report
from tilefan.pipeline.submit import submit_job

RAW = {"kind": "matmul", "a": {"shape": [70, 50]}, "b": {"shape": [50, 60]}, "seed": 3, "tile": 32}


@pytest.mark.parametrize("route", ["spot", "lambda", "auto"])
def test_a_job_routed_anywhere_runs_in_the_local_pool_with_its_route_recorded(tmp_path: Path, route: str) -> None:
    ports, runner = scheduled(Config(home=tmp_path / "home", workers=2, kernel="numpy"))
    out = tmp_path / "C.npy"
    record = submit_job(ports, {**RAW, "route": route, "out": str(out)})
    final = runner(record.job_id)
    assert final.status is Status.SUCCEEDED, final.error
    a = random_region(3, 0, "float64", (0, 70), (0, 50))
    b = random_region(3, 1, "float64", (0, 50), (0, 60))
    np.testing.assert_allclose(np.load(out), a @ b, rtol=1e-12, atol=1e-12)
    report = tile_report(ports, record.job_id)
    expected = "lambda" if route == "auto" else route  # small tiles fit a Lambda
    assert {row["route"] for row in report["tiles"]} == {expected}
    assert all(row["worker"].startswith("local-") for row in report["tiles"])
    assert report["summary"]["route_counts"] == report["summary"]["planned_routes"] == {expected: 6}
    assert report["summary"]["cost_estimate"][f"{expected}_tiles"] == 6


def test_the_cli_shows_routes_in_its_summary_and_its_dry_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TILEFAN_HOME", str(tmp_path / "home"))
    args = ["run", "atoms", "--grid", "16", "--atoms", "5", "--seed", "2", "--tile", "8", "--workers", "1"]
    assert main([*args, "--route", "spot"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("(8 tiles: 8 spot)"), first
    assert main([*args, "--dry-run", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["totals"]["routes"] == {"lambda": 8, "spot": 0}
    assert {t["route"] for t in manifest["tiles"]} == {"lambda"}
    assert main([*args, "--route", "sideways"]) == 2
    assert "--route: must be one of auto, lambda, spot" in capsys.readouterr().err

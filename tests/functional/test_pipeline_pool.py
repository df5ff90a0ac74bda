"""The embedded backend's process pool against the in-process steps.

A job run by the home's scheduler over a pool of worker processes must give the same bytes as
the same job run tile by tile in this process (matmul, and atoms with each kernel), and a
tile's bad-input error must come back from the worker process intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import run_job, scheduled
from tilefan.bootstrap import Config, embedded_ports
from tilefan.compute.kernel_choice import choose_atoms_kernel
from tilefan.domain import inline_tiles
from tilefan.domain.plan import plan
from tilefan.domain.records import Status
from tilefan.entrypoints.report.plan_table import time_here
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.report import tile_report
from tilefan.pipeline.submit import submit_job
from tilefan.settings import list_policy


def _pool(home: Path, kernel: str = "numpy") -> tuple[Ports, Any]:
    return scheduled(Config(home=home, workers=2, kernel=kernel))


def test_a_small_matmul_run_on_its_own_computes_its_tiles_in_this_process(tmp_path: Path) -> None:
    raw = {"kind": "matmul", "a": {"shape": "70x50"}, "b": {"shape": "50x60"}, "seed": 11, "tile": 16}
    ports, runner = _pool(tmp_path)
    record = submit_job(ports, raw)
    final = runner(record.job_id)
    assert final.status is Status.SUCCEEDED and final.tiles_done == 20
    workers = {row["worker"] for row in tile_report(ports, record.job_id)["tiles"]}
    assert workers == {f"local-{os.getpid()}"}  # no pool was started for 420 kflop


SMALL_ATOMS = {"kind": "atoms", "grid": 12, "atoms": {"count": 20, "seed": 1}, "tile": 6}


@pytest.mark.parametrize(("raw", "kernel"), [
    ({"kind": "matmul", "a": {"shape": "70x50"}, "b": {"shape": "50x60"}, "seed": 11, "tile": 16}, "numpy"),
    ({"kind": "add", "a": {"shape": "70x50"}, "b": {"shape": "70x50"}, "seed": 11, "tile": 16}, "numpy"),
    (SMALL_ATOMS, "numpy"),
    (SMALL_ATOMS, "compiled"),
])
def test_the_dry_runs_time_here_says_where_the_tiles_run(tmp_path: Path, raw: dict[str, Any], kernel: str) -> None:
    """The estimate and the scheduler decide where tiles run alike: in this process, or on
    the pool's workers (the tile report names the process that ran each tile)."""
    ports, runner = _pool(tmp_path, kernel)
    record = submit_job(ports, raw)
    here = time_here(plan(record.job_id, record.spec, list_policy()), record.spec, 2, kernel)
    final = runner(record.job_id)
    assert final.status is Status.SUCCEEDED, final.error
    workers = {row["worker"] for row in tile_report(ports, record.job_id)["tiles"]}
    assert (workers == {f"local-{os.getpid()}"}) is here.inline, (workers, here)


def test_pool_runner_matches_in_process_steps_bit_for_bit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Through the pool even though a matmul this small would run inline.
    monkeypatch.setattr(inline_tiles, "INLINE_MATMUL_FLOP", 0.0)
    raw = {"kind": "matmul", "a": {"shape": "70x50"}, "b": {"shape": "50x60"}, "seed": 11, "tile": 16}
    pool_ports, runner = _pool(tmp_path / "pool")
    record = submit_job(pool_ports, {**raw, "out": str(tmp_path / "pool.npy")})
    final = runner(record.job_id)
    assert final.status is Status.SUCCEEDED, final.error
    assert final.tiles_done == final.tiles_total == 20
    workers = {row["worker"] for row in tile_report(pool_ports, record.job_id)["tiles"]}
    assert f"local-{os.getpid()}" not in workers, "tiles should run in the pool's worker processes"

    local = embedded_ports(tmp_path / "local")
    expected = run_job(local, {**raw, "out": str(tmp_path / "local.npy")})
    got = np.load(tmp_path / "pool.npy")
    want = np.load(tmp_path / "local.npy")
    assert got.tobytes() == want.tobytes()
    assert final.result is not None and expected.result is not None
    assert final.result["checksums"] == expected.result["checksums"]


@pytest.mark.parametrize("kernel,raw", [
    ("numpy", {"grid": [12, 10, 8], "atoms": {"count": 50, "seed": 5}, "tile": [4, 5, 8]}),
    ("compiled", {"grid": [12, 10, 8], "atoms": {"count": 50, "seed": 5}, "tile": [4, 5, 8]}),
    # Big enough tiles that the pool's workers compute them on threads sharing the cores.
    ("compiled", {"grid": [40, 24, 64], "atoms": {"count": 400, "seed": 5}, "tile": [20, 24, 64]}),
])
def test_pool_runner_atoms_matches_in_process_steps_bit_for_bit(tmp_path: Path, kernel: str,
                                                                raw: dict[str, Any],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Through the pool even though a one-shot atoms job on the C kernel would run inline.
    monkeypatch.setattr(inline_tiles, "INLINE_ATOMS_C", False)
    raw = {"kind": "atoms", **raw, "precision": "float32"}
    pool_ports, runner = _pool(tmp_path / "pool", kernel)
    record = submit_job(pool_ports, {**raw, "field_out": str(tmp_path / "pool.npy")})
    final = runner(record.job_id)
    assert final.status is Status.SUCCEEDED, final.error
    workers = {row["worker"] for row in tile_report(pool_ports, record.job_id)["tiles"]}
    assert f"local-{os.getpid()}" not in workers, "tiles should run in the pool's worker processes"

    # The kernel the pool chose for this job, by the one rule (kernel_choice).
    atoms_kernel = choose_atoms_kernel(kernel)
    local = embedded_ports(tmp_path / "local")
    expected = run_job(local, {**raw, "field_out": str(tmp_path / "local.npy")}, atoms_kernel=atoms_kernel)
    assert np.load(tmp_path / "pool.npy").tobytes() == np.load(tmp_path / "local.npy").tobytes()
    assert final.result is not None and expected.result is not None
    for key in ("min_value", "min_index", "min_point"):
        assert final.result[key] == expected.result[key]


def test_pool_runner_reports_a_nan_input_as_invalid_input(tmp_path: Path) -> None:
    a = np.random.default_rng(6).standard_normal((40, 40))
    a[30, 2] = np.nan
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "A.npy", a)
    np.save(data / "B.npy", np.eye(40))
    ports, runner = _pool(tmp_path / "pool")
    record = submit_job(ports, {"kind": "matmul", "a": {"file": str(data / "A.npy")},
                                "b": {"file": str(data / "B.npy")}, "out": str(data / "C.npy"), "tile": 10})
    final = runner(record.job_id)
    assert final.status is Status.FAILED
    assert sorted(p.name for p in data.iterdir()) == ["A.npy", "B.npy"]  # no output, no partial file
    # The tile's InvalidSpecError must survive the trip back from the worker process, so
    # the user is told which input is bad (and the CLI exits 2, not 1).
    assert final.error is not None
    assert final.error["code"] == "invalid_input", final.error
    assert final.error["field"] == "a"
    assert "row 30, column 2" in final.error["message"]


def test_a_one_shot_atoms_run_on_the_c_kernel_starts_no_pool_and_gives_the_pools_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = {"kind": "atoms", "grid": [40, 24, 64], "atoms": {"count": 400, "seed": 5}, "tile": [20, 24, 64],
           "precision": "float32"}
    started: list[int] = []
    from tilefan.runtimes.embedded import worker_pool

    class CountedPool(worker_pool.WorkerPool):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            started.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(worker_pool, "WorkerPool", CountedPool)
    here_ports, here = _pool(tmp_path / "here", "compiled")
    record = submit_job(here_ports, {**raw, "field_out": str(tmp_path / "here.npy")})
    final = here(record.job_id)
    assert final.status is Status.SUCCEEDED, final.error
    assert started == []  # no pool: every tile ran in this process, on threads over every core
    workers = {row["worker"] for row in tile_report(here_ports, record.job_id)["tiles"]}
    assert workers == {f"local-{os.getpid()}"}

    monkeypatch.setattr(inline_tiles, "INLINE_ATOMS_C", False)
    pool_ports, pooled = _pool(tmp_path / "pool", "compiled")
    other = submit_job(pool_ports, {**raw, "field_out": str(tmp_path / "pool.npy")})
    assert pooled(other.job_id).status is Status.SUCCEEDED
    assert started == [1]
    assert np.load(tmp_path / "here.npy").tobytes() == np.load(tmp_path / "pool.npy").tobytes()
    pooled_result = pool_ports.jobs.get_job(other.job_id).result
    assert final.result is not None and pooled_result is not None
    for key in ("min_value", "min_index", "min_point"):
        assert final.result[key] == pooled_result[key]


def test_a_one_shot_atoms_run_on_the_numpy_kernel_keeps_the_pool(tmp_path: Path) -> None:
    # NumPy's kernel holds the GIL between its array operations: only processes use every core.
    raw = {"kind": "atoms", "grid": [12, 10, 8], "atoms": {"count": 50, "seed": 5}, "tile": [4, 5, 8]}
    ports, runner = _pool(tmp_path, "numpy")
    record = submit_job(ports, raw)
    assert runner(record.job_id).status is Status.SUCCEEDED
    workers = {row["worker"] for row in tile_report(ports, record.job_id)["tiles"]}
    assert f"local-{os.getpid()}" not in workers

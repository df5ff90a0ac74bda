"""Calibrate the dry-run's "time here" (``tilefan.domain.local_estimate``) and check it.

Runs small jobs through ``tilefan run`` (as a user would) and reads each job's report to
measure this machine's rates: the fixed cost of a tile (the slope of wall time from 16 to
64 tiny tiles), the data rate (an add), BLAS on one core (a matmul), the atoms kernels,
verification (the merge of a verified add) and the pool's start-up (wall time not spent
planning, in tiles or in the merge). Each is the best of ``--repeat`` runs; they are
the defaults of ``LocalRates``. Then the three ``make run`` jobs are planned and run, and
the estimate (with the default rates, and with the rates just measured) is printed beside
the measured wall time, with two bigger jobs:

    PYTHONPATH=. .venv/bin/python benchmarks/time_here.py --repeat 3

Both atoms kernels are measured (NumPy's with ``TILEFAN_KERNEL=numpy``, the C one with
``compiled``); the jobs compared at the end use ``TILEFAN_KERNEL`` (default ``auto``: the
C kernel when built, as ``make run`` has it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tilefan.bootstrap import embedded_ports, load_config
from tilefan.compute.kernel_choice import choose_atoms_kernel
from tilefan.compute.threads import usable_cpus
from tilefan.domain.kernels import atoms_potential
from tilefan.domain.local_estimate import LocalRates, estimate_here, makespan
from tilefan.domain.plan import plan
from tilefan.pipeline.report import tile_report
from tilefan.pipeline.submit import admit

TILEFAN = str(Path(sys.executable).with_name("tilefan"))
MAKE_RUN = {
    "matmul": "matmul --shape-a 3000x2000 --shape-b 2000x1000 --seed 7 --verify --out {d}/C.npy",
    "add": "add --shape-a 4096x4096 --shape-b 4096x4096 --seed 7 --verify --out {d}/S.npy",
    "atoms": "atoms --grid 128 --atoms 1000 --seed 3 --verify --field-out {d}/phi.npy",
}


def run(args: str, env: dict[str, str], out_dir: str) -> dict[str, Any]:
    """One ``tilefan run --json``; its final record and its report."""
    done = subprocess.run([TILEFAN, "run", *args.format(d=out_dir).split(), "--json"], env=env,
                          capture_output=True, text=True, check=True)
    record = json.loads(done.stdout)
    home = Path(env["TILEFAN_HOME"])
    return {"record": record, "report": tile_report(embedded_ports(home), record["job_id"])}


def durations(job: dict[str, Any]) -> list[float]:
    return [t["duration_s"] for t in job["report"]["tiles"] if t["status"] == "done"]


def outside_tiles(job: dict[str, Any], workers: int) -> float:
    """Wall time not spent planning, in tiles (as scheduled) or in the merge: the pool's start."""
    t = job["record"]["timings"]
    return t["wall_s"] - t.get("plan_s", 0.0) - makespan(sorted(durations(job), reverse=True), workers) \
        - t.get("reduce_s", 0.0)


def calibrate(env: dict[str, str], out_dir: str, repeat: int, workers: int, cores: int) -> LocalRates:
    """This machine's rates from whole jobs, each the best of ``repeat``. Tiles that run in
    the calling process on every core (a small matmul, atoms on the C kernel) are measured
    there and their rate divided by the cores, as the estimate multiplies it back."""

    def best(args: str, measure: Any, pick: Any = max, job_env: dict[str, str] = env) -> float:
        return float(pick(measure(run(args, job_env, out_dir)) for _ in range(repeat)))

    def io_rate(job: dict[str, Any]) -> float:
        tiles = [t for t in job["report"]["tiles"] if t["status"] == "done"]
        return statistics.median(((t["bytes_read"] or 0) + (t["bytes_written"] or 0)) / t["duration_s"]
                                 for t in tiles)

    # Tile durations cover the tile's own work; its fixed cost (the job read, the store's
    # start and completion writes, the dispatch) lies outside them: the slope of wall time
    # over tile count, from 16 and 64 tiny tiles, gives it.
    def tiny(side: int) -> tuple[float, float]:
        job = run(f"add --shape-a {side}x{side} --shape-b {side}x{side} --tile 16 --seed 1", env, out_dir)
        return job["record"]["timings"]["wall_s"], sum(durations(job))

    small = min((tiny(64) for _ in range(repeat)), key=lambda w: w[0])
    large = min((tiny(128) for _ in range(repeat)), key=lambda w: w[0])
    overhead = max(((large[0] - small[0]) * workers - (large[1] - small[1])) / 48, 0.0)
    data = best("add --shape-a 2048x2048 --shape-b 2048x2048 --tile 512 --seed 1", io_rate) / 1e6
    # Above the inline limit, so its tiles run on the pool's one-core workers; stored inputs,
    # read as views of their mapped files, so a tile's time is its GEMM.
    rng = np.random.default_rng(0)
    np.save(f"{out_dir}/GA.npy", rng.standard_normal((4096, 2048)))
    np.save(f"{out_dir}/GB.npy", rng.standard_normal((2048, 2048)))
    pool_matmul = f"matmul --a {out_dir}/GA.npy --b {out_dir}/GB.npy --tile 1024 --out {out_dir}/GC.npy"

    def gemm(job: dict[str, Any]) -> float:
        return 2 * 4096 * 2048 * 2048 / len(durations(job)) / statistics.median(durations(job))

    gemm_gflops = best(pool_matmul, gemm) / 1e9

    def atoms_rate(grid: int, atoms: int, per_core: int) -> Callable[[dict[str, Any]], float]:
        def rate(job: dict[str, Any]) -> float:
            return grid**3 * atoms / len(durations(job)) / statistics.median(durations(job)) / per_core
        return rate

    rates: dict[str, float] = {}
    for precision in ("float64", "float32"):
        # NumPy's kernel runs on the pool (one core a tile); the C kernel in this process,
        # its threads on every core, on tiles of about 0.1 s at least (smaller ones show
        # the threads' start more than the kernel).
        numpy_job = f"atoms --grid 64 --atoms 500 --tile 32 --seed 3 --precision {precision}"
        rates[f"numpy_{precision[-2:]}"] = best(numpy_job, atoms_rate(64, 500, 1),
                                                job_env={**env, "TILEFAN_KERNEL": "numpy"}) / 1e9
        grid = 128 if precision == "float64" else 256
        c_job = f"atoms --grid {grid} --atoms 1000 --tile {grid // 2} --seed 3 --precision {precision}"
        try:
            rates[f"c_{precision[-2:]}"] = best(c_job, atoms_rate(grid, 1000, cores),
                                                job_env={**env, "TILEFAN_KERNEL": "compiled"}) / 1e9
        except subprocess.CalledProcessError:  # the C kernel is not built here: keep the default
            rates[f"c_{precision[-2:]}"] = getattr(LocalRates(), f"c_f{precision[-2:]}_gpairs")

    def verify_rate(job: dict[str, Any]) -> float:
        return 3 * 2048 * 2048 * 8 / job["record"]["timings"]["reduce_s"]

    verify = best("add --shape-a 2048x2048 --shape-b 2048x2048 --tile 512 --seed 1 --verify", verify_rate) / 1e6
    pool = best("add --shape-a 1024x1024 --shape-b 1024x1024 --tile 512 --seed 1",
                lambda j: outside_tiles(j, workers), min)
    return LocalRates(pool_start_s=max(pool, 0.0), tile_overhead_s=overhead, gemm_gflops=gemm_gflops,
                      numpy_f64_gpairs=rates["numpy_64"], numpy_f32_gpairs=rates["numpy_32"],
                      c_f64_gpairs=rates["c_64"], c_f32_gpairs=rates["c_32"], data_mb_s=data, verify_mb_s=verify)


# Bigger jobs than make run's, each on the other side of a choice the estimate follows.
MORE = {
    "atoms 256³ float32": "atoms --grid 256 --atoms 1000 --seed 3 --precision float32",
    "matmul 4096² (pool)": "matmul --shape-a 4096x4096 --shape-b 4096x4096 --seed 7 --out {d}/C4.npy",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tilefan-time-here-") as tmp:
        env = {**os.environ, "TILEFAN_HOME": f"{tmp}/home", "TILEFAN_KERNEL": os.environ.get("TILEFAN_KERNEL", "auto")}
        config = load_config(env)
        cores = usable_cpus()
        print(f"load average {os.getloadavg()[0]:.1f} on {cores} cores, {config.workers} workers, "
              f"atoms kernel {env['TILEFAN_KERNEL']}")
        measured = calibrate(env, tmp, args.repeat, config.workers, cores)
        print(f"measured rates: {measured}")
        print(f"default rates:  {LocalRates()}")
        print("| job | tiles | where | estimate (defaults) | estimate (measured rates) | measured wall: best (runs) |")
        print("|---|---|---|---|---|---|")
        compiled = choose_atoms_kernel(env["TILEFAN_KERNEL"]) is not atoms_potential
        for name, cli in {**MAKE_RUN, **MORE}.items():
            raw = _raw(cli, tmp)
            spec = admit(embedded_ports(Path(env["TILEFAN_HOME"])), raw, config.limits, config.route_policy)
            the_plan = plan("dry-run", spec, config.route_policy)
            ours = estimate_here(the_plan, spec, config.workers, LocalRates(), compiled=compiled, cores=cores)
            calibrated = estimate_here(the_plan, spec, config.workers, measured, compiled=compiled, cores=cores)
            walls = [run(cli, env, tmp)["record"]["timings"]["wall_s"] for _ in range(args.repeat)]
            where = f"here, {ours.cores} cores" if ours.inline else f"pool of {ours.workers}"
            print(f"| {name} | {len(the_plan.tiles)} | {where} | {ours.total_s:.2f} s | {calibrated.total_s:.2f} s | "
                  f"{min(walls):.2f} s ({', '.join(f'{w:.2f}' for w in walls)}) |")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")


def _raw(cli: str, out_dir: str) -> dict[str, Any]:
    """The spec ``tilefan run`` builds from the make-run flags."""
    from tilefan.entrypoints.cli.main import build_parser
    from tilefan.entrypoints.cli.run import raw_spec

    parsed = build_parser().parse_args(["run", *cli.format(d=out_dir).split()])
    return raw_spec(parsed)


if __name__ == "__main__":
    main()


"""Calibrate the dry-run's "time here" (``tilefan.domain.local_estimate``) and check it.

Runs small jobs through ``tilefan run`` (as a user would) and reads each job's report to
measure this machine's rates: the fixed cost of a tile (the slope of wall time from 16 to
64 tiny tiles), the data rate (an add), BLAS on one core (a matmul), the atoms kernels,
verification (the merge of a verified add) and the pool's start-up (wall time not spent
planning, in tiles or in the merge). Each is the best of ``--repeat`` runs; they are
the defaults of ``LocalRates``. Then the three ``make run`` jobs are planned and run, and
the estimate (with the default rates, and with the rates just measured) is printed beside
the measured wall time and the estimate the dry run used to print:

    PYTHONPATH=. .venv/bin/python benchmarks/time_here.py --repeat 3

The atoms kernel is the NumPy one unless ``TILEFAN_KERNEL`` says otherwise, as in
``make run`` (whose environment has no numba).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tilefan.bootstrap import embedded_ports, load_config
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


def calibrate(env: dict[str, str], out_dir: str, repeat: int, workers: int) -> LocalRates:
    """This machine's rates from whole jobs, each the best of ``repeat``."""

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
    matmul = "matmul --shape-a 1024x1024 --shape-b 1024x1024 --tile 512 --seed 1"
    # Tiles big enough that the GEMM, not generating their blocks, takes most of their time.
    big_matmul = "matmul --shape-a 2048x2048 --shape-b 2048x2048 --tile 1024 --seed 1"

    def gemm(job: dict[str, Any]) -> float:
        tiles = [t for t in job["report"]["tiles"] if t["status"] == "done"]
        flops = 2 * 2048**3 / len(tiles)
        return statistics.median(
            flops / max(t["duration_s"] - ((t["bytes_read"] or 0) + (t["bytes_written"] or 0)) / (data * 1e6), 1e-6)
            for t in tiles)

    gemm_gflops = best(big_matmul, gemm) / 1e9
    atoms_job = "atoms --grid 64 --atoms 500 --tile 32 --seed 3"

    def atoms_rate(job: dict[str, Any]) -> float:
        return 10 * 64**3 * 500 / len(durations(job)) / statistics.median(durations(job))

    atoms_numpy = best(atoms_job, atoms_rate, job_env={**env, "TILEFAN_KERNEL": "numpy"}) / 1e9
    try:
        atoms_compiled = best(atoms_job, atoms_rate, job_env={**env, "TILEFAN_KERNEL": "compiled"}) / 1e9
    except subprocess.CalledProcessError:  # no numba here
        atoms_compiled = LocalRates().atoms_compiled_gflops

    def verify_rate(job: dict[str, Any]) -> float:
        return 3 * 2048 * 2048 * 8 / job["record"]["timings"]["reduce_s"]

    verify = best("add --shape-a 2048x2048 --shape-b 2048x2048 --tile 512 --seed 1 --verify", verify_rate) / 1e6
    pool = best(matmul, lambda j: outside_tiles(j, workers), min)
    return LocalRates(pool_start_s=max(pool, 0.0), tile_overhead_s=overhead, gemm_gflops=gemm_gflops,
                      atoms_gflops=atoms_numpy, atoms_compiled_gflops=atoms_compiled, data_mb_s=data,
                      verify_mb_s=verify)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tilefan-time-here-") as tmp:
        env = {**os.environ, "TILEFAN_HOME": f"{tmp}/home", "TILEFAN_KERNEL": os.environ.get("TILEFAN_KERNEL",
                                                                                             "numpy")}
        config = load_config(env)
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, {config.workers} workers, "
              f"atoms kernel {env['TILEFAN_KERNEL']}")
        measured = calibrate(env, tmp, args.repeat, config.workers)
        print(f"measured rates: {measured}")
        print(f"default rates:  {LocalRates()}")
        print("job     tiles  old estimate  estimate (defaults)  estimate (measured)  measured wall (best)")
        for name, cli in MAKE_RUN.items():
            raw = _raw(cli, tmp)
            spec = admit(embedded_ports(Path(env["TILEFAN_HOME"])), raw, config.limits, config.route_policy)
            the_plan = plan("dry-run", spec, config.route_policy)
            old = sum(t.spot_s for t in the_plan.tiles) / config.workers
            compiled = env["TILEFAN_KERNEL"] == "compiled"
            ours = estimate_here(the_plan, spec, config.workers, LocalRates(), compiled=compiled)
            calibrated = estimate_here(the_plan, spec, config.workers, measured, compiled=compiled)
            walls = [run(cli, env, tmp)["record"]["timings"]["wall_s"] for _ in range(args.repeat)]
            print(f"{name:7} {len(the_plan.tiles):5}  {old:10.2f} s  {ours.total_s:17.2f} s  "
                  f"{calibrated.total_s:17.2f} s  {min(walls):18.2f} s   (runs: "
                  + ", ".join(f"{w:.2f}" for w in walls) + ")")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")


def _raw(cli: str, out_dir: str) -> dict[str, Any]:
    """The spec ``tilefan run`` builds from the make-run flags."""
    from tilefan.entrypoints.cli.main import build_parser
    from tilefan.entrypoints.cli.run import raw_spec

    parsed = build_parser().parse_args(["run", *cli.format(d=out_dir).split()])
    return raw_spec(parsed)


if __name__ == "__main__":
    main()


"""Where a whole ``tilefan run atoms`` spends its wall time, from the job's own records.

    .venv/bin/python benchmarks/atoms_timeline.py --grid 256 --precision float32 --rounds 3

Each round runs ``tilefan run atoms --grid N --atoms 1000 --seed 3`` as a fresh process on a
fresh home, then reads the job and its tiles back from the home's store and splits the
process's wall time into:

- ``start``: process start to the job's submission (interpreter, imports, spec, store);
- ``plan``: submission to the first tile's start (planning, staging, the pool's start);
- ``tiles``: first tile start to last tile end, with the workers' idle share (the time a
  worker spent between two of its tiles: dispatch, store writes, reading inputs);
- ``end``: last tile end to process exit (reduce, the pool's stop, the report, exit);
- ``cpu``: CPU seconds of the process and its pool's workers, against ``kernel_cpu``, the
  pairs at the C kernel's one-thread rate per CPU-second measured here (CPU time, which a
  loaded machine inflates far less than wall time): ``cpu_overhead`` is the work that is
  not the kernel.

``limit_s`` is the best kernel on every core over the whole grid (``atoms_hardware``), in
the same round; ``whole_pct`` and ``tiles_pct`` are the whole run's and the tile phase's
speed against it. ``--source DIR`` times another source tree's package instead (a
baseline exported with ``git archive REV tilefan | tar -x -C DIR``, its C kernel copied in).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tilefan.bootstrap import embedded_ports  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from atoms_hardware import _limit, _table, child_env  # noqa: E402

from tilefan.compute import ckernel, threads  # noqa: E402


def one_round(tilefan: str, grid: int, atoms: int, precision: str, extra: list[str],
              env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        cmd = [tilefan, "run", "atoms", "--grid", str(grid), "--atoms", str(atoms), "--seed", "3",
               "--precision", precision, "--json", *extra]
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time()
        out = subprocess.run(cmd, env={**env, "TILEFAN_HOME": home}, check=True, capture_output=True,
                             cwd=home, text=True).stdout
        t1 = time.time()
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        record = json.loads(out)
        results = embedded_ports(Path(home)).jobs.tile_results(record["job_id"])
    timings = record["timings"]
    first = min(r.started_at for r in results)
    last = max(r.finished_at for r in results)
    by_worker: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in results:
        by_worker[r.worker].append((r.started_at, r.finished_at))
    idle = 0.0
    for spans in by_worker.values():
        spans.sort()
        idle += sum(max(0.0, b[0] - a[1]) for a, b in itertools.pairwise(spans))
    compute = sum(r.finished_at - r.started_at for r in results)
    return {
        "wall": t1 - t0,
        # The process and its pool's workers (reaped by it, so counted in its children's time).
        "cpu": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "start": timings["submitted_at"] - t0,
        "plan": first - timings["submitted_at"],
        "tiles": last - first,
        "end": t1 - last,
        "tile_s_mean": compute / len(results),
        "worker_gaps": idle,
        "tiles_n": float(len(results)),
        "workers": float(len(by_worker)),
    }


def _cpu_rate(grid: int, atoms: int, precision: str) -> float:
    """G pairs per CPU-second of the C kernel on one thread (CPU time: load does not bias it)."""
    threads.configure(threads.ComputeBudget(1))
    table = _table(atoms, grid)
    region = ((0, max(1, grid // 16)), (0, grid), (0, grid))
    cpu = time.thread_time()
    ckernel.atoms_potential_c(table, (0.0, 0.0, 0.0), 1.0, 0.0, region, precision)
    rate = region[0][1] * grid * grid * atoms / (time.thread_time() - cpu) / 1e9
    threads.configure(threads.ComputeBudget(threads.usable_cpus()))
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=256)
    parser.add_argument("--atoms", type=int, default=1000)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tilefan", default=str(Path(sys.executable).with_name("tilefan")))
    parser.add_argument("--source", help="run another source tree's package (git archive REV tilefan | tar -x -C DIR)")
    parser.add_argument("extra", nargs="*", help="more `tilefan run atoms` options, after --")
    args = parser.parse_args()
    env = child_env(args.source)
    rows = []
    for _ in range(args.rounds):
        limit = _limit(args.grid, args.atoms, args.precision)  # G pairs/s, interleaved with the runs
        row = one_round(args.tilefan, args.grid, args.atoms, args.precision, args.extra, env)
        pairs = args.grid**3 * args.atoms / 1e9
        row["limit_s"] = pairs / limit
        row["whole_pct"] = 100 * row["limit_s"] / row["wall"]
        row["tiles_pct"] = 100 * row["limit_s"] / row["tiles"]
        row["kernel_cpu"] = pairs / _cpu_rate(args.grid, args.atoms, args.precision)
        row["cpu_overhead"] = row["cpu"] - row["kernel_cpu"]
        rows.append(row)
    print(f"{args.grid}³ × {args.atoms} atoms, {args.precision}, median of {args.rounds}; "
          f"load {os.getloadavg()[0]:.1f}")
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(f"  {key:12s} {statistics.median(values):8.3f}   ({', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()

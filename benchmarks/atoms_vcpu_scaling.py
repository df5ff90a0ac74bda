"""How much each CPU past the first adds to the C atoms kernel: the efficiency factor the
cost model multiplies into the Lambda atoms rate (``routing.RoutePolicy.atoms_thread_efficiency``).

One region is computed by the shipped kernel (``ckernel.atoms_potential_c``, threads over
slabs) with a compute budget of one thread, then of as many threads as the process may
use CPUs (``tilefan.compute.threads``). One and N threads alternate, round after round, so
load from other work hits both alike; the best round of each is kept. The N-thread result
must equal the one-thread result exactly. Prints, per precision, the rates, the speed-up
and the efficiency per added CPU, (speed-up - 1) / (N - 1).

    make kernel
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/atoms_vcpu_scaling.py --rounds 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tilefan.compute import ckernel, threads
from tilefan.domain.randgen import random_atoms
from tilefan.domain.spec.parse import RandomAtoms
from tilefan.domain.tiling import Region


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=64)
    parser.add_argument("--atoms", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if ckernel.load() is None:
        raise SystemExit("the C kernel is not built: run make kernel")
    cpus = threads.usable_cpus()
    n = args.grid
    table = random_atoms(RandomAtoms(count=args.atoms, seed=1), (n, n, n), (0.0, 0.0, 0.0), 1.0)
    region: Region = ((0, n), (0, n), (0, n))
    pairs = n ** 3 * args.atoms
    print(f"{cpus} CPUs, region {n}³ × {args.atoms:,} atoms, best of {args.rounds} alternating rounds")
    print("| precision | 1 thread, G pairs/s | threads, G pairs/s | speed-up | efficiency per added CPU |")
    print("|---|---|---|---|---|")
    for precision in ("float64", "float32"):
        best = {1: float("inf"), cpus: float("inf")}
        results: dict[int, np.ndarray] = {}
        for _ in range(args.rounds):
            for count in (1, cpus):
                threads.configure(threads.ComputeBudget(count))
                start = time.perf_counter()
                results[count] = ckernel.atoms_potential_c(table, (0.0, 0.0, 0.0), 1.0, 0.0, region, precision)
                best[count] = min(best[count], time.perf_counter() - start)
        np.testing.assert_array_equal(results[cpus], results[1], strict=True)
        speedup = best[1] / best[cpus]
        efficiency = (speedup - 1) / (cpus - 1) if cpus > 1 else float("nan")
        print(f"| {precision} | {pairs / best[1] / 1e9:.2f} | {pairs / best[cpus] / 1e9:.2f} | "
              f"{speedup:.2f}× | {efficiency:.2f} |")


if __name__ == "__main__":
    main()

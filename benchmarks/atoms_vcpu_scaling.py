"""How much each CPU past the first adds to the C atoms kernel: the efficiency factor the
cost model multiplies into the Lambda atoms rate (``routing.RoutePolicy.atoms_thread_efficiency``).

One region is computed by one thread, then split into as many slabs (along its first axis)
as the process may use CPUs and computed by that many Python threads (the kernel is a
ctypes call, which releases the GIL). One and N threads alternate, round after round, so
load from other work hits both alike; the best round of each is kept. The N-thread result
must equal the one-thread result exactly. Prints, per precision, the rates, the speed-up
and the efficiency per added CPU, (speed-up - 1) / (N - 1).

    make kernel
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/atoms_vcpu_scaling.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from tilefan.domain import ckernel
from tilefan.domain.randgen import random_atoms
from tilefan.domain.spec import RandomAtoms
from tilefan.domain.tiling import Region, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=64)
    parser.add_argument("--atoms", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    kernel = ckernel.load()
    if kernel is None:
        raise SystemExit("the C kernel is not built: run make kernel")
    cpus = len(os.sched_getaffinity(0))
    n = args.grid
    grid = (n, n, n)
    table = random_atoms(RandomAtoms(args.atoms, 1), grid, (0.0, 0.0, 0.0), 1.0)
    region = ((0, n), (0, n), (0, n))
    slabs: list[Region] = [((i0, i1), (0, n), (0, n)) for i0, i1 in split(n, -(-n // cpus))]
    pairs = n ** 3 * args.atoms
    print(f"{cpus} CPUs, region {n}³ × {args.atoms:,} atoms, best of {args.rounds} alternating rounds")
    print("| precision | 1 thread, G pairs/s | threads, G pairs/s | speed-up | efficiency per added CPU |")
    print("|---|---|---|---|---|")
    with ThreadPoolExecutor(cpus) as pool:
        for precision in ("float64", "float32"):
            one, many = measure(kernel, table, region, slabs, precision, pool, args.rounds)
            speedup = one / many
            efficiency = (speedup - 1) / (cpus - 1) if cpus > 1 else float("nan")
            print(f"| {precision} | {pairs / one / 1e9:.2f} | {pairs / many / 1e9:.2f} | "
                  f"{speedup:.2f}× | {efficiency:.2f} |")


def measure(kernel: Any, table: np.ndarray, region: Region, slabs: list[Region], precision: str,
            pool: ThreadPoolExecutor, rounds: int) -> tuple[float, float]:
    """Best seconds of one thread over ``region`` and of the pool over its ``slabs``,
    alternating; the two results must be identical."""
    def one() -> np.ndarray:
        return np.asarray(kernel(table, (0.0, 0.0, 0.0), 1.0, 0.0, region, precision))

    def many() -> np.ndarray:
        parts = pool.map(lambda s: kernel(table, (0.0, 0.0, 0.0), 1.0, 0.0, s, precision), slabs)
        return np.concatenate(list(parts), axis=0)

    best = [float("inf"), float("inf")]
    results: list[np.ndarray] = [np.empty(0), np.empty(0)]
    for _ in range(rounds):
        for i, fn in enumerate((one, many)):
            start = time.perf_counter()
            results[i] = fn()
            best[i] = min(best[i], time.perf_counter() - start)
    np.testing.assert_array_equal(results[1], results[0], strict=True)
    return best[0], best[1]

if __name__ == "__main__":
    main()

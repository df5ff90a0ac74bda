"""The cost model's rates as this machine measures them, on one thread.

- the import a fresh tile Lambda does before its first tile (``import app``: NumPy, boto3,
  Powertools, the handlers), median over fresh interpreters, less a bare interpreter;
- the BLAS matmul rate in GFLOP/s for a tile-shaped product (a 1024-row panel of A times a
  1024-column panel of B over k = 4096), float32 and float64;
- the C atoms kernel's AVX2+FMA build in G pairs/s, float32 and float64.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/cost_calibration.py

docs/cost-model.md compares these with the planner's rates (``tilefan/domain/routing.py``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def fresh(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    imports = [fresh("import app") - fresh("pass") for _ in range(args.rounds)]
    print(f"import app in a fresh interpreter: median {statistics.median(imports):.2f} s "
          f"(min {min(imports):.2f}, max {max(imports):.2f})")

    rng = np.random.default_rng(0)
    m, k = 1024, 4096
    for dtype in ("float32", "float64"):
        a = rng.random((m, k)).astype(dtype)
        b = rng.random((k, m)).astype(dtype)
        a @ b  # warm-up
        spent = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            a @ b
            spent.append(time.perf_counter() - start)
        print(f"matmul {m}x{k} @ {k}x{m} {dtype}: {2 * m * m * k / statistics.median(spent) / 1e9:.1f} GFLOP/s")

    from tilefan.compute import ckernel

    fn = ckernel.load(use_level=2)
    if fn is None:
        raise SystemExit("build the C kernel first: make kernel")
    table = np.column_stack([rng.uniform(0.0, 10.0, (1000, 3)), rng.normal(size=1000)])
    region = ((0, 64),) * 3
    for precision in ("float32", "float64"):
        fn(table, (0.05, 0.05, 0.05), 0.1, 0.0, region, precision)
        spent = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            fn(table, (0.05, 0.05, 0.05), 0.1, 0.0, region, precision)
            spent.append(time.perf_counter() - start)
        pairs = 64**3 * 1000
        print(f"C atoms kernel, AVX2+FMA build, {precision}: {pairs / statistics.median(spent) / 1e9:.2f} G pairs/s")


if __name__ == "__main__":
    main()

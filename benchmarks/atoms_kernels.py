"""The atoms kernels side by side on one thread: NumPy, the C kernel that ships in the
Lambda package (at each build level this CPU runs) and numba's.

Each contender computes the same tile in this process, interleaved round by round after
a warm-up (numba's compile is excluded here; its load time is measured apart, in fresh
processes, as is the C kernel's). Reports the median rate in G atom–point pairs/s and the
ratio to NumPy. The library must be built first (``make kernel``).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/atoms_kernels.py [--edge 64] [--rounds 5]

``--baseline LIB`` also times another build of the library (e.g. one compiled from an
earlier revision's ``atoms_kernel.c``) at each level, in the same rounds: one of this
checkout's calling convention (``ckernel.ABI``), or one of an earlier convention (version 2,
or none: no scratch argument), which is called here as it was then, on one thread.

``--whole`` instead times whole ``tilefan run atoms --grid 256 --atoms 1000`` processes on
the embedded backend (the process pool, both cores): with the C kernel (this checkout),
with numba's (a copy of the package without the C library) and with NumPy's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def load_time(statement: str, rounds: int) -> float:
    """Median wall time of a fresh interpreter running ``statement`` minus an empty one."""
    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        return time.perf_counter() - start

    base = "import numpy"
    return statistics.median(run(f"{base}; {statement}") - run(base) for _ in range(rounds))


def _older_build(path: Path, level: int) -> Callable[..., np.ndarray]:
    """A library of an earlier calling convention, called as ckernel.py called it then, on
    this thread: before ``tilefan_kernel_abi`` (13 arguments, no scratch) or version 2 (the
    scratch before ``out``, at least one row of it)."""
    import ctypes

    from tilefan.compute import ckernel
    from tilefan.domain.kernels import grid_axes

    lib = ctypes.CDLL(str(path))
    abi = lib.tilefan_kernel_abi() if hasattr(lib, "tilefan_kernel_abi") else None
    if abi not in (None, 2):
        raise SystemExit(f"{path} speaks calling convention {abi}, which this benchmark does not call")
    fns = {}  # bound once, outside the timed calls
    for precision, real in (("float32", ctypes.c_float), ("float64", ctypes.c_double)):
        fn = getattr(lib, f"tilefan_phi_f{8 * np.dtype(precision).itemsize}_l{level}")
        fn.restype = None
        scratch_args = [] if abi is None else [ctypes.c_void_p, ctypes.c_ssize_t]
        fn.argtypes = ([ctypes.c_void_p, ctypes.c_ssize_t] * 3 + [ctypes.c_void_p] * 4 + [ctypes.c_ssize_t, real]
                       + scratch_args + [ctypes.c_void_p])
        fns[precision] = fn

    def run(table: np.ndarray, origin: tuple[float, float, float], spacing: float, softening: float,
            region: tuple[tuple[int, int], ...], precision: str) -> np.ndarray:
        xs, ys, zs = grid_axes(origin, spacing, region, precision)
        phi = np.zeros((len(xs), len(ys), len(zs)), dtype=precision)
        ax, ay, az, ae = (np.ascontiguousarray(row) for row in table.T.astype(precision))
        eps2 = float(np.asarray(softening**2, dtype=precision))
        args = [xs.ctypes.data, len(xs), ys.ctypes.data, len(ys), zs.ctypes.data, len(zs), ax.ctypes.data,
                ay.ctypes.data, az.ctypes.data, ae.ctypes.data, len(ae), eps2]
        if abi is not None:
            scratch = np.empty(max(ckernel.SCRATCH_BYTES // phi.dtype.itemsize, len(zs)), dtype=precision)
            args += [scratch.ctypes.data, len(scratch)]
        fns[precision](*args, phi.ctypes.data)
        return phi

    return run


def whole(rounds: int) -> None:
    pairs = 256**3 * 1000
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"C kernel": ROOT, "NumPy kernel": ROOT}
        for precision in ("float32", "float64"):
            cmd = [sys.executable, "-m", "tilefan.entrypoints.cli.main", "run", "atoms", "--grid", "256", "--atoms",
                   "1000", "--seed", "3", "--precision", precision]
            times: dict[str, list[float]] = {name: [] for name in trees}
            for round_ in range(rounds + 1):  # the first round warms caches and is dropped
                for name, tree in trees.items():
                    env = {**os.environ, "PYTHONPATH": str(tree), "TILEFAN_HOME": str(Path(tmp) / "home"),
                           "TILEFAN_KERNEL": "numpy" if name == "NumPy kernel" else "compiled"}
                    start = time.perf_counter()
                    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=tmp)
                    if round_:
                        times[name].append(time.perf_counter() - start)
            for name, spent in times.items():
                median = statistics.median(spent)
                print(f"| {precision} | {name} | {median:.2f} s | {pairs / median / 1e9:.2f} G pairs/s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edge", type=int, default=64)
    parser.add_argument("--atoms", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--whole", action="store_true", help="whole tilefan runs on the embedded backend")
    parser.add_argument("--baseline", type=Path, help="another build of the C library to time alongside")
    args = parser.parse_args()
    if args.whole:
        whole(args.rounds)
        return

    from atoms_hardware import _numba_kernel  # numba's loop, as tilefan shipped it, when numba is importable

    from tilefan.compute import ckernel, threads
    from tilefan.domain import kernels

    threads.configure(threads.ComputeBudget(1))  # per-thread rates: every contender on one core

    best = ckernel.level()
    if best == 0:
        raise SystemExit("build the C kernel first: make kernel")
    rng = np.random.default_rng(3)
    table = np.column_stack([rng.uniform(0.0, 10.0, (args.atoms, 3)), rng.normal(size=args.atoms)])
    region = ((0, args.edge),) * 3
    pairs = args.edge**3 * args.atoms
    contenders: dict[str, Callable[..., np.ndarray]] = {"NumPy kernel": kernels.atoms_potential}
    names = {1: "x86-64 baseline", 2: "AVX2+FMA", 3: "AVX-512"}
    for level in range(1, best + 1):
        fn = ckernel.load(use_level=level)
        assert fn is not None
        contenders[f"C kernel, {names[level]} build"] = fn
        if args.baseline is not None:
            old = ckernel.load(args.baseline, use_level=level) or _older_build(args.baseline, level)
            contenders[f"baseline C kernel, {names[level]} build"] = old
    fast = _numba_kernel()
    if fast is not None:
        contenders["numba kernel"] = fast
    print(f"tile {args.edge}³ × {args.atoms} atoms = {pairs / 1e6:.0f} M pairs; CPU runs C level {best}")
    for precision in ("float32", "float64"):
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for fn in contenders.values():  # warm-up (and numba's compile)
            fn(table, (0.05, 0.05, 0.05), 0.1, 0.0, region, precision)
        for _ in range(args.rounds):
            for name, fn in contenders.items():
                start = time.perf_counter()
                fn(table, (0.05, 0.05, 0.05), 0.1, 0.0, region, precision)
                times[name].append(time.perf_counter() - start)
        numpy_s = statistics.median(times["NumPy kernel"])
        for name, spent in times.items():
            median = statistics.median(spent)
            print(f"| {precision} | {name} | {median:.3f} s | {pairs / median / 1e9:.2f} G pairs/s "
                  f"| {numpy_s / median:.1f}× |")
    c_load = load_time("from tilefan.compute import ckernel; ckernel.load()", args.rounds)
    print(f"load in a fresh process: C kernel {c_load * 1e3:.0f} ms")


if __name__ == "__main__":
    main()

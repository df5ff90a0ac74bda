"""Atoms against the hardware's limit, side by side in one run.

    .venv/bin/python benchmarks/atoms_hardware.py kernels            # per-core rate of each kernel
    .venv/bin/python benchmarks/atoms_hardware.py whole --grids 256,384 --rounds 2
    .venv/bin/python benchmarks/atoms_hardware.py make-run --baseline OLD/.venv-run/bin/tilefan

``kernels``: each atoms kernel on one thread, in this process, as G atom–point pairs per
CPU-second (CPU time, so other work on a shared machine slows every contender alike): the
C kernel at each build level this CPU runs, numba's fused loop when numba is importable
(the loop tilefan shipped before the C kernel won), and NumPy's broadcasting kernel.

``whole``: ``tilefan run atoms --grid N --atoms 1000 --seed 3`` as a whole fresh process
(start-up, planning, the tiles, the merge) against the limit measured in the same round:
the best kernel × cores, i.e. the C kernel in this process over the whole grid on
``os.sched_getaffinity`` threads, its rate MEASURED on every core (issue #15's own
example: "the project's own C kernel on two threads"). That is the headline ratio. A
second column gives the ratio against the kernel's one-thread rate × cores, a model no
real multi-thread run reaches (two threads share caches, memory bandwidth and the
machine's other work). Rounds interleave the contenders; medians are reported. ``--baseline DIR`` runs another
source tree's package the same way in each round. Every tree's bytecode is compiled first
and kept (``child_env``), as an installed package's is.

``make-run``: ``make run``'s atoms step (``--grid 128 --atoms 1000 --seed 3 --verify
--field-out``) with this checkout's ``.venv-run`` against another ``tilefan`` executable
(for example an older revision's ``.venv-run``), interleaved.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tilefan.compute import ckernel, threads  # noqa: E402
from tilefan.domain import kernels  # noqa: E402

PRECISIONS = ("float64", "float32")


def _table(n: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.column_stack([rng.uniform(0, size, (n, 3)), rng.uniform(-1, 1, n)])


def _numba_kernel() -> Callable[..., np.ndarray] | None:
    """numba's fused loop, as tilefan shipped it (compiled here when numba is importable)."""
    try:
        import math

        from numba import njit
    except ImportError:
        return None

    @njit(cache=False, fastmath=True, nogil=True, boundscheck=False, error_model="numpy")
    def phi_block(xs, ys, zs, ax, ay, az, ae, eps2, out):  # type: ignore[no-untyped-def]
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                row = out[i, j]
                for a in range(ax.shape[0]):
                    dx = xs[i] - ax[a]
                    dy = ys[j] - ay[a]
                    dxy = dx * dx + dy * dy + eps2
                    e = ae[a]
                    for k in range(out.shape[2]):
                        dz = zs[k] - az[a]
                        row[k] += e / math.sqrt(dxy + dz * dz)

    def run(table, origin, spacing, softening, region, precision):  # type: ignore[no-untyped-def]
        xs, ys, zs = kernels.grid_axes(origin, spacing, region, precision)
        at = np.ascontiguousarray(table.T.astype(precision))
        phi = np.zeros((len(xs), len(ys), len(zs)), dtype=precision)
        phi_block(xs, ys, zs, at[0], at[1], at[2], at[3], np.asarray(softening**2, dtype=precision)[()], phi)
        return phi

    return run


def cmd_kernels(args: argparse.Namespace) -> None:
    threads.configure(threads.ComputeBudget(1))
    g, n = args.grid, args.atoms
    table = _table(n, g)
    region = ((0, g), (0, g), (0, g))
    contenders: dict[str, Callable[..., np.ndarray]] = {
        f"C kernel, level {lv}": ckernel.load(use_level=lv) for lv in range(ckernel.level(), 0, -1)  # type: ignore[misc]
    }
    numba = _numba_kernel()
    if numba is not None:
        contenders["numba fused loop"] = numba
    contenders["NumPy kernel"] = kernels.atoms_potential
    print(f"one thread, {g}³ grid × {n} atoms, best of {args.rounds}; load {os.getloadavg()[0]:.1f}")
    print("| precision | kernel | G pairs per CPU-second |\n|---|---|---|")
    for precision in PRECISIONS:
        best: dict[str, float] = {}
        for fn in contenders.values():
            fn(table, (0.0, 0.0, 0.0), 1.0, 0.0, ((0, 2), (0, 2), (0, g)), precision)  # warm-up, compile
        for _ in range(args.rounds):
            for name, fn in contenders.items():
                small = name == "NumPy kernel"
                reg = ((0, max(1, g // 8)), (0, g), (0, g)) if small else region
                pairs = (reg[0][1] - reg[0][0]) * g * g * n
                cpu = time.thread_time()
                fn(table, (0.0, 0.0, 0.0), 1.0, 0.0, reg, precision)
                best[name] = max(best.get(name, 0.0), pairs / (time.thread_time() - cpu) / 1e9)
        for name, rate in best.items():
            print(f"| {precision} | {name} | {rate:.2f} |")


def _limit(g: int, n: int, precision: str) -> float:
    """G pairs/s of the best kernel measured on every core, in this process, over the whole grid."""
    return _limits(g, n, precision)[1]


def _limits(g: int, n: int, precision: str) -> tuple[float, float]:
    """The kernel's one-thread rate × cores, and its rate measured on every core.

    On a quiet machine they agree within a few percent. On a loaded one whose scheduler
    groups a session's threads (``/proc/sys/kernel/sched_autogroup_enabled``), a second
    thread adds little, so only the second is a limit a whole run can reach there.
    """
    table = _table(n, g)
    cores = threads.usable_cpus()
    rates = []
    for count in (1, cores):
        threads.configure(threads.ComputeBudget(count))
        region = ((0, g if count > 1 else max(1, g // 4)), (0, g), (0, g))
        wall = time.perf_counter()
        ckernel.atoms_potential_c(table, (0.0, 0.0, 0.0), 1.0, 0.0, region, precision)
        rate = (region[0][1] * g * g * n) / (time.perf_counter() - wall) / 1e9
        rates.append(rate * (cores if count == 1 else 1))
    threads.configure(threads.ComputeBudget(cores))
    return rates[0], rates[1]


def child_env(source: str | None = None) -> dict[str, str]:
    """The environment of a measured ``tilefan`` process: an installed package's, with its
    bytecode cached. ``PYTHONDONTWRITEBYTECODE`` (set in some shells and CI images) would
    have every run of an editable checkout compile tilefan's modules again, about 0.1 s of
    CPU that no ``pip install``-ed user pays; ``source`` runs another tree's package."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for tree in (str(ROOT), *([source] if source else [])):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(tree) / "tilefan")], check=True,
                       stdout=subprocess.DEVNULL)
    return {**env, "PYTHONPATH": source} if source else env


def _whole(tilefan: str | list[str], g: int, n: int, precision: str, extra: list[str] | None = None,
           env: dict[str, str] | None = None) -> float:
    with tempfile.TemporaryDirectory() as home:
        command = [tilefan] if isinstance(tilefan, str) else tilefan
        cmd = [*command, "run", "atoms", "--grid", str(g), "--atoms", str(n), "--seed", "3",
               "--precision", precision, *(extra or [])]
        wall = time.perf_counter()
        subprocess.run(cmd, env={**(env or os.environ), "TILEFAN_HOME": home}, check=True,
                       stdout=subprocess.DEVNULL, cwd=home)
        return time.perf_counter() - wall


def cmd_whole(args: argparse.Namespace) -> None:
    from startup import entry_point  # a sibling script: benchmarks/ is this script's sys.path[0]

    ours = [str(Path(sys.executable).with_name("tilefan"))]
    runs_of = {"this checkout": (ours, child_env())}
    if args.baseline:
        # Through the baseline's own entry point: the installed script names this checkout's.
        runs_of[f"baseline {args.baseline}"] = (entry_point(args.baseline), child_env(args.baseline))
    print(f"{threads.usable_cpus()} cores, {args.atoms} atoms, median of {args.rounds} interleaved rounds; "
          f"load {os.getloadavg()[0]:.1f}")
    print("ratios against the limit (the C kernel measured on every core) and, second, against its "
          "one-thread rate × cores")
    print("| grid | precision | limit: measured on every core (1 thread × cores) | " + " | ".join(
        f"{name}: whole `tilefan run` | ratio | vs 1 thread × cores" for name in runs_of) + " |")
    print("|---|---|---|" + "---|---|---|" * len(runs_of))
    for g in (int(x) for x in args.grids.split(",")):
        for precision in args.precisions.split(","):
            pairs = g**3 * args.atoms
            modelled: list[float] = []
            measured: list[float] = []
            rates: dict[str, list[float]] = {name: [] for name in runs_of}
            for _ in range(args.rounds):
                one_x_cores, all_cores = _limits(g, args.atoms, precision)
                modelled.append(one_x_cores)
                measured.append(all_cores)
                for name, (command, env) in runs_of.items():
                    rates[name].append(pairs / _whole(command, g, args.atoms, precision, env=env) / 1e9)
            on_all, model = statistics.median(measured), statistics.median(modelled)
            cells = " | ".join(f"{statistics.median(r):.2f} G pairs/s | **{statistics.median(r) / on_all:.0%}** | "
                               f"{statistics.median(r) / model:.0%}" for r in rates.values())
            print(f"| {g}³ | {precision} | {on_all:.2f} ({model:.2f}) G pairs/s | {cells} |", flush=True)
    print(f"load at the end {os.getloadavg()[0]:.1f}")


def cmd_make_run(args: argparse.Namespace) -> None:
    ours = str(ROOT / ".venv-run" / "bin" / "tilefan")
    contenders = {"this checkout": ours, "baseline": args.baseline}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    env = child_env()
    for _ in range(args.rounds):
        for name, exe in contenders.items():
            times[name].append(_whole(exe, 128, 1000, "float64", ["--verify", "--field-out", "phi.npy"], env))
    base = statistics.median(times["baseline"])
    print(f"make run's atoms step (128³ × 1000, --verify --field-out), median of {args.rounds}; "
          f"load {os.getloadavg()[0]:.1f}")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"| {name} | {t:.2f} s | {base / t:.1f}× the baseline's speed |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("kernels")
    k.add_argument("--grid", type=int, default=64)
    k.add_argument("--atoms", type=int, default=1000)
    k.add_argument("--rounds", type=int, default=5)
    w = sub.add_parser("whole")
    w.add_argument("--grids", default="256,384")
    w.add_argument("--atoms", type=int, default=1000)
    w.add_argument("--rounds", type=int, default=2)
    w.add_argument("--precisions", default=",".join(PRECISIONS))
    w.add_argument("--baseline", help="another source tree (git archive REV tilefan | tar -x -C DIR, its C "
                                      "kernel copied in) run the same way, interleaved")
    m = sub.add_parser("make-run")
    m.add_argument("--baseline", required=True, help="another revision's tilefan executable")
    m.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    {"kernels": cmd_kernels, "whole": cmd_whole, "make-run": cmd_make_run}[args.cmd](args)


if __name__ == "__main__":
    main()

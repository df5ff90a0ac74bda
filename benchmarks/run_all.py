"""Side-by-side benchmarks of tilefan against plain NumPy and dask.array.

Every contender runs as a whole fresh process (start-up, load, compute, save) on the same
files, interleaved round by round so machine noise hits all of them alike; we report the
median of each and the ratios. ``--settle S`` waits S seconds before each timed run, so
each process starts from the same memory state (on a guest that hands freed memory back to
its host, a process run right after another's exit takes cheaper memory: see
``first_touch.py`` and ``matmul_e2e.py``); the default, 0, is how the tables in
BENCHMARKS.md that name no quiet were taken. Usage:

    .venv/bin/python benchmarks/run_all.py [matmul|add|atoms|small|memory|all] [--rounds N] [--settle S]

Results go to stdout as Markdown rows; BENCHMARKS.md records a run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
PY = sys.executable
SETTLE_S = 0.0  # seconds of quiet before each timed run (--settle)
TILEFAN = [PY, "-m", "tilefan.entrypoints.cli.main"]


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TILEFAN_HOME"] = str(home)
    env["PYTHONPATH"] = str(ROOT)
    return env


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def make_inputs(n: int, name: str) -> tuple[Path, Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    a, b = DATA / f"{name}_A_{n}.npy", DATA / f"{name}_B_{n}.npy"
    rng = np.random.default_rng(0)
    for path in (a, b):
        if not path.exists():
            np.save(path, rng.standard_normal((n, n)))
    return a, b


def race(contenders: dict[str, list[str]], env: dict[str, str], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for cmd in contenders.values():  # warm-up: page cache, numba cache
        timed(cmd, env)
    for _ in range(rounds):
        for name, cmd in contenders.items():
            time.sleep(SETTLE_S)
            times[name].append(timed(cmd, env))
    return {k: statistics.median(v) for k, v in times.items()}


def bench_matrix(kind: str, n: int, rounds: int, with_dask: bool) -> None:
    a, b = make_inputs(n, kind)
    out = DATA / f"{kind}_C_{n}.npy"
    op = "a @ b" if kind == "matmul" else "a + b"
    numpy_cmd = [PY, "-c", f"import numpy as np; a=np.load('{a}'); b=np.load('{b}'); np.save('{out}', {op})"]
    contenders = {
        "numpy": numpy_cmd,
        "tilefan": [*TILEFAN, "run", kind, "--a", str(a), "--b", str(b), "--out", str(out)],
    }
    if with_dask:
        contenders["dask"] = [PY, "-c", (
            "import numpy as np, dask.array as da; "
            f"a=da.from_array(np.load('{a}', mmap_mode='r'), chunks=(2048, 2048)); "
            f"b=da.from_array(np.load('{b}', mmap_mode='r'), chunks=(2048, 2048)); "
            f"np.save('{out}', ({op}).compute())"
        )]
    with tempfile.TemporaryDirectory() as home:
        med = race(contenders, _env(Path(home)), rounds)
    base = med["numpy"]
    for name, t in med.items():
        print(f"| {kind} {n}² float64, .npy → .npy | {name} | {t:.2f} s | {t / base:.2f}× numpy |")


def bench_atoms(rounds: int) -> None:
    pairs = 256**3 * 1000
    with tempfile.TemporaryDirectory() as home:
        env = _env(Path(home))
        for precision in ("float64", "float32"):
            cmd = [*TILEFAN, "run", "atoms", "--grid", "256", "--atoms", "1000", "--seed", "3",
                   "--precision", precision]
            contenders = {
                "tilefan, compiled kernel": cmd,
                # The NumPy kernel (what a tile Lambda runs), same pool, same process shape.
                "tilefan, NumPy kernel": ["env", "TILEFAN_KERNEL=numpy", *cmd],
            }
            med = race(contenders, env, rounds)
            for name, took in med.items():
                print(f"| atoms 256³ × 1000 atoms, {precision}, whole process | {name} | {took:.2f} s "
                      f"| {pairs / took / 1e9:.2f} G pairs/s |")
        # The NumPy broadcasting kernel alone, on a slab, for scale.
        sys.path.insert(0, str(ROOT))
        from tilefan.domain import kernels
        from tilefan.domain.randgen import random_atoms
        from tilefan.domain.spec.parse import RandomAtoms

        table = random_atoms(RandomAtoms(count=1000, seed=3), (256, 256, 256), (0.0, 0.0, 0.0), 1.0)
        for precision in ("float64", "float32"):
            region = ((0, 4), (0, 256), (0, 256))
            start = time.perf_counter()
            kernels.atoms_potential(table, (0.0, 0.0, 0.0), 1.0, 0.0, region, precision)
            took = time.perf_counter() - start
            print(f"| atoms kernel, NumPy broadcasting, one core, {precision} | numpy | "
                  f"{4 * 256 * 256 * 1000 / took / 1e9:.2f} G pairs/s | |")


def bench_small(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        env = _env(Path(home))
        script = ROOT / ".venv" / "bin" / "tilefan"
        cmd = [str(script), "run", "atoms", "--grid", "16", "--atoms", "1000", "--seed", "3"]
        med = race({"small": cmd}, env, rounds)["small"]
        print(f"| atoms 16³ × 1000 atoms from the shell (`.venv/bin/tilefan`) | tilefan | {med:.3f} s | |")


def _tree_pss_kib(pid: int) -> int:
    """Proportional set size of a process and all its descendants (shared pages split)."""
    total = 0
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except OSError:
                continue
    stack = [pid]
    while stack:
        p = stack.pop()
        stack.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def bench_memory() -> None:
    n = 8192
    a, b = make_inputs(n, "matmul")
    out = DATA / f"matmul_C_{n}.npy"
    input_bytes = a.stat().st_size + b.stat().st_size
    with tempfile.TemporaryDirectory() as home:
        cmd = [*TILEFAN, "run", "matmul", "--a", str(a), "--b", str(b), "--out", str(out)]
        proc = subprocess.Popen(cmd, env=_env(Path(home)), stdout=subprocess.DEVNULL, cwd=ROOT)
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _tree_pss_kib(proc.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        start = time.perf_counter()
        sampler.start()
        proc.wait()
        stop.set()
        sampler.join()
        took = time.perf_counter() - start
    peak_bytes = peak * 1024
    print(f"| matmul {n}² float64 peak memory (PSS of the process tree) | tilefan | "
          f"{peak_bytes / 2**30:.2f} GiB in {took:.1f} s | {peak_bytes / input_bytes:.2f}× input bytes |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", nargs="?", default="all",
                        choices=["matmul", "add", "atoms", "small", "memory", "all"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=0.0, help="seconds of quiet before each timed run")
    args = parser.parse_args()
    global SETTLE_S
    SETTLE_S = args.settle
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, NumPy {np.__version__}")
    print("| benchmark | contender | median | ratio |")
    print("|---|---|---|---|")
    if args.which in ("matmul", "all"):
        bench_matrix("matmul", 4096, args.rounds, with_dask=True)
    if args.which in ("add", "all"):
        bench_matrix("add", 8192, args.rounds, with_dask=False)
    if args.which in ("atoms", "all"):
        bench_atoms(args.rounds)
    if args.which in ("small", "all"):
        bench_small(args.rounds)
    if args.which in ("memory", "all"):
        bench_memory()


if __name__ == "__main__":
    main()

"""matmul end to end: ``tilefan run matmul`` (.npy to .npy, whole process) against NumPy
and against the machine's GEMM peak, and the Python API against ``a @ b``.

Side by side, interleaved round by round so the machine's noise hits every contender
alike, each after ``sync`` (so none runs while the kernel writes back another's output),
each fresh process after ``--settle`` seconds of quiet, medians reported:

- ``numpy``: ``np.save(C, np.load(A) @ np.load(B))`` as a fresh process;
- ``tilefan``: ``tilefan run matmul --a A.npy --b B.npy --out C.npy`` as a fresh process;
- ``gemm``: ``a @ b`` on arrays already in memory into an output already touched, 2 BLAS
  threads, in this process: the peak, against which tilefan's whole run is a fraction
  (``peak × gemm / tilefan``).

Why the quiet: on a virtual machine whose balloon driver reports free memory back to the
host (virtio-balloon free page reporting), memory freed in the last two seconds or so is
cheap to touch again, and older free memory costs a host fault on each page's first touch
(``benchmarks/first_touch.py`` measures both). Run back to back (``--settle 0``), each
contender inherits the memory the one before it freed (NumPy's 1.5 GiB of arrays at exit,
the page cache of the output tilefan's rename replaces), so the order of the contenders
moves the figures; after the quiet each starts from the same state, as a command run on its
own does. The default, 6 s, is past the 2 s the kernel waits before reporting.

``--api`` times a second ``tilefan.matmul(a, b)`` (verification off) against ``a @ b`` on
the same in-memory arrays. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are dropped from the
environment when set (they slow current NumPy); the BLAS in use is printed. Usage:

    .venv/bin/python benchmarks/matmul_e2e.py [--sizes 4096 8192] [--rounds N] [--settle S]
        [--api [--no-kept-home]] [--no-warmup]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_name, None)  # before NumPy loads OpenBLAS, here and in every child

import numpy as np  # noqa: E402  (after the environment is cleaned)
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TILEFAN = str(Path(PY).with_name("tilefan"))


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def _gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> float:
    with threadpool_limits(2, user_api="blas"):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        return time.perf_counter() - start


def whole_process(n: int, rounds: int, data: Path, env: dict[str, str], warmup: bool = True,
                  settle: float = 0.0) -> None:
    a_path, b_path, c_path = data / f"A{n}.npy", data / f"B{n}.npy", data / f"C{n}.npy"
    rng = np.random.default_rng(0)
    for path in (a_path, b_path):
        if not path.exists():
            np.save(path, rng.standard_normal((n, n)))
    a, b = np.load(a_path), np.load(b_path)
    out = np.ones_like(a)  # touched once: the peak times the compute, not fresh pages for C
    contenders = {
        "numpy": lambda: _timed([PY, "-c", f"import numpy as np; np.save({str(c_path)!r}, "
                                 f"np.load({str(a_path)!r}) @ np.load({str(b_path)!r}))"], env),
        "tilefan": lambda: _timed([TILEFAN, "run", "matmul", "--a", str(a_path), "--b", str(b_path),
                                   "--out", str(c_path)], env),
        "gemm": lambda: _gemm(a, b, out),
    }
    for run in contenders.values() if warmup else ():  # warm-up: page cache, .pyc files
        run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            # The last contender's output reaches the disk first, untimed: its writeback
            # would otherwise take CPU from the next one (both cores are in use).
            os.sync()
            if name != "gemm":  # the peak is the machine's best, in this process's warm memory
                time.sleep(settle)
            times[name].append(run())
    med = {name: statistics.median(ts) for name, ts in times.items()}
    flop = 2.0 * n**3
    print(f"matmul {n}² float64, {rounds} interleaved rounds, {settle:g} s quiet before each process, "
          "medians (min–max):")
    for name, ts in times.items():
        print(f"  {name:8s} {med[name]:7.3f} s ({min(ts):.3f}–{max(ts):.3f})  {flop / med[name] / 1e9:6.1f} GFLOP/s")
    print(f"  tilefan / numpy: {med['tilefan'] / med['numpy']:.3f}×   "
          f"tilefan at {100 * med['gemm'] / med['tilefan']:.0f}% of the GEMM peak "
          f"(numpy at {100 * med['gemm'] / med['numpy']:.0f}%)")


def api(rounds: int, kept_home: bool = True) -> None:
    """A second call in one process, as a user's script makes it: ``tilefan.matmul(a, b)``
    as called by default (a temporary home per call, inputs read from memory), and with a
    kept home (``home=``: inputs written there, so a crashed call can be resumed).
    ``kept_home=False`` leaves the kept home out: its files (three arrays a round) keep the
    page cache busy, and the other two contenders' times with them."""
    import tilefan

    rng = np.random.default_rng(0)
    for (m, k), (_, n) in (((2000, 1500), (1500, 1000)), ((4096, 4096), (4096, 4096))):
        a, b = rng.random((m, k)), rng.random((k, n))
        with tempfile.TemporaryDirectory() as home:
            tilefan.matmul(a, b)  # the first calls load what a call loads; time the second on
            tilefan.matmul(a, b, home=home)
            calls = {"a @ b": functools.partial(np.matmul, a, b),
                     "tilefan.matmul": functools.partial(tilefan.matmul, a, b),
                     "kept home": functools.partial(tilefan.matmul, a, b, home=home)}
            if not kept_home:
                del calls["kept home"]
            times: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(rounds):
                for name, call in calls.items():
                    start = time.perf_counter()
                    c = call()
                    times[name].append(time.perf_counter() - start)
                    assert np.allclose(c, a @ b) if name != "a @ b" else True
                    del c
        med = {name: statistics.median(ts) for name, ts in times.items()}
        kept = (f"; with a kept home {med['kept home']:.3f} s: {med['kept home'] / med['a @ b']:.2f}×"
                if kept_home else "")
        print(f"API {m}x{k}·{k}x{n} float64, {rounds} interleaved rounds: a @ b {med['a @ b']:.3f} s, "
              f"tilefan.matmul {med['tilefan.matmul']:.3f} s: {med['tilefan.matmul'] / med['a @ b']:.2f}×{kept}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[4096, 8192])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--api", action="store_true")
    parser.add_argument("--no-kept-home", action="store_true", help="--api without the kept-home contender")
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up round (inputs just written are "
                                                                  "in the page cache already)")
    parser.add_argument("--settle", type=float, default=6.0, help="seconds of quiet before each whole-process "
                                                                   "run (0: back to back)")
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data")
    args = parser.parse_args()
    blas = [(i["internal_api"], i["version"], i["num_threads"], i.get("architecture")) for i in threadpool_info()]
    print(f"BLAS {blas}; cores {len(os.sched_getaffinity(0))}")
    args.data.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TILEFAN_HOME": home}
        for n in args.sizes:
            whole_process(n, args.rounds, args.data, env, warmup=not args.no_warmup, settle=args.settle)
    if args.api:
        api(args.rounds, kept_home=not args.no_kept_home)


if __name__ == "__main__":
    main()

"""Side-by-side timing of this checkout against an earlier revision of tilefan.

A structural change should leave speed alone; this proves it the only way a noisy, shared
machine allows: both revisions run the same commands on the same files, as whole fresh
processes, interleaved round by round, and we compare medians as a ratio.

    git worktree add /tmp/tilefan-base REV
    .venv/bin/python benchmarks/compare_revisions.py /tmp/tilefan-base [--rounds 3]

The earlier revision is imported from its own directory through PYTHONPATH, under the
module path it had (``--base-cli``; revisions before the ``tilefan`` package used
``chalicelib.entrypoints.cli``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run_all import ROOT, make_inputs

PY = sys.executable


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one whole process; ``python -m`` puts the working directory first on
    sys.path, so each revision runs from its own checkout."""
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def jobs(a: Path, b: Path, out: Path) -> dict[str, list[str]]:
    """The benchmark jobs, as CLI arguments after ``run``."""
    return {
        "matmul 4096² float64 .npy → .npy": ["matmul", "--a", str(a), "--b", str(b), "--out", str(out)],
        "atoms 256³ × 1000 float64": ["atoms", "--grid", "256", "--atoms", "1000", "--seed", "3"],
        "atoms 256³ × 1000 float32": ["atoms", "--grid", "256", "--atoms", "1000", "--seed", "3",
                                      "--precision", "float32"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=Path, help="a checkout of the earlier revision")
    parser.add_argument("--base-cli", default="chalicelib.entrypoints.cli")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    a, b = make_inputs(4096, "matmul")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "C.npy"
        revisions = {
            "base": ([PY, "-m", args.base_cli, "run"], args.base.resolve()),
            "this": ([PY, "-m", "tilefan.entrypoints.cli.main", "run"], ROOT),
        }
        print(f"| job | base median | this median | this / base |\n|---|---|---|---|  ({args.rounds} rounds)")
        for name, job in jobs(a, b, out).items():
            times: dict[str, list[float]] = {k: [] for k in revisions}
            for round_ in range(args.rounds + 1):  # round 0 warms the page cache and numba's cache
                for label, (cli, path) in revisions.items():
                    env = dict(os.environ, PYTHONPATH=str(path), TILEFAN_HOME=str(Path(tmp) / label))
                    seconds = timed(cli + job, env, path)
                    if round_:
                        times[label].append(seconds)
            base, this = (statistics.median(times[k]) for k in ("base", "this"))
            print(f"| {name} | {base:.2f} s | {this:.2f} s | {this / base:.2f}× |", flush=True)
    print(f"\n(load average at the end: {os.getloadavg()[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M')})")


if __name__ == "__main__":
    main()

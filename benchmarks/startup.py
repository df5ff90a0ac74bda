"""Start-up: a small whole ``tilefan run`` against ``python -c "import numpy"``, side by side.

The job is seed 004's largest row (a 16³ grid, 1,000 random atoms): its arithmetic takes
milliseconds, so the whole process is start-up: the interpreter, imports, the home's
SQLite store, planning, the tile and the merge. tilefan runs twice per round: with stderr
on a pseudo-terminal, so it draws its progress bar as for a user at a terminal (tqdm's
import included), and with stderr redirected (no bar, as in a script). All run as fresh
processes, interleaved round by round (so the machine's noise hits them alike), after one
warm-up each; we print the medians and the ratios. The target is a ratio of at most 3.
Usage:

    .venv/bin/python benchmarks/startup.py [--rounds N] [--importtime] [--baseline DIR]

``--baseline DIR`` adds the same run of another source tree (``git archive REV tilefan |
tar -x -C DIR``), put first on the path, to compare revisions in the same run.

``--importtime`` also prints the slowest imports of one run (``python -X importtime``).
"""

from __future__ import annotations

import argparse
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
JOB = ["run", "atoms", "--grid", "16", "--atoms", "1000", "--seed", "3"]
# The console script a user types, next to this interpreter (a venv's bin/).
TILEFAN = str(Path(PY).with_name("tilefan"))


def _timed(cmd: list[str], env: dict[str, str], terminal: bool = True, path: str | None = None) -> float:
    """Wall time of one run, stderr on a pseudo-terminal (drained as it is written, or a
    full terminal buffer would stall the writer), or redirected to /dev/null."""
    if path is not None:
        env = {**env, "PYTHONPATH": path}
    if not terminal:
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        return time.perf_counter() - start
    main_fd, term_fd = pty.openpty()
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=term_fd, cwd=ROOT)
        os.close(term_fd)
        while True:
            try:
                if not os.read(main_fd, 65536):
                    break
            except OSError:  # EIO: the last writer closed the terminal
                break
        code = proc.wait()
        elapsed = time.perf_counter() - start
    finally:
        os.close(main_fd)
    if code != 0:
        raise subprocess.CalledProcessError(code, cmd)
    return elapsed


def entry_point(tree: str) -> list[str]:
    """The ``tilefan`` command of another source tree, as its console script would run it:
    the installed script names this tree's entry point, which an older tree may not have."""
    import tomllib

    target = tomllib.loads((Path(tree) / "pyproject.toml").read_text())["project"]["scripts"]["tilefan"]
    module, function = target.split(":")
    # -P: no current directory on sys.path, as for a console script (runs start in this tree).
    return [PY, "-P", "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]


def race(rounds: int, env: dict[str, str], baseline: str | None) -> dict[str, list[float]]:
    job = "tilefan " + " ".join(JOB)
    contenders: dict[str, tuple[list[str], bool, str | None]] = {
        "python -c 'import numpy'": ([PY, "-c", "import numpy"], True, None),
        f"{job} (terminal)": ([TILEFAN, *JOB], True, None),
        f"{job} 2>/dev/null": ([TILEFAN, *JOB], False, None),
    }
    if baseline:
        command = entry_point(baseline)
        contenders[f"baseline {baseline} (terminal)"] = ([*command, *JOB], True, baseline)
        contenders[f"baseline {baseline} 2>/dev/null"] = ([*command, *JOB], False, baseline)
    for cmd, terminal, path in contenders.values():  # warm-up: page cache, .pyc files, the home's database
        _timed(cmd, env, terminal, path)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (cmd, terminal, path) in contenders.items():
            times[name].append(_timed(cmd, env, terminal, path))
    return times


def slowest_imports(env: dict[str, str], top: int = 15) -> list[tuple[int, str]]:
    """The ``top`` imports with the most cumulative time (µs) in one run of the job."""
    out = subprocess.run([PY, "-X", "importtime", "-c", "import sys; from tilefan.entrypoints.cli.main import main; "
                          f"sys.exit(main({JOB!r}))"], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    rows = []
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--baseline", help="another source tree to run the same job from, for comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TILEFAN_HOME": home}
        times = race(args.rounds, env, args.baseline)
        numpy_t = times["python -c 'import numpy'"]
        print(f"{args.rounds} interleaved rounds; medians (min–max)")
        for name, ts in times.items():
            print(f"  {name:66s} {statistics.median(ts):6.3f} s ({min(ts):.3f}–{max(ts):.3f})")
        for name, run_t in list(times.items())[1:]:
            ratio = statistics.median(run_t) / statistics.median(numpy_t)
            per_round = sorted(r / n for r, n in zip(run_t, numpy_t, strict=True))
            print(f"  {name}: {ratio:.2f}× numpy's import (per round: median {statistics.median(per_round):.2f}×, "
                  f"{per_round[0]:.2f}–{per_round[-1]:.2f}×); target ≤ 3×")
        if args.importtime:
            print("slowest imports (cumulative, one run):")
            for us, name in slowest_imports(env):
                print(f"  {us / 1000:7.1f} ms {name}")


if __name__ == "__main__":
    main()

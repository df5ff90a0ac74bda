"""How many cores one big atoms tile uses on each door: its CPU time over its wall time.

    .venv/bin/python benchmarks/atoms_cores.py [--grid 96] [--atoms 2000] [--precision float64]

- **lambda**: the tile Lambda's handler (``chalicelib.lambdas``) run by the real state
  machine under moto (the test suite's emulated stack), one tile per job; measured around
  the handler's tile call, in the process that runs it.
- **spot**: a spot worker (``tilefan.service.worker.Worker`` over SQS and a task token, in
  moto) taking a tile the planner routed to spot; measured around the worker's tile call.
- **pool**: ``tilefan run`` as a whole process with one pool worker (``TILEFAN_WORKERS=1``)
  and two tiles, so each tile runs in a pool process sharing the core budget; the process's
  and its children's CPU time over its wall time (start-up and merge included, so this is
  a lower bound for the tile itself).

Lambda and spot threads are sized by ``os.sched_getaffinity``; on a real 10,240 MB Lambda
that is 6 vCPUs, here it is this machine's cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _timed(fn: Callable[..., Any], into: list[tuple[float, float]]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            into.append((time.process_time() - cpu, time.perf_counter() - wall))

    return wrapper


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    return {"kind": "atoms", "grid": args.grid, "atoms": {"count": args.atoms, "seed": 3}, "tile": args.grid,
            "precision": args.precision}


def lambda_door(args: argparse.Namespace) -> tuple[float, float]:
    import app as chalice_app
    from chalicelib import lambdas
    from tests.functional.aws_stack import aws_stack
    from tests.functional.identity import ALICE, client_as
    from tests.functional.rest_client import submit, wait_job

    seen: list[tuple[float, float]] = []
    original = lambdas._lambda_tile
    lambdas._lambda_tile = _timed(original, seen)
    try:
        with aws_stack(), client_as(chalice_app.app, ALICE) as client:
            doc = wait_job(client, submit(client, _spec(args)), 600)
            assert doc["status"] == "SUCCEEDED", doc["error"]
    finally:
        lambdas._lambda_tile = original
    [measured] = seen
    return measured


def spot_door(args: argparse.Namespace) -> tuple[float, float]:
    import app as chalice_app
    from tests.functional import spot_stack as spot_module
    from tests.functional.identity import ALICE, client_as
    from tests.functional.rest_client import submit, wait_job
    from tilefan.domain import ckernel

    seen: list[tuple[float, float]] = []
    original = spot_module.run_tile
    spot_module.run_tile = _timed(original, seen)
    try:
        # A Lambda memory budget too small for the tile sends it to spot.
        with spot_module.spot_stack(TILEFAN_LAMBDA_MEMORY_MARGIN="0.0000125") as spot, \
                client_as(chalice_app.app, ALICE) as client:
            spot.start_worker("spot:bench", atoms_kernel=ckernel.atoms_potential_c)
            doc = wait_job(client, submit(client, _spec(args)), 600)
            assert doc["status"] == "SUCCEEDED", doc["error"]
            for handle in spot.workers:
                handle.stop()
    finally:
        spot_module.run_tile = original
    [measured] = seen
    return measured


def pool_door(args: argparse.Namespace) -> tuple[float, float]:
    tilefan = Path(sys.executable).with_name("tilefan")
    half = args.grid // 2
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TILEFAN_HOME": home, "TILEFAN_WORKERS": "1"}
        cmd = [str(tilefan), "run", "atoms", "--grid", str(args.grid), "--atoms", str(args.atoms), "--seed", "3",
               "--tile", str(half) if half * 2 == args.grid else str(args.grid), "--precision", args.precision]
        # --tile N cuts N×N×N blocks: a grid of 2N gives 8 tiles; one worker runs them in turn.
        before = os.times()
        wall = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - wall
        after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return cpu, wall


DOORS = {"lambda": lambda_door, "spot": spot_door, "pool": pool_door}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=96)
    parser.add_argument("--atoms", type=int, default=2000)
    parser.add_argument("--precision", default="float64", choices=["float32", "float64"])
    parser.add_argument("--doors", default="lambda,spot,pool")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} usable cores; atoms {args.grid}³ × {args.atoms}, {args.precision}; load "
          f"{os.getloadavg()[0]:.1f}")
    rows = ["| door | CPU s | wall s | cores used |", "|---|---|---|---|"]
    for name in args.doors.split(","):
        cpu, wall = DOORS[name](args)
        rows.append(f"| {name} | {cpu:.2f} | {wall:.2f} | **{cpu / wall:.2f}** |")
    # After the doors: the Lambda handlers log JSON lines to stdout while they run.
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""How many cores one big atoms tile uses on each door: its CPU time over its wall time.

    .venv/bin/python benchmarks/atoms_cores.py [--grid 96] [--atoms 2000] [--precision float64]

- **lambda**: the tile Lambda's handler (``chalicelib.lambdas``) run by the real state
  machine under moto (the test suite's emulated stack), one tile per job; measured around
  the handler's tile call, in the process that runs it.
- **spot**: a spot worker (``tilefan.runtimes.spot.worker.Worker`` over SQS and a task token, in
  moto) taking a tile the planner routed to spot; measured around the worker's tile call.
- **pool**: the embedded scheduler's process pool (one worker per core, sharing one token
  per core), running a one-tile job: the tile alone gets every core; measured inside the
  worker around the scheduler's own tile function.
- **pool-2-tiles**: the same pool running a two-tile job, both tiles at once: each should
  use one core, so the pool never oversubscribes the machine (the larger of the two shown).

Lambda and spot threads are sized by ``os.sched_getaffinity``; on a real 10,240 MB Lambda
that is 6 vCPUs, here it is this machine's cores.
"""

from __future__ import annotations

import argparse
import os
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
    from chalicelib import lambdas
    from tests.functional.aws_stack import aws_api, aws_stack
    from tests.functional.identity import ALICE, client_as
    from tests.functional.rest_client import submit, wait_job

    seen: list[tuple[float, float]] = []
    original = lambdas._lambda_tile
    lambdas._lambda_tile = _timed(original, seen)
    try:
        with aws_stack(), client_as(aws_api(), ALICE) as client:
            doc = wait_job(client, submit(client, _spec(args)), 600)
            assert doc["status"] == "SUCCEEDED", doc["error"]
    finally:
        lambdas._lambda_tile = original
    [measured] = seen
    return measured


def spot_door(args: argparse.Namespace) -> tuple[float, float]:
    from tests.functional import spot_stack as spot_module
    from tests.functional.aws_stack import aws_api
    from tests.functional.identity import ALICE, client_as
    from tests.functional.rest_client import submit, wait_job
    from tilefan.compute import ckernel

    seen: list[tuple[float, float]] = []
    original = spot_module.run_tile
    spot_module.run_tile = _timed(original, seen)
    try:
        # A Lambda memory budget too small for the tile sends it to spot.
        with spot_module.spot_stack(TILEFAN_LAMBDA_MEMORY_MARGIN="0.0000125") as spot, \
                client_as(aws_api(), ALICE) as client:
            spot.start_worker("spot:bench", atoms_kernel=ckernel.atoms_potential_c)
            doc = wait_job(client, submit(client, _spec(args)), 600)
            assert doc["status"] == "SUCCEEDED", doc["error"]
            for handle in spot.workers:
                handle.stop()
    finally:
        spot_module.run_tile = original
    [measured] = seen
    return measured


def _tile_in_pool(job_id: str, tile_id: int) -> tuple[float, float]:
    """Runs in a pool worker: the scheduler's own tile function, timed from inside."""
    from tilefan.compute import ckernel
    from tilefan.runtimes.embedded.pool_worker import tile_in_worker

    cpu, wall = time.process_time(), time.perf_counter()
    tile_in_worker(job_id, tile_id, "lambda", ckernel.atoms_potential_c)
    return time.process_time() - cpu, time.perf_counter() - wall


def _pool_tiles(args: argparse.Namespace, tiles: int) -> list[tuple[float, float]]:
    """A job of ``tiles`` equal tiles, all submitted at once to the scheduler's pool (one
    worker per core, sharing the core tokens), each tile timed in its worker."""
    import functools

    from tilefan.bootstrap import embedded_ports
    from tilefan.compute.threads import usable_cpus
    from tilefan.pipeline.plan import plan_job
    from tilefan.pipeline.submit import submit_job
    from tilefan.runtimes.embedded.worker_pool import WorkerPool

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ports = embedded_ports(home)
        tile = [args.grid // tiles, args.grid, args.grid]
        record = submit_job(ports, {**_spec(args), "tile": tile})
        assert len(plan_job(ports, record.job_id).tiles) == tiles
        pool = WorkerPool(usable_cpus(), "fork", functools.partial(embedded_ports, home))
        try:
            pool.submit(time.sleep, 0.5).result()  # workers started before the clock runs
            futures = [pool.submit(_tile_in_pool, record.job_id, t) for t in range(tiles)]
            return [f.result() for f in futures]
        finally:
            pool.kill()


def pool_door(args: argparse.Namespace) -> tuple[float, float]:
    [measured] = _pool_tiles(args, 1)
    return measured


def pool_shared(args: argparse.Namespace) -> tuple[float, float]:
    """Two tiles at once on the two workers: each should get one core, not oversubscribe."""
    measured = _pool_tiles(args, 2)
    return max(c for c, _ in measured), max(w for _, w in measured)


DOORS = {"lambda": lambda_door, "spot": spot_door, "pool": pool_door, "pool-2-tiles": pool_shared}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=96)
    parser.add_argument("--atoms", type=int, default=2000)
    parser.add_argument("--precision", default="float64", choices=["float32", "float64"])
    parser.add_argument("--doors", default="lambda,spot,pool,pool-2-tiles")
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

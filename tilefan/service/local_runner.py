"""The embedded runner: plan, a process pool over the tiles, reduce.

The pool is forked after the parent has loaded NumPy and (for big atoms jobs) the
compiled kernel, so workers start in milliseconds with everything warm. Each worker
pins its BLAS to one thread: N workers × N BLAS threads would oversubscribe the cores.
Tiles read and write their own blocks through the blob store; no array crosses the
pool's pipes.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tilefan.domain import kernels
from tilefan.domain.kernel_choice import choose_atoms_kernel
from tilefan.domain.records import JobRecord
from tilefan.domain.routing import RoutePolicy
from tilefan.domain.spec import AtomsSpec
from tilefan.pipeline.error_codec import error_body
from tilefan.pipeline.lifecycle import cancel_job, fail_job
from tilefan.pipeline.plan import plan_job
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.reduce import reduce_job
from tilefan.pipeline.tile import TileRun, run_tile

ProgressFn = Callable[[JobRecord], None]


@dataclass(frozen=True)
class PoolSettings:
    workers: int
    kernel: str  # "auto", "numpy" or "compiled"
    # "fork" starts workers in milliseconds with everything warm, but is only safe from a
    # single-threaded parent (the CLI). A threaded server uses "forkserver".
    start_method: str = "fork"
    # Routes are recorded on each tile (and shown in reports) but every tile runs here.
    policy: RoutePolicy = field(default_factory=RoutePolicy)


# Set in each worker process by _init_worker.
_worker_ports: Ports | None = None


def _init_worker(make_ports: Callable[[], Ports]) -> None:
    global _worker_ports
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    _worker_ports = make_ports()


def _tile_in_worker(job_id: str, tile_id: int, route: str, kernel: Callable[..., Any]) -> TileRun:
    assert _worker_ports is not None
    return run_tile(
        _worker_ports, job_id, tile_id, worker=f"local-{os.getpid()}", route=route, atoms_kernel=kernel
    )


class LocalRunner:
    """Runs jobs on this machine. ``run`` is synchronous; ``start`` runs in a thread."""

    def __init__(self, ports: Ports, make_ports: Callable[[], Ports], settings: PoolSettings) -> None:
        self.ports = ports
        self.make_ports = make_ports
        self.settings = settings
        self._threads: dict[str, threading.Thread] = {}

    # ------------------------------------------------------------------ kernel choice

    def _atoms_kernel(self, record: JobRecord) -> Callable[..., Any]:
        spec = record.spec
        if not isinstance(spec, AtomsSpec):
            return kernels.atoms_potential  # unused: matrix tiles take no kernel
        return choose_atoms_kernel(self.settings.kernel, spec.units_total * spec.atoms.count)

    # ------------------------------------------------------------------ running

    def run(self, job_id: str, on_progress: ProgressFn | None = None, poll_s: float = 0.1) -> JobRecord:
        """Plan, run every tile, reduce. Returns the final record (any status)."""
        ports = self.ports
        try:
            the_plan = plan_job(ports, job_id, policy=self.settings.policy)
            record = ports.jobs.get_job(job_id)
            kernel = self._atoms_kernel(record)
            tiles = [(t.tile_id, t.route) for t in the_plan.tiles]
            if len(tiles) == 1 or self.settings.workers == 1:
                for tile_id, route in tiles:
                    run_tile(ports, job_id, tile_id, worker=f"local-{os.getpid()}", route=route,
                             atoms_kernel=kernel)
                    if on_progress:
                        on_progress(ports.jobs.get_job(job_id))
            else:
                self._run_pool(job_id, tiles, kernel, on_progress, poll_s)
            if ports.jobs.get_job(job_id).status.terminal:
                return ports.jobs.get_job(job_id)  # cancelled while running
            reduce_job(ports, job_id)
        except Exception as exc:  # the job's failure is recorded, not raised
            fail_job(ports, job_id, error_body(exc))
        record = ports.jobs.get_job(job_id)
        if on_progress:
            on_progress(record)
        return record

    def _run_pool(
        self, job_id: str, tiles: list[tuple[int, str]], kernel: Callable[..., Any],
        on_progress: ProgressFn | None, poll_s: float,
    ) -> None:
        workers = min(self.settings.workers, len(tiles))
        ctx = multiprocessing.get_context(self.settings.start_method)
        with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                    initargs=(self.make_ports,)) as pool:
            futures = [pool.submit(_tile_in_worker, job_id, tid, route, kernel) for tid, route in tiles]
            pending = set(futures)
            try:
                while pending:
                    done, pending = cf.wait(pending, timeout=poll_s, return_when=cf.FIRST_EXCEPTION)
                    for fut in done:
                        fut.result()  # re-raise a tile's error here
                    if on_progress:
                        record = self.ports.jobs.get_job(job_id)
                        on_progress(record)
                        if record.status.terminal:
                            break
            finally:
                for fut in pending:
                    fut.cancel()

    def start(self, job_id: str) -> None:
        """Run the job in a background thread (for the REST server)."""
        thread = threading.Thread(target=self.run, args=(job_id,), name=f"job-{job_id}", daemon=True)
        self._threads[job_id] = thread
        thread.start()

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)

    def cancel(self, job_id: str) -> bool:
        # Tiles check the status before recording, so marking the job is enough to stop
        # it; tiles already computing finish but are not counted.
        return cancel_job(self.ports, job_id, clock=time.time)

    def links(self, job_id: str) -> dict[str, str]:
        return {}

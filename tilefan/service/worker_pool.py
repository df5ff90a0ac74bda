"""The scheduler's process pool, known through public means only.

``concurrent.futures.ProcessPoolExecutor`` does not say, in its public API, which
processes are its workers or whether it is broken. The scheduler needs both: to kill the
workers still computing when it stops, and to replace a pool one of whose workers died.
So each worker reports its pid when it starts (``pool_worker.init_worker``), and the pool
learns it is broken from what its futures and ``submit`` raise (``BrokenProcessPool``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from tilefan.compute.threads import usable_cpus
from tilefan.pipeline.ports import Ports


class WorkerPool(cf.Executor):
    """``workers`` processes that run tiles (and plan and reduce steps) for the scheduler."""

    def __init__(self, workers: int, start_method: str, make_ports: Callable[[], Ports]) -> None:
        from tilefan.service.pool_worker import init_worker

        ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            # Workers forked from a server that already imported the tile code start warm.
            ctx.set_forkserver_preload(["tilefan.service.pool_worker", "tilefan.bootstrap"])
        self._pids = ctx.SimpleQueue()
        # One token per core, shared by every worker: a tile's threads compute only while
        # they hold one, so busy workers split the cores and a job's last tile gets them all.
        tokens = ctx.Semaphore(usable_cpus())
        self._executor = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker,
                                                initargs=(make_ports, os.getpid(), tokens, self._pids))
        self.broken = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        try:
            fut = self._executor.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            self.broken = True
            raise
        fut.add_done_callback(self._note_breakage)
        return fut

    def _note_breakage(self, fut: cf.Future[Any]) -> None:
        if not fut.cancelled() and isinstance(fut.exception(), BrokenProcessPool):
            self.broken = True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=cancel_futures)

    def kill(self) -> None:
        """Kill the workers still computing, then shut down: their tiles are not recorded
        done, so the next scheduler runs them again."""
        pids: set[int] = set()
        while not self._pids.empty():
            pids.add(self._pids.get())
        # A broken pool has already terminated its workers, and their pids may be reused.
        for pid in () if self.broken else sorted(pids):
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.kill(pid, signal.SIGKILL)
        # Not waiting: the executor's own thread reaps the killed workers in the background,
        # and a worker still starting (not yet registered) exits when it reads the shutdown
        # or, at the latest, when its owner does (pool_worker's watchdog).
        self._executor.shutdown(wait=False, cancel_futures=True)

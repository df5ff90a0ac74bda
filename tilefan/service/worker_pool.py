"""The scheduler's process pool: its workers and whether it is broken.

``concurrent.futures.ProcessPoolExecutor`` does not say, in its public API, which
processes are its workers or whether it is broken. The scheduler needs both: to kill the
workers still computing when it stops, and to replace a pool one of whose workers died.
The pool learns it is broken from what its futures and ``submit`` raise
(``BrokenProcessPool``). To kill, each worker reports its pid when it starts
(``pool_worker.init_worker``), and ``kill`` adds the executor's own process table, which
only it knows completely (see there why the registry alone is not enough).
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
        done, so the next scheduler runs them again.

        Every worker the executor started is killed, not only those that registered: idle
        workers take turns on the call queue's lock, so a worker killed while holding it
        would leave one that started during the kill (registered too late to be seen)
        blocked for good, and the executor's thread, and the interpreter's exit, waiting on
        it. The executor names its workers only in ``_processes``; the registered pids are
        the fallback should that attribute ever go.
        """
        pids: set[int] = set()
        while not self._pids.empty():
            pids.add(self._pids.get())
        processes = list(getattr(self._executor, "_processes", None) or {})
        # A broken pool has already terminated its workers, and their pids may be reused.
        for pid in sorted(set(processes) if self.broken else pids | set(processes)):
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.kill(pid, signal.SIGKILL)
        self._executor.shutdown(wait=True, cancel_futures=True)

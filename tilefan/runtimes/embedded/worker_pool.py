"""The scheduler's process pool: worker processes it starts, owns and kills itself.

The scheduler needs two things ``concurrent.futures.ProcessPoolExecutor`` does not offer
in its public API: the processes that are its workers (to kill those still computing when
it stops) and whether one of them died (to retry their tiles on a fresh pool). So the
pool starts its own ``multiprocessing`` processes, all at once, each with its own pipe:
it sends a task only to an idle worker, and one thread reads results and watches every
worker's sentinel. With no queue shared between workers, killing one can never leave a
lock held that another waits on.

As with ``ProcessPoolExecutor``, a worker that dies breaks the whole pool: every pending
task fails with ``BrokenProcessPool`` (the scheduler retries them on a new pool), and the
other workers are killed, since nothing tells which of them the cause may have hurt.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import DefaultContext
from typing import Any, cast

from tilefan.compute.threads import CoreTokens, usable_cpus
from tilefan.pipeline.ports import Ports

_Task = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]
_BROKEN = "a process of the pool ended abruptly while a task was running or pending"


def serve_tasks(conn: Connection, make_ports: Callable[[], Ports], owner_pid: int, tokens: CoreTokens) -> None:
    """A worker's life: set up (``pool_worker.init_worker``), then run each task it is sent
    and send back ``(True, result)`` or ``(False, exception)``, until told to stop."""
    from tilefan.runtimes.embedded.pool_worker import init_worker

    init_worker(make_ports, owner_pid, tokens)
    while True:
        try:
            task: _Task | None = conn.recv()
        except (EOFError, KeyboardInterrupt):
            # The owner closed its end, or Ctrl-C reached the whole process group while this
            # worker was idle: the owner handles that, and stops or kills its workers.
            return
        if task is None:
            return
        fn, args, kwargs = task
        try:
            answer: tuple[bool, Any] = (True, fn(*args, **kwargs))
        except BaseException as exc:  # sent back, as ProcessPoolExecutor does
            answer = (False, exc)
        try:
            conn.send(answer)
        except Exception as exc:  # a result or an exception that cannot be pickled
            conn.send((False, RuntimeError(f"the task's outcome could not be sent back: {type(exc).__name__}: {exc}")))


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    task: cf.Future[Any] | None = None  # what it runs now; None when idle
    stopping: bool = False  # sent the stop message (or killed): its exit breaks nothing
    eof: bool = False  # its end of the pipe is closed: nothing more to read
    gone: bool = False  # exited and reaped


@dataclass
class _Settled:
    """Futures to resolve once the pool's lock is released (their callbacks may call back)."""

    results: list[tuple[cf.Future[Any], bool, Any]] = field(default_factory=list)

    def resolve(self) -> None:
        for fut, ok, value in self.results:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)


class WorkerPool(cf.Executor):
    """``workers`` processes that run tiles (and plan and reduce steps) for the scheduler."""

    def __init__(self, workers: int, start_method: str, make_ports: Callable[[], Ports]) -> None:
        # Every concrete context has ``Process``; the stubs declare it on DefaultContext only.
        ctx = cast(DefaultContext, multiprocessing.get_context(start_method))
        if start_method == "forkserver":
            # Workers forked from a server that already imported the tile code start warm.
            ctx.set_forkserver_preload(["tilefan.runtimes.embedded.worker_pool",
                                        "tilefan.runtimes.embedded.pool_worker", "tilefan.bootstrap"])
        # One token per core, shared by every worker: a tile's threads compute only while
        # they hold one, so busy workers split the cores and a job's last tile gets them all.
        # Kept for the pool's life: a worker started by a fork server unpickles it later,
        # and the named semaphore is gone once the parent's object is collected.
        self._tokens = tokens = ctx.Semaphore(usable_cpus())
        self._workers: list[_Worker] = []
        for n in range(workers):
            mine, theirs = ctx.Pipe()
            process = ctx.Process(target=serve_tasks, args=(theirs, make_ports, os.getpid(), tokens),
                                  name=f"tilefan-worker-{n}", daemon=True)
            process.start()
            theirs.close()
            self._workers.append(_Worker(process, mine))
        self._backlog: deque[tuple[cf.Future[Any], _Task]] = deque()
        self._lock = threading.Lock()
        self._wake_reader, self._wake_writer = multiprocessing.Pipe(duplex=False)
        self._closed = False
        self.broken = False
        self._reader = threading.Thread(target=self._read, name="worker-pool", daemon=True)
        self._reader.start()

    def pids(self) -> list[int]:
        """The pids of the processes this pool started (alive or not)."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        settled = _Settled()
        with self._lock:
            if self.broken:
                raise BrokenProcessPool(_BROKEN)
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            idle = next((w for w in self._workers if w.task is None and not w.stopping), None)
            if idle is None:
                self._backlog.append((fut, (fn, args, kwargs)))
            else:
                self._send(idle, fut, (fn, args, kwargs), settled)
        settled.resolve()
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; each worker exits once its task (and, unless cancelled, the
        backlog) is done."""
        with self._lock:
            self._closed = True
            cancelled = list(self._backlog) if cancel_futures else []
            if cancel_futures:
                self._backlog.clear()
            for worker in self._workers:
                if worker.task is None:
                    self._stop(worker)
        for fut, _ in cancelled:
            fut.cancel()
        self._wake()
        if wait:
            self._reader.join()  # it ends once every worker has exited (and reaps them)

    def kill(self) -> None:
        """Kill every worker, busy or idle, and fail what they ran: their tiles are not
        recorded done, so the next scheduler runs them again."""
        with self._lock:
            self._closed = True
            for worker in self._workers:
                worker.stopping = True
                with contextlib.suppress(OSError):  # it exited meanwhile
                    worker.process.kill()
        self._wake()
        self._reader.join()  # it fails their tasks and reaps them

    # ------------------------------------------------------------------ the reader thread

    def _read(self) -> None:
        """Hand results to their futures and the backlog to idle workers; break the pool
        on a worker's unexpected death; end when every worker has exited."""
        while True:
            with self._lock:
                watched = [w for w in self._workers if not w.gone]
            if not watched:
                break
            ready = set(wait([self._wake_reader, *(w.conn for w in watched if not w.eof),
                              *(w.process.sentinel for w in watched)]))
            if self._wake_reader in ready:
                while self._wake_reader.poll():
                    self._wake_reader.recv_bytes()
            settled = _Settled()
            with self._lock:
                for worker in watched:
                    exited = worker.process.sentinel in ready
                    # An exited worker's last outcome may still be in its pipe: take it first.
                    while (exited or worker.conn in ready) and not worker.eof and worker.conn.poll():
                        self._receive(worker, settled)
                    if exited:
                        worker.process.join()  # reaps it
                        worker.gone = True
                        if not worker.stopping:
                            self._break(settled)
            settled.resolve()
        settled = _Settled()
        with self._lock:  # a killed pool's last tasks, and any backlog left behind
            self._break(settled, mark=False)
        settled.resolve()
        with self._lock:  # under the lock: a late ``_wake`` must not write to a reused fd
            for conn in (*(w.conn for w in self._workers), self._wake_reader, self._wake_writer):
                conn.close()

    def _receive(self, worker: _Worker, settled: _Settled) -> None:
        """Take one outcome from ``worker`` and give it its next task."""
        try:
            ok, value = worker.conn.recv()
        except (EOFError, OSError):  # OSError: it died with our message unread (a reset)
            worker.eof = True  # it died or is dying: its sentinel says so
            return
        except Exception as exc:  # the outcome arrived but could not be unpickled here
            ok, value = False, exc
        if worker.task is not None:
            settled.results.append((worker.task, ok, value))
            worker.task = None
        if self._backlog:  # shut down without cancelling still runs the backlog
            fut, task = self._backlog.popleft()
            self._send(worker, fut, task, settled)
        elif self._closed:
            self._stop(worker)

    def _send(self, worker: _Worker, fut: cf.Future[Any], task: _Task, settled: _Settled) -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            worker.conn.send(task)
        except OSError:
            worker.task = fut  # it died: the reader breaks the pool and fails this too
        except Exception as exc:  # the task cannot be pickled: it alone fails
            settled.results.append((fut, False, exc))
        else:
            worker.task = fut

    def _stop(self, worker: _Worker) -> None:
        worker.stopping = True
        with contextlib.suppress(OSError):
            worker.conn.send(None)

    def _break(self, settled: _Settled, *, mark: bool = True) -> None:
        if mark:
            self.broken = self._closed = True
        for worker in self._workers:
            if worker.task is not None:
                settled.results.append((worker.task, False, BrokenProcessPool(_BROKEN)))
                worker.task = None
            if mark and worker.process.exitcode is None:
                worker.stopping = True
                with contextlib.suppress(OSError):
                    worker.process.kill()
        while self._backlog:
            fut, _ = self._backlog.popleft()
            if fut.set_running_or_notify_cancel():
                settled.results.append((fut, False, BrokenProcessPool(_BROKEN)))

    def _wake(self) -> None:
        with self._lock, contextlib.suppress(OSError):  # OSError: the reader has ended and closed it
            self._wake_writer.send_bytes(b"")

"""One scheduler per home: a persistent job queue, one process pool, fair tile dispatch.

The queue is the job store itself: QUEUED jobs, oldest first, wait there until the
scheduler admits them (at most ``max_jobs`` at once); RUNNING jobs found at start are
resumed, running only the tiles not recorded done, into the output already being built.
Every admitted job's tiles go to ONE pool sized to the cores, round-robin across jobs, so
a big job cannot starve a small one and no job brings its own processes.

Only the holder of the home's lease runs tiles: a second scheduler on the same home (the
CLI while ``tilefan serve`` runs, or a second server) waits for the lease while its jobs
stay queued, and the CLI then just follows its job's record. So the cores are never
oversubscribed by two pools.

A job's plan and reduce run off the dispatcher (``scheduler_steps``), so a big one does
not hold up other jobs' tiles.

A tile whose worker died (``BrokenProcessPool``) or that raised a transient error is
retried with exponential backoff, up to ``RetryPolicy.max_attempts`` in all; a permanent
error (bad input: any ``TilefanError`` but a store error) fails the job at once.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tilefan.domain.plan import plan
from tilefan.domain.records import JobRecord, Status
from tilefan.errors import TilefanError
from tilefan.pipeline.error_codec import error_body
from tilefan.pipeline.lifecycle import cancel_job, fail_job
from tilefan.pipeline.ports import Ports
from tilefan.service.pool_worker import tile_in_worker
from tilefan.service.scheduler_parts import (
    InlineExecutor,
    JobQueue,
    Lease,
    PoolSettings,
    RetryPolicy,
    is_permanent,
    job_kernel,
    runs_inline,
)
from tilefan.service.scheduler_steps import PLAN, REDUCE, JobSteps

if TYPE_CHECKING:
    from tilefan.service.worker_pool import WorkerPool

__all__ = ["JobQueue", "Lease", "PoolSettings", "RetryPolicy", "Scheduler", "is_permanent"]


@dataclass
class _Job:
    job_id: str
    kernel: Callable[..., Any]
    todo: deque[tuple[int, str]]
    in_flight: set[int] = field(default_factory=set)
    attempts: dict[int, int] = field(default_factory=dict)
    routes: dict[int, str] = field(default_factory=dict)
    not_before: float = 0.0
    inline: bool = False  # run its tiles in this thread (no pool to start for them)
    reducing: bool = False  # handed to the reduce step: never twice


class Scheduler:
    """Runs the home's jobs (or only ``only``); the REST service's and the CLI's runner."""

    def __init__(
        self, ports: Ports, make_ports: Callable[[], Ports], settings: PoolSettings, queue: JobQueue, lease: Lease,
        *, retry: RetryPolicy | None = None, max_jobs: int | None = None, only: set[str] | None = None,
        grace_s: float = 10.0,
    ) -> None:
        self.ports, self.make_ports, self.settings = ports, make_ports, settings
        self.queue, self.lease = queue, lease
        self.retry = retry or RetryPolicy()
        self.max_jobs = max_jobs or max(2, settings.workers)
        self.only = only
        self.grace_s = grace_s
        self._active: dict[str, _Job] = {}
        self._turns: deque[str] = deque()
        self._futures: dict[cf.Future[Any], tuple[str, int]] = {}
        self._pool: WorkerPool | None = None  # made at the first tile that needs it
        self._inline = InlineExecutor(ports)
        # Only a server shares its pool with plans and reduces (the CLI runs one job).
        self._steps = JobSteps(ports, settings.policy, self.retry, in_pool=only is None and settings.workers > 1,
                               max_jobs=self.max_jobs)
        self._lock = threading.Lock()
        self._wake: cf.Future[None] = cf.Future()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.holds_lease = False

    # ------------------------------------------------------------------ JobRunner

    def start(self, job_id: str) -> None:
        """The job is already QUEUED in the store: wake the dispatcher (started on first use)."""
        with self._lock:
            if self._thread is None:
                self.serve_in_thread()
        self.wake()

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Until the job has ended and none of its tiles is still in this scheduler's hands."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            busy = (job_id in self._active or job_id in self._steps.jobs()
                    or job_id in {j for j, _ in list(self._futures.values())})
            if not busy and self.ports.jobs.get_job(job_id).status.terminal:
                return
            self._stopping.wait(0.01)

    def cancel(self, job_id: str) -> bool:
        changed = cancel_job(self.ports, job_id, clock=time.time)
        self.wake()
        return changed

    def links(self, job_id: str) -> dict[str, str]:
        return {}

    def queue_place(self, job_id: str) -> int | None:
        return self.queue.queue_place(job_id)

    def wake(self) -> None:
        with self._lock:
            if not self._wake.done():
                self._wake.set_result(None)

    # ------------------------------------------------------------------ lifetimes

    def serve_in_thread(self) -> None:
        """Dispatch in a background thread until ``stop`` (the server's mode)."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, args=(lambda: False,), name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop dispatching, let in-flight tiles finish (up to ``grace_s``), release the
        lease. Unfinished jobs stay RUNNING or QUEUED: the next scheduler resumes them."""
        self._stopping.set()
        self.wake()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self.grace_s + 5)

    def run_until_done(self, job_id: str, on_progress: Callable[[JobRecord], None] | None = None,
                       poll_s: float = 0.1) -> JobRecord:
        """The CLI's mode: dispatch here until the job ends; if another process holds the
        lease, follow the job's record while that scheduler runs it."""

        def ended() -> bool:
            record = self.ports.jobs.get_job(job_id)
            if on_progress:
                on_progress(record)
            return record.status.terminal

        self._serve(ended, poll_s)
        return self.ports.jobs.get_job(job_id)

    def _serve(self, until: Callable[[], bool], poll_s: float = 0.1) -> None:
        while not self.lease.acquire():
            if until() or self._stopping.wait(poll_s):
                return
        self.holds_lease = True
        try:
            while not self._stopping.is_set() and not until():
                self._step()
        finally:
            self._drain()
            self.holds_lease = False
            self.lease.release()

    # ------------------------------------------------------------------ one step

    def _step(self) -> None:
        self._admit()
        self._drop_ended()
        self._fill()
        with self._lock:
            if self._wake.done():
                self._wake = cf.Future()
            wake = self._wake
        waiting: set[cf.Future[Any]] = {*self._futures, *self._steps.running, wake}
        # A tile waiting for its retry time bounds the wait, but only if a worker is free to
        # take it: with every worker busy only a finished tile (or a wake) can change
        # anything, and a zero timeout here would spin, taking the GIL from the HTTP threads.
        free = self._used_slots() < self.settings.workers
        ready = min((j.not_before for j in self._active.values() if j.todo), default=None) if free else None
        timeout = 0.5 if ready is None else max(0.0, min(0.5, ready - time.monotonic()))
        done, _ = cf.wait(waiting, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            if fut in self._steps.running:
                self._step_done(fut)
            elif fut is not wake:
                self._collect(fut)
        if self._pool is not None and self._pool.broken:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None  # a new one is made at the next submit

    def _admit(self) -> None:
        planning = self._steps.planning
        if len(self._active) + len(planning) >= self.max_jobs:
            return
        for job_id in self.queue.unfinished_jobs(self.max_jobs + len(self._active) + len(planning)):
            if len(self._active) + len(planning) >= self.max_jobs:
                return
            if job_id in self._active or job_id in planning or (self.only is not None and job_id not in self.only):
                continue
            self._open(job_id)

    def _open(self, job_id: str) -> None:
        """Hand a QUEUED job to the plan step, or resume a RUNNING one from the tiles recorded done."""
        ports = self.ports
        try:
            record = ports.jobs.get_job(job_id)
            if record.status is Status.QUEUED:
                self._steps.add(PLAN, job_id)
                return
            if record.status.terminal:
                return  # ended (cancelled) since the queue was read
            # Planning is pure: the same spec cuts into the same tiles, and the output
            # and staged inputs were written before the job became RUNNING.
            the_plan = plan(job_id, record.spec, self.settings.policy)
            done = {r.tile_id for r in ports.jobs.tile_results(job_id)}
            todo = deque((t.tile_id, t.route) for t in the_plan.tiles if t.tile_id not in done)
            # The CLI and the Python API run a one-tile job, or a small matmul, right here.
            inline = self.only is not None and runs_inline(record.spec, len(the_plan.tiles))
            job = _Job(job_id, job_kernel(record, self.settings.kernel), todo, inline=inline)
        except Exception as exc:  # the job's failure is recorded, not raised
            fail_job(ports, job_id, error_body(exc))
            return
        self._active[job_id] = job
        self._turns.append(job_id)
        if not todo:
            self._finish(job)

    def _drop_ended(self) -> None:
        statuses = self.queue.job_statuses(list(self._active)) if self._active else {}
        for job_id, status in statuses.items():
            if Status(status).terminal and not self._active[job_id].reducing:
                self._forget(job_id)  # cancelled or failed elsewhere; late tiles are ignored

    def _forget(self, job_id: str) -> None:
        self._active.pop(job_id, None)
        if job_id in self._turns:
            self._turns.remove(job_id)

    def _used_slots(self) -> int:
        return len(self._futures) + self._steps.slots()

    def _fill(self) -> None:
        """Hand out waiting plans and reduces first (each starts or ends a whole job), then
        tiles round-robin over the admitted jobs, until every worker has one."""
        self._steps.hand_out(lambda: self.settings.workers - self._used_slots(), self._get_pool)
        while self._used_slots() < self.settings.workers and self._turns:
            now = time.monotonic()
            for _ in range(len(self._turns)):
                job = self._active[self._turns[0]]
                self._turns.rotate(-1)
                if job.todo and job.not_before <= now:
                    tile_id, route = job.todo.popleft()
                    pool = self._inline if job.inline else self._get_pool()
                    fut = pool.submit(tile_in_worker, job.job_id, tile_id, route, job.kernel)
                    job.in_flight.add(tile_id)
                    job.routes[tile_id] = route
                    self._futures[fut] = (job.job_id, tile_id)
                    break
            else:
                return  # nothing is ready to submit

    def _get_pool(self) -> cf.Executor:
        if self.settings.workers == 1:
            # One core, one tile at a time: run it right here, through this process's
            # stores, with no process to start or to lose.
            return self._inline
        if self._pool is None:
            # Imported here: a run whose tiles all run inline never loads multiprocessing.
            from tilefan.service.worker_pool import WorkerPool

            self._pool = WorkerPool(self.settings.workers, self.settings.start_method, self.make_ports)
        return self._pool

    # ------------------------------------------------------------------ outcomes

    def _collect(self, fut: cf.Future[Any]) -> None:
        job_id, tile_id = self._futures.pop(fut)
        job = self._active.get(job_id)
        if job is None:
            return  # the job ended meanwhile
        job.in_flight.discard(tile_id)
        try:
            fut.result()
        except Exception as exc:
            if not isinstance(exc, TilefanError):
                # run_tile records its own errors; a dead worker cannot, so its attempt ends here.
                self.ports.jobs.record_tile_failed(job_id, tile_id, _why(exc), time.time())
            if is_permanent(exc):
                fail_job(self.ports, job_id, error_body(exc))
                self._forget(job_id)
                return
            if not self._retry(job, tile_id, exc):
                return
        if not job.todo and not job.in_flight:
            self._finish(job)

    def _retry(self, job: _Job, tile_id: int, exc: BaseException) -> bool:
        attempts = job.attempts.get(tile_id, 1)
        if attempts >= self.retry.max_attempts:
            why = _why(exc)
            fail_job(self.ports, job.job_id, {
                "code": "tile_failed", "message": f"tile {tile_id} failed {attempts} times; last: {why}"})
            self._forget(job.job_id)
            return False
        job.attempts[tile_id] = attempts + 1
        job.todo.appendleft((tile_id, job.routes.get(tile_id, "local")))
        job.not_before = time.monotonic() + self.retry.delay(attempts)
        return True

    def _finish(self, job: _Job) -> None:
        if not job.reducing:
            job.reducing = True
            self._steps.add(REDUCE, job.job_id)

    def _step_done(self, fut: cf.Future[Any]) -> None:
        """A plan or a reduce ended: start the planned job's tiles, or retry, or record why not."""
        out = self._steps.outcome(fut, lambda job_id: self.ports.jobs.get_job(job_id).status.terminal)
        if out.error is None and out.step == PLAN:
            self._open(out.job_id)  # now RUNNING: its tiles start as a resumed job's would
            return
        if out.retry:
            return
        if out.error is not None and not self.ports.jobs.get_job(out.job_id).status.terminal:
            fail_job(self.ports, out.job_id, error_body(out.error))
        self._forget(out.job_id)  # only now: ``wait`` means "the reduce is over" too

    def _drain(self) -> None:
        """Let in-flight tiles record (up to ``grace_s``), then stop the pool's processes."""
        pool, self._pool = self._pool, None
        if self._futures or self._steps.running:
            cf.wait([*self._futures, *self._steps.running], timeout=self.grace_s)
        if not self._steps.in_pool:
            # A plan or reduce in a helper thread cannot be killed: it ends before the lease
            # is released, so no other scheduler starts the same step meanwhile.
            cf.wait(list(self._steps.running))
        self._futures.clear()
        self._steps.clear()
        self._active.clear()
        self._turns.clear()
        if pool is not None:
            pool.kill()


def _why(exc: BaseException) -> str:
    # BrokenExecutor, not concurrent.futures.process's BrokenProcessPool: naming that would
    # import the process pool's machinery into every run, even one whose tile runs inline.
    return "its worker died" if isinstance(exc, cf.BrokenExecutor) else f"{type(exc).__name__}: {exc}"

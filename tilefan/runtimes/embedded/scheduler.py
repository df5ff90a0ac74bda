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

A server's plans and reduces run off the dispatcher (``scheduler_steps``), so a big one
does not hold up other jobs' tiles; a one-shot run (the CLI, the Python API) plans in the
dispatcher itself, as it runs its inline tiles, and reduces in a helper thread.

A tile whose worker died (``BrokenProcessPool``) or that raised a transient error is
retried with exponential backoff, up to ``RetryPolicy.max_attempts`` in all; a permanent
error (bad input: any ``TilefanError`` but a store error) fails the job at once.

The ``Scheduler`` here only executes: what to do next is ``scheduler_decide.decide``'s
call, over the plain state in ``scheduler_state``. The dispatcher reads the queue, the
store and the clock, feeds what it saw as events, performs the actions it gets back
against the ports, the pool (``worker_pool``) and the helper threads, and feeds their
outcomes back in turn.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tilefan.domain.plan import Plan
from tilefan.domain.records import JobRecord, Status
from tilefan.pipeline.lifecycle import cancel_job, fail_job
from tilefan.pipeline.ports import Ports
from tilefan.runtimes.embedded import scheduler_state as machine
from tilefan.runtimes.embedded.pool_worker import tile_in_worker
from tilefan.runtimes.embedded.scheduler_decide import decide, queue_limit, wait_timeout
from tilefan.runtimes.embedded.scheduler_open import open_job
from tilefan.runtimes.embedded.scheduler_parts import (
    InlineExecutor,
    JobQueue,
    Lease,
    PoolSettings,
    RetryPolicy,
    is_permanent,
)
from tilefan.runtimes.embedded.scheduler_state import Act
from tilefan.runtimes.embedded.scheduler_steps import STEPS, StepThreads

if TYPE_CHECKING:
    from tilefan.runtimes.embedded.worker_pool import WorkerPool

__all__ = ["JobQueue", "Lease", "PoolSettings", "RetryPolicy", "Scheduler", "is_permanent"]


_HANDED_PLANS = 64  # submissions' plans held for plan steps not yet run

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
        self.state = self._fresh_state()
        self._running: dict[cf.Future[Any], machine.RunTile | machine.JobAction] = {}  # tiles and steps out
        self._plans: dict[str, Plan] = {}  # submissions' plans, until their plan steps
        self._pool: WorkerPool | None = None  # made at the first tile that needs it
        self._inline = InlineExecutor(ports)
        self._threads = StepThreads(ports, self.max_jobs)
        self._lock = threading.Lock()
        self._wake: cf.Future[None] = cf.Future()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.holds_lease = False

    def _fresh_state(self) -> machine.State:
        # Only a server shares its pool with plans and reduces (the CLI runs one job).
        in_pool = self.only is None and self.settings.workers > 1
        return machine.State(self.settings.workers, self.max_jobs, self.retry, in_pool,
                     None if self.only is None else frozenset(self.only))

    # ------------------------------------------------------------------ JobRunner

    def start(self, job_id: str, plan: Plan | None = None) -> None:
        """The job is already QUEUED in the store: wake the dispatcher (started on first use).
        ``plan``, the one its submission cut, is handed to its plan step."""
        self._hand(job_id, plan)
        with self._lock:
            if self._thread is None:
                self.serve_in_thread()
        self.wake()

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Until the job has ended and none of its tiles is still in this scheduler's hands."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            if not self.state.holds(job_id) and self.ports.jobs.get_job(job_id).status.terminal:
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
                       poll_s: float = 0.1, plan: Plan | None = None) -> JobRecord:
        """The CLI's mode: dispatch here until the job ends; if another process holds the
        lease, follow the job's record while that scheduler runs it."""
        self._hand(job_id, plan)

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
        """Read the queue and the store, hand out work, wait for news, report it."""
        limit = queue_limit(self.state)
        if limit is not None:
            self._feed(machine.Admit(tuple(self.queue.unfinished_jobs(limit))))
        if self.state.active:
            statuses = self.queue.job_statuses(list(self.state.active))
            self._feed(machine.JobsEnded(tuple(j for j, s in statuses.items() if Status(s).terminal)))
        self._feed(machine.Fill(time.monotonic()))
        with self._lock:
            if self._wake.done():
                self._wake = cf.Future()
            wake = self._wake
        timeout = wait_timeout(self.state, time.monotonic())
        done, _ = cf.wait({*self._running, wake}, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            if fut is wake:
                continue
            work, error = self._running.pop(fut), _error(fut)
            # A failed step is retried only while its job runs: the store says.
            ended = (error is not None and isinstance(work, machine.JobAction)
                     and self.ports.jobs.get_job(work.job_id).status.terminal)
            self._feed(machine.Ended(work, error, time.monotonic(), ended))
        if self._pool is not None and self._pool.broken:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None  # a new one is made at the next submit

    def _feed(self, event: machine.Event) -> None:
        """Decide on ``event``, perform the actions, and decide on what they report, in turn."""
        actions: deque[machine.Action] = deque(decide(self.state, event))
        while actions:
            reported = self._perform(actions.popleft())
            if reported is not None:
                actions.extend(decide(self.state, reported))

    def _perform(self, action: machine.Action) -> machine.Event | None:
        if isinstance(action, machine.RunTile):
            executor = self._inline if action.inline else self._get_pool()
            fut = _submit(executor, tile_in_worker, action.job_id, action.tile_id, action.route, action.kernel)
            self._running[fut] = action
        elif isinstance(action, machine.RecordTileFailed):
            self.ports.jobs.record_tile_failed(action.job_id, action.tile_id, action.why, time.time())
        elif action.act is Act.OPEN:
            return open_job(self.ports, self.settings, self.only is not None, action.job_id)
        elif action.act is Act.FAIL:
            assert action.error is not None, "a FAIL carries its error body"
            fail_job(self.ports, action.job_id, action.error)
        else:
            # A server's steps run beside its other jobs. A one-shot run has nothing else to
            # do meanwhile, so its plan runs here, like its inline tiles (a thread's start
            # and handoffs were about 5 ms of a small ``tilefan.matmul``); its reduce keeps
            # a helper thread, where no Ctrl-C can fall between publishing the output and
            # recording the job SUCCEEDED (this thread takes the interrupt and cancels).
            if self.state.steps_in_pool:
                executor = self._get_pool()
            else:
                executor = self._inline if self.only is not None and action.act is Act.PLAN else self._threads
            # The plan its submission cut, if this process submitted it: the step plans once.
            args = (self.settings.policy, self._plans.pop(action.job_id, None)) if action.act is Act.PLAN else ()
            fut = _submit(executor, STEPS[action.act], action.job_id, *args)
            self._running[fut] = action
        return None

    def _hand(self, job_id: str, plan: Plan | None) -> None:
        if plan is not None:
            with self._lock:
                # Held only until the job's plan step; a job planned elsewhere never takes
                # its plan, so keep the newest few.
                self._plans[job_id] = plan
                while len(self._plans) > _HANDED_PLANS:
                    self._plans.pop(next(iter(self._plans)))

    def _get_pool(self) -> cf.Executor:
        # Never asked for with one worker: decide runs every tile inline then, and steps
        # go to the pool only when there are several workers (``_fresh_state``).
        if self._pool is None or self._pool.broken:
            # Imported here: a run whose tiles all run inline never loads multiprocessing.
            from tilefan.runtimes.embedded.worker_pool import WorkerPool

            self._pool = WorkerPool(self.settings.workers, self.settings.start_method, self.make_ports)
        return self._pool

    def _drain(self) -> None:
        """Let in-flight tiles record (up to ``grace_s``), then stop the pool's processes."""
        pool, self._pool = self._pool, None
        if self._running:
            cf.wait(list(self._running), timeout=self.grace_s)
        if not self.state.steps_in_pool:
            # A step in a helper thread cannot be killed: it ends before the lease is
            # released, so no other scheduler starts the same step meanwhile.
            cf.wait([fut for fut, work in self._running.items() if isinstance(work, machine.JobAction)])
        self._running.clear()
        self.state = self._fresh_state()
        if pool is not None:
            pool.kill()


def _submit(executor: cf.Executor, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
    """``executor.submit``; a pool found broken answers as its dead worker's tasks do."""
    try:
        return executor.submit(fn, *args)
    except cf.BrokenExecutor as exc:
        fut: cf.Future[Any] = cf.Future()
        fut.set_exception(exc)
        return fut


def _error(fut: cf.Future[Any]) -> BaseException | None:
    try:
        fut.result()
    except Exception as exc:
        return exc
    return None

"""The scheduler's plans and reduces, run off its dispatcher thread.

A job's plan (staging its inputs, creating its output) and its reduce (combining,
verifying, committing) can take long on a big job. The dispatcher hands them out here:
into the pool's processes when a server shares its pool between jobs (a step then takes
a worker slot like a tile, and neither delays other jobs' tiles nor takes the server's
CPU from its HTTP threads), or to helper threads otherwise (the CLI runs one job, and with
one worker the tiles run in the dispatcher itself).

Each step is handed out once per job; a step whose worker died (or that met a busy store)
is handed out again, up to the retry policy's attempts, and reads the job's record afresh,
as a restarted scheduler would: a plan that got as far as RUNNING is then resumed.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tilefan.domain.routing import RoutePolicy
from tilefan.pipeline.ports import Ports
from tilefan.service.scheduler_parts import RetryPolicy, is_permanent

PLAN, REDUCE = "plan", "reduce"


def plan_step(job_id: str, policy: RoutePolicy, ports: Ports | None = None) -> None:
    """Plan a QUEUED job (in a pool worker, through its ports, unless ``ports`` is given)."""
    from tilefan.pipeline.plan import plan_job

    plan_job(ports or _pool_ports(), job_id, policy=policy)


def reduce_step(job_id: str, policy: RoutePolicy, ports: Ports | None = None) -> None:
    """Reduce a RUNNING job whose tiles are all recorded done."""
    from tilefan.pipeline.reduce import reduce_job

    reduce_job(ports or _pool_ports(), job_id)


def _pool_ports() -> Ports:
    from tilefan.service import pool_worker

    assert pool_worker._worker_ports is not None, "init_worker did not run"
    return pool_worker._worker_ports


class _StepThreads(cf.ThreadPoolExecutor):
    """Helper threads for plans and reduces, through the scheduler's own ports: one per job
    the scheduler admits at once (a job has one step at a time), so no step waits for another's."""

    def __init__(self, ports: Ports, threads: int) -> None:
        super().__init__(max_workers=threads, thread_name_prefix="job-steps")
        self.ports = ports

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        return super().submit(fn, *args, ports=self.ports, **kwargs)


@dataclass(frozen=True)
class Outcome:
    step: str
    job_id: str
    error: BaseException | None
    retry: bool  # handed out again (a reduce), or to be readmitted (a plan)


class JobSteps:
    """Plans and reduces: waiting for a worker, running, and their attempts."""

    def __init__(self, ports: Ports, policy: RoutePolicy, retry: RetryPolicy, *, in_pool: bool, max_jobs: int) -> None:
        self.policy, self.retry, self.in_pool = policy, retry, in_pool
        self.running: dict[cf.Future[Any], tuple[str, str]] = {}
        self.waiting: deque[tuple[str, str]] = deque()
        self.planning: set[str] = set()  # admitted jobs whose plan has not ended
        self._attempts: dict[tuple[str, str], int] = {}
        self._threads = _StepThreads(ports, max_jobs)

    def add(self, step: str, job_id: str) -> None:
        if step == PLAN:
            self.planning.add(job_id)
        self.waiting.append((step, job_id))

    def slots(self) -> int:
        """Pool worker slots the steps hold."""
        return len(self.running) if self.in_pool else 0

    def jobs(self) -> set[str]:
        return self.planning | {job_id for _, job_id in list(self.running.values())}

    def hand_out(self, free_slots: Callable[[], int], pool: Callable[[], cf.Executor]) -> None:
        """Start waiting steps: all of them in the helper thread, as many as slots are free in the pool."""
        while self.waiting and (not self.in_pool or free_slots() > 0):
            step, job_id = self.waiting.popleft()
            fn = plan_step if step == PLAN else reduce_step
            executor = pool() if self.in_pool else self._threads
            self.running[executor.submit(fn, job_id, self.policy)] = (step, job_id)

    def outcome(self, fut: cf.Future[Any], job_ended: Callable[[str], bool]) -> Outcome:
        """What became of a finished step; a retry is already queued (a reduce) or left to admission (a plan)."""
        step, job_id = self.running.pop(fut)
        error = fut.exception()
        attempts = self._attempts.pop((step, job_id), 1)
        retry = (error is not None and not is_permanent(error) and attempts < self.retry.max_attempts
                 and not job_ended(job_id))
        if retry:
            self._attempts[(step, job_id)] = attempts + 1
            if step == REDUCE:
                self.waiting.append((step, job_id))
        if step == PLAN:
            self.planning.discard(job_id)  # done, readmitted by the next admission, or failed
        return Outcome(step, job_id, error, retry)

    def clear(self) -> None:
        self.running.clear()
        self.waiting.clear()
        self.planning.clear()
        self._attempts.clear()

"""The scheduler's ports and policies: the queue and the lease it needs from the home,
how often a tile is retried, which errors are permanent, the in-thread executor, and the
plan and reduce steps (run in the pool's processes, or in a helper thread)."""

from __future__ import annotations

import concurrent.futures as cf
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tilefan.domain.routing import RoutePolicy
from tilefan.errors import StoreError, TilefanError
from tilefan.pipeline.ports import Ports


class JobQueue(Protocol):
    """The store's view of the queue (the SQLite store implements it)."""

    def unfinished_jobs(self, limit: int) -> list[str]:
        """Ids of RUNNING then QUEUED jobs, each oldest first."""
        ...

    def queue_place(self, job_id: str) -> int | None:
        """1 for the oldest QUEUED job, 2 for the next...; None if the job is not QUEUED."""
        ...

    def job_statuses(self, job_ids: list[str]) -> dict[str, str]:
        """The status of each job (one cheap read: the dispatcher asks at every step)."""
        ...


class Lease(Protocol):
    """Who may run tiles on this home: at most one holder at a time."""

    def acquire(self) -> bool:
        """Take the lease if free (never blocks); True if this process now holds it."""
        ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_s: float = 0.2

    def delay(self, attempt: int) -> float:
        """Wait before attempt ``attempt + 1`` (0.2 s, 0.4 s, ...)."""
        return self.backoff_s * 2 ** (attempt - 1)


def is_permanent(exc: BaseException) -> bool:
    """Bad input fails at once; a dead worker, a busy store or an OS error may pass."""
    return isinstance(exc, TilefanError) and not isinstance(exc, StoreError)


class InlineExecutor(cf.Executor):
    """Runs each tile in the calling thread and hands back a finished future."""

    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        from tilefan.pipeline.tile import run_tile

        fut: cf.Future[Any] = cf.Future()
        job_id, tile_id, route, kernel = args
        try:
            fut.set_result(run_tile(self.ports, job_id, tile_id, worker=f"local-{os.getpid()}", route=route,
                                    atoms_kernel=kernel))
        except Exception as exc:
            fut.set_exception(exc)
        return fut


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


class StepExecutor(cf.ThreadPoolExecutor):
    """One helper thread for plans and reduces, through the scheduler's own ports."""

    def __init__(self, ports: Ports) -> None:
        super().__init__(max_workers=1, thread_name_prefix="job-steps")
        self.ports = ports

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        return super().submit(fn, *args, ports=self.ports, **kwargs)

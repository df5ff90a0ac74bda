"""The scheduler's ports and policies: the queue and the lease it needs from the home,
how often a tile is retried, which errors are permanent, and the in-thread executor."""

from __future__ import annotations

import concurrent.futures as cf
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

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

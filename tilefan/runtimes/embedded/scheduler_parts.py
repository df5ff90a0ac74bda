"""The scheduler's ports and policies: the queue and the lease it needs from the home,
its pool's settings, how often a tile is retried, which errors are permanent, the
in-thread executor and the atoms kernel a job's tiles use."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tilefan.compute.kernel_choice import choose_atoms_kernel
from tilefan.domain.records import JobRecord
from tilefan.domain.routing import RoutePolicy
from tilefan.domain.spec.parse import AtomsSpec
from tilefan.errors import TilefanError
from tilefan.pipeline.ports import Ports
from tilefan.settings import list_policy


@dataclass(frozen=True)
class PoolSettings:
    """The embedded scheduler's pool: its workers, its kernel, how it starts them, its routes."""

    workers: int
    kernel: str  # "auto", "numpy" or "compiled"
    # "fork" starts workers in milliseconds with everything warm, but is only safe from a
    # single-threaded parent (the CLI). A threaded server uses "forkserver".
    start_method: str = "fork"
    # Routes are recorded on each tile (and shown in reports) but every tile runs here.
    policy: RoutePolicy = field(default_factory=list_policy)


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
    """How many times a failed tile (or plan or merge step) is tried, and the wait between tries."""

    max_attempts: int = 3
    backoff_s: float = 0.2

    def delay(self, attempt: int) -> float:
        """Wait before attempt ``attempt + 1`` (0.2 s, 0.4 s, ...)."""
        return self.backoff_s * 2 ** (attempt - 1)


def is_permanent(exc: BaseException) -> bool:
    """Bad input fails at once; a dead worker, a busy store or an OS error may pass
    (``TilefanError.retryable`` says which of our errors may)."""
    return isinstance(exc, TilefanError) and not exc.retryable


class InlineExecutor(cf.Executor):
    """Runs each tile in the calling thread, through the scheduler's own ports, and hands
    back a finished future."""

    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        try:
            fut.set_result(fn(*args, ports=self.ports, **kwargs))
        except Exception as exc:
            fut.set_exception(exc)
        return fut


def job_kernel(record: JobRecord, choice: str) -> tuple[Callable[..., Any], bool]:
    """The atoms kernel for the job's tiles (``choice`` is ``TILEFAN_KERNEL``) and whether it
    computes on threads over every core: the C kernel does (ctypes releases the GIL), NumPy's
    does not (it holds the GIL between its array operations)."""
    from tilefan.domain import kernels

    if not isinstance(record.spec, AtomsSpec):
        return kernels.atoms_potential, False  # unused: matrix tiles take no atoms kernel
    kernel = choose_atoms_kernel(choice)
    return kernel, kernel is not kernels.atoms_potential

"""The scheduler's ports and policies: the queue and the lease it needs from the home,
its pool's settings, how often a tile is retried, which errors are permanent, the
in-thread executor and the atoms kernel a job's tiles use."""

from __future__ import annotations

import concurrent.futures as cf
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tilefan.compute.kernel_choice import choose_atoms_kernel
from tilefan.domain.records import JobRecord
from tilefan.domain.routing import RoutePolicy
from tilefan.domain.spec.parse import AtomsSpec, JobSpec, Kind, MatrixSpec
from tilefan.errors import TilefanError
from tilefan.pipeline.ports import Ports
from tilefan.settings import list_policy


@dataclass(frozen=True)
class PoolSettings:
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


def job_kernel(record: JobRecord, choice: str) -> Callable[..., Any]:
    """The atoms kernel for the job's tiles (``choice`` is ``TILEFAN_KERNEL``)."""
    spec = record.spec
    if not isinstance(spec, AtomsSpec):
        from tilefan.domain import kernels

        return kernels.atoms_potential  # unused: matrix tiles take no kernel
    return choose_atoms_kernel(choice)


# A matmul of at most this many flops runs its tiles in the calling process, one after
# another, with BLAS on every core: starting and stopping a pool of one-thread workers
# (forks, its manager thread, the kill) took about 0.1 s in a profile of a second
# ``tilefan.matmul`` at 2000×1500·1500×1000, and 2·10¹⁰ flops is about 0.2 s of GEMM on two
# cores at ~100 GFLOP/s. A bigger matmul keeps the pool (benchmarks/matmul_e2e.py --api).
INLINE_MATMUL_FLOP = 2e10
# A matmul whose output is built in this process's memory (``MemoryOutputs``: the Python
# API's temporary home) runs here at any size: filling those pages costs less than the
# file-backed pages the pool's workers would write. Measured at 4096³ against ``a @ b``
# (BENCHMARKS.md, the temporary home in memory): 1.06× here and 1.11× through the pool;
# with a file output the other way round, 1.20× here and 1.11× through the pool, so the
# limit above stays for files.
HELD_INLINE_MATMUL_FLOP = math.inf

# An atoms job run on its own with the C kernel computes its tiles in the calling process,
# one after another, each on threads over every core (``compute/threads.py``: ctypes
# releases the GIL). A pool adds nothing there (its workers would share the same cores
# through tokens) and costs the forks, each worker's store, the dispatcher's round trip
# between two tiles of one worker and the kill at the end: 2-5% of a 1.8 s run of 256³
# float32 (BENCHMARKS.md). ``tilefan serve`` keeps the pool, and with it the isolation of a
# tile that crashes its process. False sends these tiles to the pool as before.
INLINE_ATOMS_C = True


def runs_inline(spec: JobSpec, tiles: int, kernel: Callable[..., Any], held: bool = False) -> bool:
    """Whether a job run on its own (the CLI, the Python API) computes its tiles right here;
    ``kernel`` is the atoms kernel its tiles use, ``held`` whether its output is built in
    this process's memory.

    >>> from dataclasses import replace
    >>> from tilefan.domain.kernels import atoms_potential
    >>> from tilefan.domain.spec.parse import RandomMatrix
    >>> a = RandomMatrix(shape=(2000, 1500), dtype="float64", seed=0, stream=0)
    >>> b = RandomMatrix(shape=(1500, 1000), dtype="float64", seed=0, stream=1)
    >>> small = MatrixSpec(Kind.MATMUL, a, b, None, (1024, 1024), False)
    >>> runs_inline(small, 2, atoms_potential), runs_inline(replace(small, kind=Kind.ADD), 2, atoms_potential)
    (True, False)
    >>> big = replace(small, a=replace(a, shape=(4096, 4096)), b=replace(b, shape=(4096, 4096)))
    >>> runs_inline(big, 16, atoms_potential), runs_inline(big, 16, atoms_potential, held=True)
    (False, True)
    """
    if tiles == 1:
        return True  # starting a pool would cost more than the tile
    if isinstance(spec, MatrixSpec) and spec.kind is Kind.MATMUL:
        (m, k), n = spec.a.shape, spec.b.shape[1]
        return 2.0 * m * k * n <= (HELD_INLINE_MATMUL_FLOP if held else INLINE_MATMUL_FLOP)
    if isinstance(spec, AtomsSpec):
        from tilefan.domain import kernels

        # NumPy's kernel holds the GIL between its array operations: only processes use
        # every core with it.
        return INLINE_ATOMS_C and kernel is not kernels.atoms_potential
    return False

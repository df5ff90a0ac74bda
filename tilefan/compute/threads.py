"""Threads inside a tile: every CPU the process may use works on one tile's region.

A tile's atoms region is cut into slabs of whole grid rows (fixed i and j, every k), and
threads pull slabs from a shared counter and call a GIL-releasing kernel (the C kernel
through ctypes) on each. A row is always computed whole, by one call, with the same
coordinates and the same atom order, so the result does not depend on the number of
threads: it is bit-for-bit the single-thread result.

How many threads, and whether they share the machine with other processes, is the
process's ``ComputeBudget``:

- a tile Lambda or a spot worker runs one tile at a time: all its CPUs
  (``os.sched_getaffinity``: the CPUs this process may run on, which is what a Lambda's
  vCPUs or a container's cpuset give, unlike ``os.cpu_count``);
- the embedded pool runs one tile per worker process, so its workers share one
  cross-process semaphore of one token per core. A slab is computed only while its thread
  holds a token: two busy workers get one core each, and the last tile of a job gets
  every core, with workers × threads never oversubscribing the machine.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

# Slabs per thread: enough that threads slowed by other work even out, few enough that the
# per-call overhead (microseconds) stays negligible against a slab's work.
SLABS_PER_THREAD = 8


class CoreTokens(Protocol):
    """A counting semaphore shared by the processes that share the cores."""

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool: ...

    def release(self) -> None: ...


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ComputeBudget:
    """How a tile in this process computes: ``threads`` threads, each holding one of
    ``tokens`` while it computes (None: the process has its CPUs to itself), and BLAS on
    at most ``blas_threads`` threads (None: as BLAS starts, every core)."""

    threads: int
    tokens: CoreTokens | None = None
    blas_threads: int | None = None


_budget = ComputeBudget(usable_cpus())
_executor: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, threads, executor)
_executor_lock = threading.Lock()
_blas_limited: tuple[int, int] | None = None  # (pid, threads) of the limit applied in this process


def configure(budget: ComputeBudget) -> None:
    """Set this process's budget (the pool's initializer, the worker and the Lambda do)."""
    global _budget
    _budget = ComputeBudget(max(1, budget.threads), budget.tokens, budget.blas_threads)


def budget() -> ComputeBudget:
    return _budget


def limit_blas() -> None:
    """Hold BLAS to the budget's ``blas_threads`` in this process, before BLAS work.

    Applied at the first matrix product rather than when a pool worker starts: finding
    the process's BLAS libraries (threadpoolctl) takes 25-40 ms of CPU, which every worker
    would pay before its first atoms tile, on the critical path of a job that never
    multiplies a matrix. The limit stays for the process's life, so it is applied once.
    """
    global _blas_limited
    wanted = _budget.blas_threads
    if wanted is None or _blas_limited == (os.getpid(), wanted):
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(wanted)
    _blas_limited = (os.getpid(), wanted)


def _pool(threads: int) -> ThreadPoolExecutor:
    """The process's slab threads, made again after a fork (a forked child inherits the
    executor object but none of its threads)."""
    global _executor
    with _executor_lock:
        if _executor is None or _executor[0] != os.getpid() or _executor[1] != threads:
            _executor = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="tile-slab"))
        return _executor[2]


RowsFn = Callable[[int, int, int, int], None]


def row_segments(ni: int, nj: int, start: int, stop: int) -> list[tuple[int, int, int, int]]:
    """Rows ``start..stop`` of an ni × nj grid of rows (row r is (r // nj, r % nj)) as
    (i0, i1, j0, j1) boxes: a partial first i, whole i's, a partial last i.

    >>> row_segments(3, 4, 2, 11)
    [(0, 1, 2, 4), (1, 2, 0, 4), (2, 3, 0, 3)]
    >>> row_segments(3, 4, 4, 12)
    [(1, 3, 0, 4)]
    """
    out: list[tuple[int, int, int, int]] = []
    r = start
    while r < stop:
        i, j = divmod(r, nj)
        if j == 0 and stop - r >= nj:
            whole = (stop - r) // nj
            out.append((i, i + whole, 0, nj))
            r += whole * nj
        else:
            end = min(stop, (i + 1) * nj)
            out.append((i, i + 1, j, j + end - r))
            r = end
    return out


def for_each_slab(ni: int, nj: int, rows: RowsFn, work_per_row: float) -> None:
    """Call ``rows(i0, i1, j0, j1)`` over every row of an ni × nj grid, from this
    process's threads; ``work_per_row`` (any unit) lets a small region stay on one thread."""
    total = ni * nj
    threads = min(_budget.threads, total)
    # Below ~1 ms of work a thread hand-off costs more than it saves.
    if threads <= 1 or total * work_per_row < 2e6:
        _run_rows(rows, ni, nj, 0, total)
        return
    slabs = min(total, threads * SLABS_PER_THREAD)
    bounds = [total * s // slabs for s in range(slabs + 1)]
    taken = iter(range(slabs))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                s = next(taken, None)
            if s is None:
                return
            _run_rows(rows, ni, nj, bounds[s], bounds[s + 1])

    futures = [_pool(threads).submit(worker) for _ in range(threads)]
    for fut in futures:
        fut.result()


def _run_rows(rows: RowsFn, ni: int, nj: int, start: int, stop: int) -> None:
    tokens = _budget.tokens
    if tokens is not None:
        tokens.acquire()
    try:
        for seg in row_segments(ni, nj, start, stop):
            rows(*seg)
    finally:
        if tokens is not None:
            tokens.release()

"""The scheduler's pool, through public means only: it owns its worker processes, kills
those still computing when asked, and learns it is broken when one of its workers dies,
whether it forks its workers (the CLI) or a fork server does (``tilefan serve``)."""

from __future__ import annotations

import functools
import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tilefan.bootstrap import embedded_ports
from tilefan.errors import InvalidSpecError
from tilefan.runtimes.embedded.worker_pool import WorkerPool

START_METHODS = pytest.mark.parametrize("start_method", ["fork", "forkserver"])


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _bad_input() -> None:
    raise InvalidSpecError("a", "contains NaN or inf")


def _unpicklable() -> object:
    return lambda: None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child that nobody has reaped yet is a zombie: dead for our purpose.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def _pool(tmp_path: Path, start_method: str) -> WorkerPool:
    return WorkerPool(2, start_method, functools.partial(embedded_ports, tmp_path))


@START_METHODS
def test_kill_stops_the_workers_still_computing(tmp_path: Path, start_method: str) -> None:
    pool = _pool(tmp_path, start_method)
    # Sent at once, the first two go to the two idle workers: both have run a task.
    pids = {f.result() for f in [pool.submit(_pid_after, 0.2) for _ in range(4)]}
    assert pids == set(pool.pids()) and len(pids) == 2 and all(_alive(p) for p in pids)
    busy = pool.submit(_pid_after, 60)
    started = time.monotonic()
    pool.kill()
    assert time.monotonic() - started < 30  # it did not wait for the minute-long task
    # SIGKILL is delivered at once, and kill reaps the workers before it returns.
    assert not any(_alive(p) for p in pool.pids())
    wait_until(lambda: busy.done() or None, "the busy task ended", timeout=10)
    with pytest.raises(BrokenProcessPool):
        busy.result()


@START_METHODS
def test_a_dead_worker_marks_the_pool_broken(tmp_path: Path, start_method: str) -> None:
    pool = _pool(tmp_path, start_method)
    pid = pool.submit(_pid_after, 0).result()
    assert not pool.broken
    doomed = pool.submit(_pid_after, 30)
    # No wait for it to start: running or still pending, a worker's death fails it.
    os.kill(pid, signal.SIGKILL)
    # Whichever worker runs it, a worker's death fails every pending task of the pool.
    with pytest.raises(BrokenProcessPool):
        doomed.result(timeout=30)
    assert pool.broken
    with pytest.raises(BrokenProcessPool):
        pool.submit(_pid_after, 0)
    wait_until(lambda: not any(_alive(p) for p in pool.pids()) or None, "the other worker killed", timeout=10)
    pool.kill()


def test_a_tasks_error_comes_back_and_leaves_the_pool_whole(tmp_path: Path) -> None:
    pool = _pool(tmp_path, "fork")
    with pytest.raises(InvalidSpecError) as raised:
        pool.submit(_bad_input).result(timeout=30)
    assert raised.value.field == "a"
    with pytest.raises(RuntimeError, match="could not be sent back"):
        pool.submit(_unpicklable).result(timeout=30)
    assert not pool.broken
    # More tasks than workers wait their turn, and each runs once.
    backlog = [pool.submit(_pid_after, 0.05) for _ in range(6)]
    assert all(fut.result(timeout=30) in pool.pids() for fut in backlog)
    pool.kill()


def test_shutdown_lets_running_and_waiting_tasks_finish_then_the_workers_exit(tmp_path: Path) -> None:
    pool = _pool(tmp_path, "fork")
    futures = [pool.submit(_pid_after, 0.2) for _ in range(4)]
    pool.shutdown(wait=True)
    assert all(f.done() and f.result() in pool.pids() for f in futures)
    assert not any(_alive(p) for p in pool.pids())
    with pytest.raises(RuntimeError):
        pool.submit(_pid_after, 0)

"""The scheduler's pool, through public means only: it kills the workers still computing
when asked, and learns it is broken when one of its workers dies."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tilefan.bootstrap import embedded_ports
from tilefan.service.worker_pool import WorkerPool


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child that nobody has reaped yet is a zombie: dead for our purpose.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_kill_stops_the_workers_still_computing(tmp_path: Path) -> None:
    pool = WorkerPool(2, "fork", lambda: embedded_ports(tmp_path))
    pids = {pool.submit(_pid_after, 0.2).result() for _ in range(4)}
    assert pids and all(_alive(p) for p in pids)
    busy = pool.submit(_pid_after, 60)
    started = time.monotonic()
    pool.kill()
    assert time.monotonic() - started < 30  # it did not wait for the minute-long task
    # SIGKILL is delivered at once, but a process takes a moment to die and be reaped.
    wait_until(lambda: not any(_alive(p) for p in pids) or None, "the workers dead", timeout=10)
    wait_until(lambda: busy.done() or None, "the busy task ended", timeout=10)


def test_a_dead_worker_marks_the_pool_broken(tmp_path: Path) -> None:
    pool = WorkerPool(2, "fork", lambda: embedded_ports(tmp_path))
    pid = pool.submit(_pid_after, 0).result()
    assert not pool.broken
    doomed = pool.submit(_pid_after, 30)
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    # Whichever worker runs it, a worker's death fails every pending task of the pool.
    with pytest.raises(BrokenProcessPool):
        doomed.result(timeout=30)
    assert pool.broken
    pool.kill()

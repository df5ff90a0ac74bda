"""What runs inside each process of the scheduler's pool: setup, and one tile.

Workers must never outlive the process that owns the pool, however it exits (kill -9
included), or they keep computing and recording tiles for a scheduler that is gone. Two
guards: the kernel's parent-death signal (``PR_SET_PDEATHSIG``, Linux) kills a worker when
its parent dies, and a watchdog thread exits it when the owner's pid is gone (under
"forkserver" the parent is the fork server, not the owner).
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from tilefan.compute import threads
from tilefan.compute.threads import ComputeBudget, CoreTokens, usable_cpus
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.tile import TileRun, run_tile

PR_SET_PDEATHSIG = 1
WATCH_INTERVAL_S = 0.5

_worker_ports: Ports | None = None


def die_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when its parent exits; False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(owner_pid: int) -> None:
    while owner_alive(owner_pid):
        time.sleep(WATCH_INTERVAL_S)
    os._exit(1)  # no cleanup: the owner is gone and nothing here is worth finishing


def init_worker(make_ports: Callable[[], Ports], owner_pid: int, tokens: CoreTokens | None = None) -> None:
    """Pool initializer: die with the owner, open this process's ports, and share the cores.

    Atoms tiles run on every core through ``tokens`` (one per core, shared by all workers);
    BLAS keeps one thread per worker, since its threads cannot take turns on a token and
    the workers' own tiles already keep every core busy.
    """
    global _worker_ports
    die_with_parent()
    if os.getppid() != owner_pid and not owner_alive(owner_pid):
        os._exit(1)  # the owner died while this worker was starting
    threading.Thread(target=_watch, args=(owner_pid,), name="owner-watchdog", daemon=True).start()
    threads.configure(ComputeBudget(usable_cpus(), tokens, blas_threads=1))  # applied at the first matrix product
    _worker_ports = make_ports()


def worker_ports() -> Ports:
    """This pool worker's ports, opened by ``init_worker``."""
    assert _worker_ports is not None, "init_worker did not run"
    return _worker_ports


def tile_in_worker(job_id: str, tile_id: int, route: str, kernel: Callable[..., Any],
                   ports: Ports | None = None) -> TileRun:
    """One tile, through this pool worker's ports (or ``ports``, when run inline by the scheduler)."""
    return run_tile(ports or worker_ports(), job_id, tile_id, worker=f"local-{os.getpid()}", route=route,
                    atoms_kernel=kernel)

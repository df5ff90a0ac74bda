"""Input files kept memory-mapped between one process's tiles.

A matmul tile reads its A row panel and B column panel as views of the inputs' ``.npy``
files mapped read-only. Mapping them afresh for every tile costs twice: when a tile's views
die the kernel tears down the page tables of every page the tile touched (11-15 ms for
two 8192² float64 inputs after a 2048² tile), and the next tile faults those pages in
again. One-thread tiles of that job took 1.31 s each with the files kept mapped against
1.34-1.37 s mapped per tile (BENCHMARKS.md, input files kept mapped).

So a process keeps the last ``KEPT`` files it mapped, each for as long as it is the same
file (device, inode, size, modification time and header, checked at every read: a file
replaced or rewritten is mapped again), and drops any left unused for ``IDLE_S`` (a thread
that looks every ``IDLE_S / 2``, so 10-15 s after its last read), so a served worker does
not hold a deleted input's disk space for long. A forked child starts
with none (it would otherwise hold its parent's mappings with no one to drop them).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from tilefan.adapters.npy_header import NpyHeader, npy_from, read_header

KEPT = 2  # a matmul's A and B, an add's two inputs
IDLE_S = 10.0

Identity = tuple[int, int, int, int, NpyHeader]


class MappedInputs:
    """This process's kept mappings, by path; thread-safe (the scheduler's inline tiles and
    its plan and reduce threads share a store)."""

    def __init__(self, kept: int = KEPT, idle_s: float = IDLE_S) -> None:
        self.kept, self.idle_s = kept, idle_s
        self._maps: OrderedDict[Path, tuple[Identity, np.ndarray, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._janitor_pid = 0

    def get(self, path: Path, label: str) -> np.ndarray:
        """The ``.npy`` file at ``path`` mapped read-only, from a kept mapping of the same file
        (its header included: a file rewritten in place within the clock's tick keeps its
        size and mtime) if there is one; ``npy_header``'s errors, naming ``label``."""
        with open(path, "rb") as fp:
            st, header = os.fstat(fp.fileno()), read_header(fp, label)
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, header)
            with self._lock:
                held = self._maps.get(path)
                if held is not None and held[0] == identity:
                    self._maps[path] = (identity, held[1], time.monotonic())
                    self._maps.move_to_end(path)
                    return held[1]
            array = npy_from(fp, header, label, mmap=True)
        if not isinstance(array, np.memmap):
            return array  # an empty array maps nothing
        with self._lock:
            self._maps[path] = (identity, array, time.monotonic())
            self._maps.move_to_end(path)
            while len(self._maps) > self.kept:
                self._maps.popitem(last=False)
            if self._janitor_pid != os.getpid():
                try:
                    threading.Thread(target=self._drop_idle, name="tilefan-unmap", daemon=True).start()
                except RuntimeError:  # no thread to be had (a process at its limit): keep nothing
                    del self._maps[path]
                    return array
                self._janitor_pid = os.getpid()  # the thread waits for this lock before it looks
        return array

    def clear(self) -> None:
        with self._lock:
            self._maps.clear()

    def __len__(self) -> int:
        return len(self._maps)

    def _drop_idle(self) -> None:
        """Drop mappings unused for ``idle_s``; ends when none is left (``get`` starts another)."""
        while True:
            time.sleep(self.idle_s / 2)
            with self._lock:
                now = time.monotonic()
                for path in [p for p, (_, _, used) in self._maps.items() if now - used >= self.idle_s]:
                    del self._maps[path]
                if not self._maps:
                    self._janitor_pid = 0
                    return

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a parent's thread may have held it at the fork
        self._maps.clear()
        self._janitor_pid = 0


MAPPED = MappedInputs()
os.register_at_fork(after_in_child=MAPPED._after_fork)

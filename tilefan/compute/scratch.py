"""A block buffer each thread reuses from one tile to the next.

A matrix tile's block is BLAS's output before it is written to the store. A new array for
each tile is new pages for the kernel to fault in and zero (32 MiB for a 2048² float64
block, 128 MiB for 4096²); a process computes its tiles one after another, so the same
buffer serves them all while their shape and dtype repeat. Per thread: the embedded
scheduler runs small jobs' tiles on threads of one process.
"""

from __future__ import annotations

import threading

import numpy as np

_local = threading.local()


def block(shape: tuple[int, int], dtype: str) -> np.ndarray:
    """An uninitialised array of ``shape`` and ``dtype``: the one this thread was last given
    when they match. Its contents are the caller's until the thread's next call."""
    held: np.ndarray | None = getattr(_local, "block", None)
    if held is None or held.shape != shape or held.dtype != np.dtype(dtype):
        held = None  # the old one is freed before the new one is made
        _local.block = held = np.empty(shape, dtype)
    return held

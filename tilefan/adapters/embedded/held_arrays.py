"""A home's blob store that serves some ``.npy`` inputs from arrays in this process's memory.

The Python API's one-shot run (``tilefan.matmul(a, b)`` on NumPy arrays) used to write each
array into the home as a ``.npy`` file for the tiles to map again: a copy of every input
through the page cache (0.1 s for 128 MiB here, about 6% of a 4096³ product), plus freeing
the previous call's file. Held instead, the job's record names the same path, the
submission reads the array's shape and dtype from memory, and the tiles slice the caller's
array itself. The scheduler's pool workers are forked from this process after the job is
submitted, so they see the same pages (copy-on-write, only ever read), with no copy.

Only a home no other process will read may hold its inputs: the Python API's temporary
home, which no server knows of and which is gone with the call (a kept home's inputs are
written, so that ``tilefan resume`` can finish a crashed call's job).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from tilefan.adapters.embedded.localfs import LocalBlobStore


class HeldBlobStore(LocalBlobStore):
    """``LocalBlobStore`` with ``held`` (absolute path -> C-contiguous array) read from memory."""

    def __init__(self, root: str | os.PathLike[str], held: Mapping[str, np.ndarray]) -> None:
        super().__init__(root)
        self.held = held

    def array_info(self, key: str) -> tuple[tuple[int, ...], str]:
        array = self.held.get(key)
        if array is None:
            return super().array_info(key)
        return array.shape, array.dtype.name

    def read_rows(self, key: str, rows: tuple[int, int], cols: tuple[int, int] | None = None) -> np.ndarray:
        array = self.held.get(key)
        if array is None:
            return super().read_rows(key, rows, cols)
        # A read-only view, as a file's read-only mapping would be: no tile writes an input.
        view = array[rows[0] : rows[1]] if cols is None else array[rows[0] : rows[1], cols[0] : cols[1]]
        view.flags.writeable = False
        return view

    def read_array(self, key: str) -> np.ndarray:
        array = self.held.get(key)
        if array is None:
            return super().read_array(key)
        return array.copy()  # np.load's answer is the caller's own to change

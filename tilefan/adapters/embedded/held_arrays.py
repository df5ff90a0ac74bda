"""A temporary home whose job reads its inputs from, and writes its outputs to, this process's memory.

The Python API's one-shot run (``tilefan.matmul(a, b)`` on NumPy arrays) used to write each
array into the home as a ``.npy`` file for the tiles to map again, and to build the result
in a mapped file that it then mapped once more and removed: a copy of every input through
the page cache, and a file-backed page fault for every page of the output (about a third of
a 2000×1500·1500×1000 product's time here). Held instead:

* an **input**'s path names the caller's array: the submission reads its shape and dtype
  from memory, and the tiles slice the array itself; an array the job stores for its tiles
  (an atoms job's table) is kept the same way;
* an **output** under the home (the result, an atoms field) is an array in this process's
  memory, made at its first write, into which the tiles computed here write directly.
  Committing it publishes the array under the output's path, where the caller takes it
  (``HeldArrays.result``). A job whose tiles go to forked pool workers instead (an add, an
  atoms job on NumPy's kernel) has its outputs built as files, as in any home
  (``to_files``, which the scheduler calls before it dispatches them): memory a worker
  could write into would have to be shared, and the caller's result would then stay
  shared with every process it forks later.

Only a home no other process will read may hold its arrays: the Python API's temporary
home, which no server knows of and which is gone with the call (a kept home's inputs and
outputs are files, so that ``tilefan resume`` can finish a crashed call's job). An output
larger than ``max_output_bytes`` stays a file, which the kernel may page out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tilefan.adapters.embedded.localfs import LocalBlobStore
from tilefan.domain.chunks import chunked_ref
from tilefan.domain.regions import clip, fit_block
from tilefan.domain.tiling import region_slices
from tilefan.errors import StoreError


@dataclass(eq=False)
class HeldOutput:
    """One output: its key, shape and dtype, the job writing it, and its array once written."""

    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    job_id: str
    array: np.ndarray | None = None
    committed: bool = False


@dataclass(eq=False)
class HeldArrays:
    """What one temporary ``home`` keeps in memory, by resolved path: arrays read as inputs (the
    caller's, C-contiguous, and those the job stores), and outputs being written or committed."""

    home: Path
    max_output_bytes: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: dict[str, HeldOutput] = field(default_factory=dict)
    owner: int = field(default_factory=os.getpid)

    def __post_init__(self) -> None:
        self.home = self.home.resolve()

    def hold(self, path: str | os.PathLike[str], array: np.ndarray) -> None:
        """Read ``array`` wherever ``path`` is read."""
        self.arrays[str(Path(path).resolve())] = array

    def result(self, path: str) -> np.ndarray | None:
        """The committed output at ``path`` (the path the job's result names), if held."""
        out = self.outputs.get(path)
        return out.array if out is not None and out.committed else None

    def holds(self, path: Path, key: str, shape: tuple[int, ...], dtype: str) -> bool:
        """Whether an array made at ``path`` is held: a ``.npy`` in the home, in memory's limit,
        made by the process that owns the arrays (one made in a forked worker is a file)."""
        return (os.getpid() == self.owner and chunked_ref(key) is None and path.resolve().is_relative_to(self.home)
                and int(np.prod(shape)) * np.dtype(dtype).itemsize <= self.max_output_bytes)


class HeldBlobStore(LocalBlobStore):
    """``LocalBlobStore`` that reads ``held``'s inputs from memory and keeps its outputs there."""

    def __init__(self, root: str | os.PathLike[str], held: HeldArrays) -> None:
        super().__init__(root)
        self.held = held

    def _final(self, key: str) -> str:
        # The path ``commit_array`` answers with, and the caller asks for.
        return str(self.path(key).resolve())

    def _committed(self, key: str) -> np.ndarray | None:
        final = self._final(key)
        array = self.held.arrays.get(final)
        return array if array is not None else self.held.result(final)

    def _writing(self, key: str, job_id: str) -> HeldOutput | None:
        out = self.held.outputs.get(self._final(key))
        return out if out is not None and not out.committed and out.job_id == job_id else None

    def _array(self, out: HeldOutput) -> np.ndarray:
        if os.getpid() != self.held.owner:
            # A forked worker's writes would land in its own copy of the pages, and be lost.
            raise StoreError(f"output {out.key} of job {out.job_id} is in another process's memory")
        if out.array is None:
            out.array = np.zeros(out.shape, out.dtype)  # zeros, as a new sparse file reads
        return out.array

    # ------------------------------------------------------------------ MemoryOutputs

    def would_hold(self, key: str, shape: tuple[int, ...], dtype: str) -> bool:
        return self.held.holds(self.path(key), key, tuple(shape), dtype)

    def in_memory(self, job_id: str) -> bool:
        return any(out.job_id == job_id and not out.committed for out in self.held.outputs.values())

    def to_files(self, job_id: str) -> None:
        for final, out in list(self.held.outputs.items()):
            if out.job_id != job_id or out.committed:
                continue
            del self.held.outputs[final]
            super().create_array(out.key, out.shape, out.dtype.name, job_id)
            if out.array is not None:  # written here before (a resumed run): keep what it holds
                super().write_region(out.key, job_id, tuple((0, n) for n in out.shape), out.array)

    # ------------------------------------------------------------------ reads

    def array_info(self, key: str) -> tuple[tuple[int, ...], str]:
        array = self._committed(key)
        if array is None:
            return super().array_info(key)
        return array.shape, array.dtype.name

    def read_rows(self, key: str, rows: tuple[int, int], cols: tuple[int, int] | None = None) -> np.ndarray:
        array = self._committed(key)
        if array is None:
            return super().read_rows(key, rows, cols)
        # A read-only view, as a file's read-only mapping would be: no tile writes an input.
        view = array[rows[0] : rows[1]] if cols is None else array[rows[0] : rows[1], cols[0] : cols[1]]
        view.flags.writeable = False
        return view

    def read_array(self, key: str) -> np.ndarray:
        array = self._committed(key)
        if array is None:
            return super().read_array(key)
        return array.copy()  # np.load's answer is the caller's own to change

    def write_array(self, key: str, array: np.ndarray) -> None:
        path = self.path(key)
        if not self.held.holds(path, key, array.shape, array.dtype.name):
            super().write_array(key, array)
            return
        self.held.hold(path, np.array(array, order="C"))  # np.save's copy: the writer's array is its own

    # ------------------------------------------------------------------ outputs

    def create_array(self, key: str, shape: tuple[int, ...], dtype: str, job_id: str,
                     chunks: tuple[int, ...] | None = None) -> None:
        if not self.would_hold(key, shape, dtype):
            super().create_array(key, shape, dtype, job_id, chunks)
            return
        # Made at its first write, as this process's own pages (``to_files`` first, for a job
        # whose tiles go to the pool).
        self.held.outputs[self._final(key)] = HeldOutput(key, tuple(shape), np.dtype(dtype), job_id)

    def output_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]]) -> np.ndarray | None:
        out = self._writing(key, job_id)
        if out is None:
            return None  # a file: ``write_region``
        return self._array(out)[region_slices(clip(region, out.shape))]

    def write_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]], block: np.ndarray) -> None:
        out = self._writing(key, job_id)
        if out is None:
            super().write_region(key, job_id, region, block)
            return
        self._array(out)[region_slices(fit_block(region, out.shape, block.shape))] = block

    def read_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]]) -> np.ndarray:
        out = self._writing(key, job_id)
        array = self._array(out) if out is not None else self.held.result(self._final(key))
        if array is None:
            return super().read_region(key, job_id, region)
        return array[region_slices(tuple(region))]

    def commit_array(self, key: str, job_id: str) -> str:
        out = self._writing(key, job_id)
        if out is None:
            return super().commit_array(key, job_id)
        holder = self._holder(key)
        if holder not in (None, job_id):
            self.discard_array(key, job_id)
            raise StoreError(f"output {key} was claimed by job {holder} while job {job_id} ran; "
                             "it was not overwritten")
        self._array(out)  # an output no tile wrote (no tiles) reads as zeros, as a file would
        out.committed = True
        self._release(key, job_id)
        return self._final(key)

    def discard_array(self, key: str, job_id: str) -> None:
        if self._writing(key, job_id) is not None:
            del self.held.outputs[self._final(key)]
        super().discard_array(key, job_id)

    def delete(self, key: str) -> None:
        self.held.outputs.pop(self._final(key), None)
        self.held.arrays.pop(self._final(key), None)
        super().delete(key)

    def delete_prefix(self, prefix: str) -> None:
        under = Path(self._final(prefix))
        for held in (self.held.outputs, self.held.arrays):
            for path in [p for p in held if Path(p).is_relative_to(under)]:
                del held[path]
        super().delete_prefix(prefix)

"""Blob store on a local directory of ``.npy`` files (the embedded backend).

Keys that are absolute paths are the user's own files; other keys live under ``root``.
Outputs are built in a hidden ``.<name>.<job>.partial`` file next to the destination:
tiles write their regions into it with ``pwrite`` (no whole-array copies between
processes), and ``commit_array`` renames it into place, so a reader never sees a
half-written output and a failed job leaves nothing behind.

Keys naming a Zarr array or an HDF5 dataset (``tilefan.domain.chunks``) go to
``chunked_files`` instead: the same contract, with a Zarr output built as a hidden
directory whose chunks are the tiles.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from tilefan.adapters.embedded import chunked_files
from tilefan.adapters.embedded.mapped_inputs import MAPPED
from tilefan.adapters.npy_header import NpyHeader, load_npy, npy_header, read_header
from tilefan.domain.chunks import chunked_ref, is_zarr
from tilefan.domain.regions import fit_block, run_axis, run_offsets
from tilefan.domain.tiling import region_slices
from tilefan.errors import BlobNotFoundError, InvalidBlobError, StoreError
from tilefan.pipeline.ports import JobStore, Ports


@contextmanager
def _npy_file(path: Path) -> Iterator[None]:
    """Opening ``path`` as a ``.npy`` file: a missing one is BlobNotFoundError, a directory
    InvalidBlobError, whoever opens it (a header read, a load, a kept mapping)."""
    try:
        yield
    except FileNotFoundError:
        raise BlobNotFoundError(str(path)) from None
    except IsADirectoryError:
        raise InvalidBlobError(str(path), "is a directory, not a .npy file") from None


def _read_header(path: Path) -> NpyHeader:
    with _npy_file(path), open(path, "rb") as fp:
        return read_header(fp, str(path))


def _load(path: Path, *, mmap: bool = False) -> np.ndarray:
    """The array at ``path`` in one open (a tile's hot path)."""
    with _npy_file(path):
        return load_npy(path, str(path), mmap=mmap)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    # pwrite may write less than asked (Linux caps one call near 2 GiB).
    while len(data):
        written = os.pwrite(fd, data, offset)
        data = data[written:]
        offset += written


def _reserve(fp: BinaryIO, size: int) -> None:
    """Give the output file its final size with its blocks reserved, not a sparse hole.

    Where the filesystem allocates ahead (ext4, XFS, btrfs, tmpfs), tiles' writes find
    their blocks there. On ext4, writes into a hole are delayed allocations, and renaming
    such a file over an older output makes the kernel flush its data first: 0.2–0.3 s for
    an 8192² float64 output, 0.03 s with the blocks reserved. A disk too small for the
    output fails here, at create, not in a tile after the job has spent its compute.
    """
    fp.flush()
    reserve = getattr(os, "posix_fallocate", None)  # not on macOS
    if reserve is None:
        fp.truncate(size)
        return
    reserve(fp.fileno(), 0, size)


class LocalBlobStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ paths

    def path(self, key: str) -> Path:
        p = Path(key)
        return p if p.is_absolute() else self.root / key

    def _partial(self, key: str, job_id: str) -> Path:
        final = self.path(key)
        return final.with_name(f".{final.name}.{job_id}.partial")

    # ------------------------------------------------------------------ json and bytes

    def put_json(self, key: str, value: Any) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(value))
        os.replace(tmp, path)

    def get_json(self, key: str) -> Any:
        try:
            return json.loads(self.path(key).read_text())
        except FileNotFoundError:
            raise BlobNotFoundError(key) from None

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(key) from None
        except IsADirectoryError:
            raise InvalidBlobError(key, "is a directory, not a file") from None

    # ------------------------------------------------------------------ arrays

    def array_info(self, key: str) -> tuple[tuple[int, ...], str]:
        ref = chunked_ref(key)
        if ref is not None:
            return chunked_files.array_info(ref, self.path(ref.path), key)
        header = _read_header(self.path(key))
        return header.shape, header.dtype.name

    def _mmap(self, key: str) -> np.ndarray:
        path = self.path(key)
        try:
            with _npy_file(path):
                return MAPPED.get(path, str(path))
        except ValueError as exc:
            raise InvalidBlobError(key, f"cannot be memory-mapped ({exc})") from None

    def read_rows(self, key: str, rows: tuple[int, int], cols: tuple[int, int] | None = None) -> np.ndarray:
        ref = chunked_ref(key)
        if ref is not None:
            return chunked_files.read_block(ref, self.path(ref.path), key, rows, cols)
        arr = self._mmap(key)
        if cols is None:
            return arr[rows[0] : rows[1]]
        return arr[rows[0] : rows[1], cols[0] : cols[1]]

    def read_array(self, key: str) -> np.ndarray:
        return _load(self.path(key))

    def write_array(self, key: str, array: np.ndarray) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fp:
            np.save(fp, array)
        os.replace(tmp, path)

    def create_array(self, key: str, shape: tuple[int, ...], dtype: str, job_id: str,
                     chunks: tuple[int, ...] | None = None) -> None:
        partial = self._partial(key, job_id)
        if chunked_ref(key) is not None:
            chunked_files.create(partial, shape, dtype, chunks, key)
            return
        try:
            partial.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as fp:
                fp.write(npy_header(tuple(shape), np.dtype(dtype)))
                _reserve(fp, fp.tell() + math.prod(shape) * np.dtype(dtype).itemsize)
        except OSError as exc:
            partial.unlink(missing_ok=True)  # a disk too small for it leaves nothing behind
            raise StoreError(f"cannot create output {key}: {exc.strerror}") from None

    def write_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]], block: np.ndarray) -> None:
        partial = self._partial(key, job_id)
        if chunked_ref(key) is not None:
            chunked_files.write(partial, key, region, block)
            return
        header = _read_header(partial)
        region = fit_block(region, header.shape, block.shape)
        data = np.ascontiguousarray(block, dtype=header.dtype)
        # Each contiguous run of the region in the file is one pwrite (a run holds the
        # rest of the block at its index), so no whole-array copy crosses processes.
        cut = run_axis(header.shape, region)
        runs = data.reshape((*data.shape[:cut], -1))
        fd = os.open(partial, os.O_WRONLY)
        try:
            for idx, start in run_offsets(header.shape, region):
                _pwrite_all(fd, memoryview(runs[idx]).cast("B"), header.offset + start * header.dtype.itemsize)
        finally:
            os.close(fd)

    def read_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]]) -> np.ndarray:
        partial = self._partial(key, job_id)
        path = partial if partial.exists() else self.path(key)
        if chunked_ref(key) is not None:
            return chunked_files.read(path, key, region)
        arr = _load(path, mmap=True)  # BlobNotFoundError when neither exists
        return arr[region_slices(tuple(region))]

    def commit_array(self, key: str, job_id: str) -> str:
        final = self.path(key)
        holder = self._holder(key)
        if holder not in (None, job_id):
            self.discard_array(key, job_id)
            raise StoreError(f"output {key} was claimed by job {holder} while job {job_id} ran; "
                             "it was not overwritten")
        if chunked_ref(key) is not None:
            where = chunked_files.commit(self._partial(key, job_id), final, key, job_id)
            self._release(key, job_id)
            return where
        try:
            os.replace(self._partial(key, job_id), final)
        except FileNotFoundError:
            raise StoreError(f"output {key} of job {job_id} was never created") from None
        self._release(key, job_id)
        return str(final.resolve())

    def discard_array(self, key: str, job_id: str) -> None:
        chunked_files.remove(self._partial(key, job_id))
        self._release(key, job_id)

    # ------------------------------------------------------------------ output claims

    def _lock(self, key: str) -> Path:
        final = self.path(key)
        return final.with_name(f".{final.name}.writer")

    def _holder(self, key: str) -> str | None:
        try:
            return self._lock(key).read_text() or None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def claim_output(self, key: str, job_id: str) -> str | None:
        """Claim ``key`` for ``job_id`` (atomically, across processes); the holder's id if taken."""
        ref = chunked_ref(key)
        if ref is not None:
            chunked_files.check_output(key, ref)
        lock = self._lock(key)
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return self._holder(key) or job_id
        except (OSError, ValueError) as exc:  # a name too long, a NUL, a file where a directory goes
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise InvalidBlobError(key, f"cannot be written: {reason}") from None
        with os.fdopen(fd, "w") as fp:
            fp.write(job_id)
        return None

    def take_output(self, key: str, job_id: str) -> None:
        """Take over a claim whose holder has ended."""
        lock = self._lock(key)
        tmp = lock.with_name(f"{lock.name}.{job_id}")
        tmp.write_text(job_id)
        os.replace(tmp, lock)

    def _release(self, key: str, job_id: str) -> None:
        if self._holder(key) == job_id:
            self._lock(key).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        if is_zarr(key):
            chunked_files.remove(self.path(key))  # a committed Zarr output is a directory
            return
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self.path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def local_ports(blobs: LocalBlobStore, jobs: JobStore) -> Ports:
    """The embedded adapter set's ports: tiles read their inputs' blocks as views of mapped
    files, a user names output paths, so outputs are claimed, and ``tilefan serve`` receives
    uploads itself."""
    return Ports(blobs, jobs, claims=blobs, direct_put=blobs, local_files=blobs, mapped_reads=True)

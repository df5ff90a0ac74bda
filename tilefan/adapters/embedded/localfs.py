"""Blob store on a local directory of ``.npy`` files (the embedded backend).

Keys that are absolute paths are the user's own files; other keys live under ``root``.
Outputs are built in a hidden ``.<name>.<job>.partial`` file next to the destination:
tiles write their regions into it with ``pwrite`` (no whole-array copies between
processes) and ``commit_array`` renames it into place, so a reader never sees a
half-written output and a failed job leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tilefan.errors import BlobNotFoundError, InvalidBlobError, StoreError


def _read_header(path: Path) -> tuple[tuple[int, ...], np.dtype[Any], bool, int]:
    try:
        with open(path, "rb") as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            return tuple(shape), dtype, fortran, fp.tell()
    except FileNotFoundError:
        raise BlobNotFoundError(str(path)) from None
    except IsADirectoryError:
        raise InvalidBlobError(str(path), "is a directory, not a .npy file") from None
    except ValueError as exc:
        raise InvalidBlobError(str(path), f"not a valid .npy file ({exc})") from None


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    # pwrite may write less than asked (Linux caps one call near 2 GiB).
    while len(data):
        written = os.pwrite(fd, data, offset)
        data = data[written:]
        offset += written


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
        shape, dtype, _, _ = _read_header(self.path(key))
        return shape, dtype.name

    def _mmap(self, key: str) -> np.ndarray:
        path = self.path(key)
        _read_header(path)  # uniform errors for missing or malformed files
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise InvalidBlobError(key, f"cannot be memory-mapped ({exc})") from None

    def read_rows(self, key: str, rows: tuple[int, int], cols: tuple[int, int] | None = None) -> np.ndarray:
        arr = self._mmap(key)
        if cols is None:
            return arr[rows[0] : rows[1]]
        return arr[rows[0] : rows[1], cols[0] : cols[1]]

    def read_array(self, key: str) -> np.ndarray:
        path = self.path(key)
        _read_header(path)
        return np.load(path, allow_pickle=False)

    def write_array(self, key: str, array: np.ndarray) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fp:
            np.save(fp, array)
        os.replace(tmp, path)

    def create_array(self, key: str, shape: tuple[int, ...], dtype: str, job_id: str) -> None:
        partial = self._partial(key, job_id)
        try:
            partial.parent.mkdir(parents=True, exist_ok=True)
            header = {
                "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                "fortran_order": False,
                "shape": tuple(shape),
            }
            with open(partial, "wb") as fp:
                np.lib.format.write_array_header_1_0(fp, header)
                # A sparse file of the final size: tiles fill it in place.
                fp.truncate(fp.tell() + int(np.prod(shape)) * np.dtype(dtype).itemsize)
        except OSError as exc:
            raise StoreError(f"cannot create output {key}: {exc.strerror}") from None

    def write_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]], block: np.ndarray) -> None:
        partial = self._partial(key, job_id)
        shape, dtype, _, offset = _read_header(partial)
        data = np.ascontiguousarray(block, dtype=dtype)
        starts = [r[0] for r in region]
        # Axes after ``cut`` are covered whole, so for fixed indices on the axes before
        # it the rest of the block is one contiguous run in the file: one pwrite each.
        cut = len(shape) - 1
        while cut > 0 and tuple(region[cut]) == (0, shape[cut]):
            cut -= 1
        strides = [int(np.prod(shape[a + 1 :], dtype=np.int64)) for a in range(len(shape))]
        base = starts[cut] * strides[cut]
        run = data.reshape((*data.shape[:cut], -1))
        fd = os.open(partial, os.O_WRONLY)
        try:
            for idx in np.ndindex(*data.shape[:cut]):
                flat = base + sum((starts[a] + idx[a]) * strides[a] for a in range(cut))
                _pwrite_all(fd, memoryview(run[idx]).cast("B"), offset + flat * dtype.itemsize)
        finally:
            os.close(fd)

    def read_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]]) -> np.ndarray:
        partial = self._partial(key, job_id)
        path = partial if partial.exists() else self.path(key)
        _read_header(path)  # BlobNotFoundError when neither exists
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        return arr[tuple(slice(a, b) for a, b in region)]

    def commit_array(self, key: str, job_id: str) -> str:
        final = self.path(key)
        try:
            os.replace(self._partial(key, job_id), final)
        except FileNotFoundError:
            raise StoreError(f"output {key} of job {job_id} was never created") from None
        return str(final.resolve())

    def discard_array(self, key: str, job_id: str) -> None:
        self._partial(key, job_id).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self.path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)

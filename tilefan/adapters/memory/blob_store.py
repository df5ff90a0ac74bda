"""Blob store in a dict (the in-memory backend): the same contract as ``localfs``.

Every object is bytes, arrays as whole ``.npy`` files, so reads go through the same
header checks as the other stores and give the same errors. An output being built is a
NumPy array kept apart from the objects until ``commit_array`` turns it into one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from tilefan.adapters.npy_header import from_npy, parse_header, to_npy
from tilefan.domain.regions import fit_block
from tilefan.domain.tiling import region_slices
from tilefan.errors import BlobNotFoundError, StoreError

# Where ``keys`` shows outputs that are not committed yet.
PARTIAL_PREFIX = ".partial/"


class MemoryBlobStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, bytes] = {}
        self._outputs: dict[tuple[str, str], np.ndarray] = {}

    def keys(self) -> set[str]:
        """Every object held, and every output being built as ``.partial/<job>/<key>``."""
        with self._lock:
            return set(self._objects) | {f"{PARTIAL_PREFIX}{job}/{key}" for key, job in self._outputs}

    # ------------------------------------------------------------------ json and bytes

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._lock:
            self._objects[key] = bytes(data)

    def read_bytes(self, key: str) -> bytes:
        with self._lock:
            data = self._objects.get(key)
        if data is None:
            raise BlobNotFoundError(key)
        return data

    def put_json(self, key: str, value: Any) -> None:
        self.put_bytes(key, json.dumps(value).encode())

    def get_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    # ------------------------------------------------------------------ arrays

    def array_info(self, key: str) -> tuple[tuple[int, ...], str]:
        header = parse_header(self.read_bytes(key), key)
        return header.shape, header.dtype.name

    def read_array(self, key: str) -> np.ndarray:
        return from_npy(self.read_bytes(key), key)

    def read_rows(self, key: str, rows: tuple[int, int], cols: tuple[int, int] | None = None) -> np.ndarray:
        array = self.read_array(key)
        return array[rows[0] : rows[1]] if cols is None else array[rows[0] : rows[1], cols[0] : cols[1]]

    def write_array(self, key: str, array: np.ndarray) -> None:
        self.put_bytes(key, to_npy(array))

    # ------------------------------------------------------------------ outputs

    def create_array(self, key: str, shape: tuple[int, ...], dtype: str, job_id: str,
                     chunks: tuple[int, ...] | None = None) -> None:
        # Starting again (a retried plan) starts from nothing; unwritten cells are zero.
        with self._lock:
            self._outputs[(key, job_id)] = np.zeros(tuple(shape), dtype=np.dtype(dtype))

    def write_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]], block: np.ndarray) -> None:
        with self._lock:
            output = self._outputs.get((key, job_id))
            if output is None:
                raise BlobNotFoundError(key)
            output[region_slices(fit_block(region, output.shape, block.shape))] = block

    def read_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]]) -> np.ndarray:
        with self._lock:
            output = self._outputs.get((key, job_id))
            if output is not None:
                return output[region_slices(tuple(region))].copy()
        # Committed (or never created: the read then raises BlobNotFoundError).
        return self.read_array(key)[region_slices(tuple(region))]

    def commit_array(self, key: str, job_id: str) -> str:
        with self._lock:
            output = self._outputs.pop((key, job_id), None)
            if output is None:
                raise StoreError(f"output {key} of job {job_id} was never created")
            self._objects[key] = to_npy(output)
        return key

    def discard_array(self, key: str, job_id: str) -> None:
        with self._lock:
            self._outputs.pop((key, job_id), None)

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def delete_prefix(self, prefix: str) -> None:
        # Like removing a directory: "jobs/a" must not take "jobs/ab" with it.
        folder = prefix.rstrip("/") + "/"
        with self._lock:
            for key in [k for k in self._objects if k.startswith(folder)]:
                del self._objects[key]

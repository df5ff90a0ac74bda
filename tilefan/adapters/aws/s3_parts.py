"""Outputs built from part objects: how the S3 blob store fills an array without partial writes.

S3 cannot write into the middle of an object, so an output is never written in place.
Each tile's block becomes its own part object under ``jobs/<job>/parts/<output>/``, named
after its region (so a retried tile overwrites its own part), next to a ``meta.json``
holding the shape and dtype. A part object is the block's ``.npy`` header and then its
bytes in C order, so a run of rows of it is one byte range.

``commit_array`` (and the reduce step) build the output with ``tilefan.pipeline.assemble``:
one multipart upload whose parts are server-side copies of full-width blocks' rows where
they are big enough (UploadPartCopy), and rows built from ranged reads elsewhere. The
output becomes visible at the key only when the upload completes; then the parts go.

``PartBuiltOutputs`` holds that logic (it implements ``PartAssembly``); the store that
inherits it supplies the object I/O (get, put, list, delete, the multipart requests and
the ranged row reads).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from tilefan.adapters.npy_header import npy_header
from tilefan.domain.assembly import PartLimits
from tilefan.domain.regions import Spans, clip, fit_block, intersect, sizes, slices_within
from tilefan.domain.tiling import Region
from tilefan.errors import BlobNotFoundError, InvalidBlobError, StoreError
from tilefan.pipeline.assemble import assemble_output
from tilefan.pipeline.store_capabilities import OutputLayout

_PART_NAME = re.compile(r"^(\d+-\d+)(_\d+-\d+)*\.npy$")
_META = "meta.json"
_GROUP = "group-{:05d}.bin"  # an output of more than 10,000 parts is built in groups first


class ObjectRef(NamedTuple):
    bucket: str
    key: str


class PartBuiltOutputs(ABC):
    """create/write/read/commit/discard of outputs, over a store's object primitives."""

    bucket: str
    prefix: str
    limits: PartLimits

    @abstractmethod
    def _obj(self, key: str) -> ObjectRef: ...

    @abstractmethod
    def _get(self, obj: ObjectRef, label: str, first: int | None = None, last: int | None = None) -> bytes: ...

    @abstractmethod
    def _get_range(self, obj: ObjectRef, label: str, first: int, last: int) -> bytes | memoryview: ...

    @abstractmethod
    def _put(self, obj: ObjectRef, label: str, body: bytes, content_type: str) -> None: ...

    @abstractmethod
    def _list(self, bucket: str, prefix: str, label: str) -> Iterator[str]: ...

    @abstractmethod
    def _delete(self, bucket: str, keys: Sequence[str], label: str) -> None: ...

    @abstractmethod
    def _start_multipart(self, dest: ObjectRef, label: str) -> str: ...

    @abstractmethod
    def _send_part(self, dest: ObjectRef, label: str, upload: str, number: int, body: bytes) -> str: ...

    @abstractmethod
    def _copy_part(
        self, dest: ObjectRef, label: str, upload: str, number: int, source: ObjectRef, first: int, last: int
    ) -> str: ...

    @abstractmethod
    def _complete_multipart(self, dest: ObjectRef, label: str, upload: str, etags: Sequence[str]) -> None: ...

    @abstractmethod
    def _abort_multipart(self, dest: ObjectRef, label: str, upload: str) -> None: ...

    @abstractmethod
    def io_streams(self) -> int: ...

    @abstractmethod
    def _leading_rows(self, obj: ObjectRef, label: str, rows: tuple[int, int]) -> np.ndarray: ...


    # ------------------------------------------------------------------ where parts live

    def _parts_dir(self, key: str, job_id: str) -> str:
        # One folder per output per job; the hash keeps two outputs with the same file
        # name apart, the readable stem is for people browsing the bucket.
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", key.rstrip("/").rsplit("/", 1)[-1])[:64]
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return f"{self.prefix}jobs/{job_id}/parts/{stem}-{digest}/"

    def _meta_obj(self, key: str, job_id: str) -> ObjectRef:
        return ObjectRef(self.bucket, self._parts_dir(key, job_id) + _META)

    def _meta(self, key: str, job_id: str) -> tuple[tuple[int, ...], np.dtype[Any]] | None:
        try:
            meta = json.loads(self._get(self._meta_obj(key, job_id), key))
        except BlobNotFoundError:
            return None
        return tuple(meta["shape"]), np.dtype(meta["dtype"])

    def _parts(self, key: str, job_id: str) -> list[tuple[Region, ObjectRef]]:
        folder = self._parts_dir(key, job_id)
        found = []
        for name in self._list(self.bucket, folder, key):
            leaf = name[len(folder) :]
            if _PART_NAME.match(leaf):
                found.append((parse_part_name(leaf), ObjectRef(self.bucket, name)))
        return found

    # ------------------------------------------------------------------ the BlobStore port

    def create_array(self, key: str, shape: tuple[int, ...], dtype: str, job_id: str,
                     chunks: tuple[int, ...] | None = None) -> None:
        # Starting again (a retried plan) starts from nothing, as localfs truncates.
        self.discard_array(key, job_id)
        meta = {"key": key, "shape": [int(n) for n in shape], "dtype": np.dtype(dtype).str}
        self._put(self._meta_obj(key, job_id), key, json.dumps(meta).encode(), "application/json")

    def write_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]], block: np.ndarray) -> None:
        meta = self._meta(key, job_id)
        if meta is None:
            raise BlobNotFoundError(key)
        shape, dtype = meta
        region = fit_block(region, shape, block.shape)
        # The header, then the block in C order: the layout read_block_rows and
        # copy_block_part count bytes in.
        data = np.ascontiguousarray(block, dtype=dtype)
        self._put(self._block_obj(key, job_id, region), key, npy_header(data.shape, dtype) + data.tobytes(),
                  "application/octet-stream")

    def read_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]]) -> np.ndarray:
        meta = self._meta(key, job_id)
        if meta is None:
            # Committed (or never created: the read then raises BlobNotFoundError).
            rows = self._leading_rows(self._obj(key), key, region[0])
            return rows[(slice(None), *(slice(a, b) for a, b in region[1:]))]
        shape, dtype = meta
        want = clip(region, shape)
        # Unwritten cells read as zeros, like the sparse file of localfs.
        out = np.zeros(sizes(want), dtype=dtype)
        for part_region, part in self._parts(key, job_id):
            overlap = intersect(want, part_region)
            if overlap is None:
                continue
            # Only the part's rows inside the overlap are fetched (one ranged GET).
            (o0, o1), p0 = overlap[0], part_region[0][0]
            rows = self._leading_rows(part, key, (o0 - p0, o1 - p0))
            out[slices_within(overlap, want)] = rows[slices_within(overlap, ((o0, o1), *part_region[1:]))]
        return out

    def commit_array(self, key: str, job_id: str) -> str:
        return assemble_output(self, key, job_id)

    # ------------------------------------------------------------------ PartAssembly

    def _block_obj(self, key: str, job_id: str, region: Spans) -> ObjectRef:
        return ObjectRef(self.bucket, self._parts_dir(key, job_id) + part_name(region))

    def _group_obj(self, key: str, job_id: str, group: int | None) -> ObjectRef:
        if group is None:
            return self._obj(key)
        return ObjectRef(self.bucket, self._parts_dir(key, job_id) + _GROUP.format(group))

    def part_limits(self) -> PartLimits:
        return self.limits

    def output_layout(self, key: str, job_id: str) -> OutputLayout:
        meta = self._meta(key, job_id)
        if meta is None:
            raise StoreError(f"output {key} of job {job_id} was never created")
        shape, dtype = meta
        return OutputLayout(shape, dtype, npy_header(shape, dtype))

    def stored_blocks(self, key: str, job_id: str) -> list[Region]:
        return [region for region, _ in self._parts(key, job_id)]

    def _block_bytes(self, region: Region, rows: tuple[int, int], dtype: np.dtype[Any]) -> tuple[int, int]:
        """The first and last byte of output rows ``rows`` in the block object of ``region``."""
        shape = sizes(region)
        offset = len(npy_header(shape, dtype))
        row_bytes = math.prod(shape[1:]) * dtype.itemsize
        r0 = region[0][0]
        return offset + (rows[0] - r0) * row_bytes, offset + (rows[1] - r0) * row_bytes - 1

    def read_block_rows(
        self, key: str, job_id: str, region: Region, rows: tuple[int, int], dtype: np.dtype[Any]
    ) -> np.ndarray:
        shape = (rows[1] - rows[0], *sizes(region)[1:])
        if math.prod(shape) == 0:
            return np.empty(shape, dtype=dtype)
        first, last = self._block_bytes(region, rows, dtype)
        data = self._get_range(self._block_obj(key, job_id, region), key, first, last)
        if len(data) != last - first + 1:
            raise InvalidBlobError(key, f"the block of {region} is shorter than its header says")
        return np.frombuffer(data, dtype=dtype).reshape(shape)

    def start_upload(self, key: str, job_id: str, group: int | None) -> str:
        return self._start_multipart(self._group_obj(key, job_id, group), key)

    def upload_part(self, key: str, job_id: str, group: int | None, upload: str, number: int, data: bytes) -> str:
        return self._send_part(self._group_obj(key, job_id, group), key, upload, number, data)

    def copy_block_part(
        self, key: str, job_id: str, group: int | None, upload: str, number: int, region: Region,
        rows: tuple[int, int], dtype: np.dtype[Any],
    ) -> str:
        first, last = self._block_bytes(region, rows, dtype)
        return self._copy_part(self._group_obj(key, job_id, group), key, upload, number,
                               self._block_obj(key, job_id, region), first, last)

    def copy_group_part(
        self, key: str, job_id: str, upload: str, number: int, group: int, first: int, last: int
    ) -> str:
        return self._copy_part(self._obj(key), key, upload, number, self._group_obj(key, job_id, group), first, last)

    def complete_upload(self, key: str, job_id: str, group: int | None, upload: str, receipts: list[str]) -> None:
        self._complete_multipart(self._group_obj(key, job_id, group), key, upload, receipts)

    def abort_upload(self, key: str, job_id: str, group: int | None, upload: str) -> None:
        self._abort_multipart(self._group_obj(key, job_id, group), key, upload)

    def finish_output(self, key: str, job_id: str) -> str:
        # The meta object goes first: once it is gone, readers use the committed object
        # even if deleting the parts is cut short.
        self._drop_parts(key, job_id)
        dest = self._obj(key)
        return f"s3://{dest.bucket}/{dest.key}"

    def _drop_parts(self, key: str, job_id: str) -> None:
        self._delete(self.bucket, [self._meta_obj(key, job_id).key], key)
        self._delete(self.bucket, list(self._list(self.bucket, self._parts_dir(key, job_id), key)), key)

    def discard_array(self, key: str, job_id: str) -> None:
        self._drop_parts(key, job_id)


def part_name(region: Spans) -> str:
    """The part object's name: its region, axis by axis.

    >>> part_name([(0, 4), (8, 12)])
    '0-4_8-12.npy'
    """
    return "_".join(f"{a}-{b}" for a, b in region) + ".npy"


def parse_part_name(name: str) -> Region:
    """The region a part object's name encodes.

    >>> parse_part_name('0-4_8-12.npy')
    ((0, 4), (8, 12))
    """
    spans = name[: -len(".npy")].split("_")
    return tuple((int(a), int(b)) for a, b in (s.split("-") for s in spans))

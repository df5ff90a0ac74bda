"""Outputs built from part objects: how the S3 blob store fills an array without partial writes.

S3 cannot write into the middle of an object, so an output is never written in place.
Each tile's block becomes its own part object under ``jobs/<job>/parts/<output>/``, named
after its region (so a retried tile overwrites its own part), next to a ``meta.json``
holding the shape and dtype. ``commit_array`` streams the parts, band by band, into one
upload that becomes visible at the key only when it completes, then deletes the parts.

``PartBuiltOutputs`` holds that logic; the store that inherits it supplies the object
I/O (get, put, list, delete, upload and the ranged row reads).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from tilefan.adapters.npy_header import npy_header, to_npy
from tilefan.domain.regions import Spans, clip, fit_block, intersect, row_bands, sizes, slices_within
from tilefan.domain.tiling import Region
from tilefan.errors import BlobNotFoundError, StoreError

_PART_NAME = re.compile(r"^(\d+-\d+)(_\d+-\d+)*\.npy$")
_META = "meta.json"


class ObjectRef(NamedTuple):
    bucket: str
    key: str


class PartBuiltOutputs(ABC):
    """create/write/read/commit/discard of outputs, over a store's object primitives."""

    bucket: str
    prefix: str

    @abstractmethod
    def _obj(self, key: str) -> ObjectRef: ...

    @abstractmethod
    def _get(self, obj: ObjectRef, label: str, first: int | None = None, last: int | None = None) -> bytes: ...

    @abstractmethod
    def _put(self, obj: ObjectRef, label: str, body: bytes, content_type: str) -> None: ...

    @abstractmethod
    def _list(self, bucket: str, prefix: str, label: str) -> Iterator[str]: ...

    @abstractmethod
    def _delete(self, bucket: str, keys: Sequence[str], label: str) -> None: ...

    @abstractmethod
    def _upload(self, dest: ObjectRef, label: str, chunks: Iterable[bytes | memoryview], size: int) -> None:
        """Put ``size`` bytes from ``chunks`` at ``dest``, visible only once complete."""

    @abstractmethod
    def _leading_rows(self, obj: ObjectRef, label: str, rows: tuple[int, int]) -> np.ndarray: ...

    @abstractmethod
    def _whole(self, obj: ObjectRef, label: str) -> np.ndarray: ...

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

    def create_array(self, key: str, shape: tuple[int, ...], dtype: str, job_id: str) -> None:
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
        part = ObjectRef(self.bucket, self._parts_dir(key, job_id) + part_name(region))
        self._put(part, key, to_npy(np.ascontiguousarray(block, dtype=dtype)), "application/octet-stream")

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
        meta = self._meta(key, job_id)
        if meta is None:
            raise StoreError(f"output {key} of job {job_id} was never created")
        shape, dtype = meta
        header = npy_header(shape, dtype)
        bands = (band.data.cast("B") for band in self._bands(key, shape, dtype, self._parts(key, job_id)))
        dest = self._obj(key)
        self._upload(dest, key, itertools.chain([header], bands), len(header) + math.prod(shape) * dtype.itemsize)
        # The meta object goes first: once it is gone, readers use the committed object
        # even if deleting the parts is cut short.
        self._drop_parts(key, job_id)
        return f"s3://{dest.bucket}/{dest.key}"

    def _bands(
        self, key: str, shape: tuple[int, ...], dtype: np.dtype[Any], parts: list[tuple[Region, ObjectRef]]
    ) -> Iterator[np.ndarray]:
        """The output in row bands cut at the tiles' row edges, so each part is fetched
        once and only one band of rows is in memory at a time."""
        if not shape:
            band = np.zeros((), dtype=dtype)
            for _, part in parts:
                band = self._whole(part, key)
            yield np.ascontiguousarray(band)
            return
        for band_region in row_bands(shape, (region for region, _ in parts)):
            band = np.zeros(sizes(band_region), dtype=dtype)
            for region, part in parts:
                overlap = intersect(band_region, region)
                if overlap is not None:
                    band[slices_within(overlap, band_region)] = self._whole(part, key)[slices_within(overlap, region)]
            yield band

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

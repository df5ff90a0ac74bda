"""Zarr arrays on S3: chunk-native outputs with no assembly, and Zarr inputs read chunk by chunk.

An output whose key ends in ``.zarr`` has the job's tiles as its chunks. Planning writes
the array's ``zarr.json`` to the job's own space (``jobs/<job>/zarr/.../zarr.json``), not
to the output; each tile PUTs its one chunk object straight to ``<key>/c/i/j``; and the
commit (the reducer) lists ``<key>/c/``, refuses if any tile's chunk is missing, and only
then PUTs ``<key>/zarr.json``. Until that PUT the prefix holds no array a reader can open,
so a failed job never shows a half-written one, and no byte of a tile passes through the
reducer: its requests are one GET of the pending metadata, the listing (one request per
1,000 chunks), one PUT and one DELETE.

Inputs: a Zarr v3 or v2 array under a key (or ``s3://bucket/key``) is read chunk by chunk,
each tile fetching only the chunks its block crosses (``tilefan.adapters.zarr_format``
says which codecs). ``ZarrOutputs`` extends ``PartBuiltOutputs`` (which keeps ``.npy``
outputs) and sends Zarr keys here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tilefan.adapters.aws.s3_parts import ObjectRef, PartBuiltOutputs
from tilefan.adapters.zarr_format import (
    V2_METADATA,
    V3_METADATA,
    ZarrLayout,
    encode_chunk,
    parse_v2,
    parse_v3,
    v3_metadata,
)
from tilefan.domain.chunks import (
    all_chunks,
    chunk_number,
    chunk_of,
    chunk_region,
    chunked_ref,
    chunks_crossing,
    is_zarr,
)
from tilefan.domain.regions import clip, intersect, sizes, slices_within
from tilefan.domain.tiling import Region
from tilefan.errors import BlobNotFoundError, IncompleteJobError, InvalidBlobError, StoreError

# Chunk GETs one block's read keeps in flight (S3: 8-16 concurrent GETs per function).
CHUNK_READS_IN_FLIGHT = 16
# A raw (uncompressed, C-order) chunk is read in part, one ranged GET from the region's
# first cell to its last, when that span is at most this fraction of the chunk: a
# verified field's sampled point is then 8 bytes, not a tile's whole chunk.
SPAN_OF_CHUNK = 1 / 8


class ZarrOutputs(PartBuiltOutputs):
    """The output half of the blob store port for Zarr keys; ``.npy`` keys go to ``PartBuiltOutputs``."""

    # ------------------------------------------------------------------ where things live

    def _zarr_root(self, key: str) -> ObjectRef:
        """The array's own prefix (with a trailing slash), inside its group when ``:member`` names one."""
        ref = chunked_ref(key)
        assert ref is not None
        root = self._obj(ref.path)
        name = root.key.rstrip("/") + ("/" + ref.member if ref.member else "")
        return ObjectRef(root.bucket, name + "/")

    def _zarr_pending(self, key: str, job_id: str) -> ObjectRef:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", key.rstrip("/").rsplit("/", 1)[-1])[:64]
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return ObjectRef(self.bucket, f"{self.prefix}jobs/{job_id}/zarr/{stem}-{digest}/{V3_METADATA}")

    def _zarr_layout(self, key: str, job_id: str | None = None) -> ZarrLayout:
        """The layout of a job's output being built (``job_id``), else of the committed array."""
        if job_id is not None:
            try:
                return parse_v3(json.loads(self._get(self._zarr_pending(key, job_id), key)), key)
            except BlobNotFoundError:
                pass  # committed already, or an input
        root = self._zarr_root(key)
        try:
            doc, parse = self._get(ObjectRef(root.bucket, root.key + V3_METADATA), key), parse_v3
        except BlobNotFoundError:
            doc, parse = self._get(ObjectRef(root.bucket, root.key + V2_METADATA), key), parse_v2  # or: no array
        try:
            return parse(_json(doc, key), key)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # Metadata a user wrote is input: what cannot be read is their error, never a 500.
            raise InvalidBlobError(key, f"has Zarr metadata tilefan cannot read ({type(exc).__name__}: {exc})") \
                from None

    # ------------------------------------------------------------------ reading

    def zarr_info(self, key: str) -> tuple[tuple[int, ...], str]:
        layout = self._zarr_layout(key)
        return layout.shape, layout.dtype_name

    def zarr_rows(self, key: str, rows: tuple[int, int], cols: tuple[int, int] | None) -> np.ndarray:
        layout = self._zarr_layout(key)
        if len(layout.shape) != 2:
            raise InvalidBlobError(key, f"must hold a 2-D array, it has shape {layout.shape}")
        return self._zarr_read(key, layout, (rows, cols or (0, layout.shape[1])))

    def _zarr_read(self, key: str, layout: ZarrLayout, region: Sequence[tuple[int, int]]) -> np.ndarray:
        if layout.dtype is None:
            raise InvalidBlobError(key, f"has dtype {layout.dtype_name}; tilefan reads float32 or float64")
        want = clip(region, layout.shape)
        out = np.empty(sizes(want), dtype=layout.dtype.newbyteorder("="))
        root = self._zarr_root(key)

        def fetch(index: tuple[int, ...]) -> None:
            held = chunk_region(index, layout.shape, layout.chunks)
            overlap = intersect(want, held)
            if overlap is None:
                return
            obj = ObjectRef(root.bucket, root.key + layout.chunk_key(index))
            inner = slices_within(overlap, held)  # ``held`` starts where the chunk does
            try:
                part = self._zarr_span(obj, key, layout, inner)
                if part is None:
                    part = layout.decode(self._get(obj, key), key)[inner]
            except BlobNotFoundError:
                part = layout.fill()[inner]  # a chunk never written holds the fill value
            out[slices_within(overlap, want)] = part

        indices = list(chunks_crossing(want, layout.chunks))
        if len(indices) == 1:
            fetch(indices[0])
            return out
        # One GET is bound by latency: fetch the chunks a block crosses concurrently (each
        # fills its own part of ``out``), as S3 advises for one function's reads.
        with ThreadPoolExecutor(max_workers=min(CHUNK_READS_IN_FLIGHT, len(indices))) as pool:
            list(pool.map(fetch, indices))
        return out

    def _zarr_span(self, obj: ObjectRef, key: str, layout: ZarrLayout,
                   inner: tuple[slice, ...]) -> np.ndarray | None:
        """The cells ``inner`` (the chunk's own coordinates) of a raw C-order chunk, from one
        ranged GET of the bytes between its first cell and its last; None when the chunk is
        compressed or in F order, or that span is more than ``SPAN_OF_CHUNK`` of it."""
        assert layout.dtype is not None
        if layout.compressor is not None or layout.order != "C":
            return None
        first = int(np.ravel_multi_index(tuple(s.start for s in inner), layout.chunks))
        last = int(np.ravel_multi_index(tuple(s.stop - 1 for s in inner), layout.chunks))
        if last - first + 1 > SPAN_OF_CHUNK * math.prod(layout.chunks):
            return None
        item, short = layout.dtype.itemsize, f"a chunk is shorter than the {layout.chunks} its metadata says"
        try:
            data = self._get(obj, key, first * item, (last + 1) * item - 1)
        except InvalidBlobError:
            raise InvalidBlobError(key, short) from None  # S3's InvalidRange: it ends before the span starts
        if len(data) != (last - first + 1) * item:
            raise InvalidBlobError(key, short)
        cells = np.ravel_multi_index(np.ix_(*(np.arange(s.start, s.stop) for s in inner)), layout.chunks)
        return np.frombuffer(data, dtype=layout.dtype)[cells - first]

    # ------------------------------------------------------------------ the BlobStore port's outputs

    def create_array(self, key: str, shape: tuple[int, ...], dtype: str, job_id: str,
                     chunks: tuple[int, ...] | None = None) -> None:
        if not is_zarr(key):
            super().create_array(key, shape, dtype, job_id, chunks)
            return
        ref = chunked_ref(key)
        if ref is not None and ref.member:
            raise InvalidBlobError(key, "an output is a whole Zarr array: name it as PATH.zarr, without :member")
        # Replacing an array: its old chunks must not mix with the new ones.
        self._drop_zarr(key)
        doc = v3_metadata(shape, dtype, chunks or shape)
        self._put(self._zarr_pending(key, job_id), key, json.dumps(doc).encode(), "application/json")

    def write_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]], block: np.ndarray) -> None:
        if not is_zarr(key):
            super().write_region(key, job_id, region, block)
            return
        try:
            layout = parse_v3(json.loads(self._get(self._zarr_pending(key, job_id), key)), key)
        except BlobNotFoundError:
            raise BlobNotFoundError(key) from None
        index = chunk_of(region, layout.shape, layout.chunks)  # a tile is one chunk
        root = self._zarr_root(key)
        self._put(ObjectRef(root.bucket, root.key + layout.chunk_key(index)), key, encode_chunk(block, layout),
                  "application/octet-stream")

    def zarr_region_reader(self, key: str, job_id: str) -> Callable[[Region], np.ndarray]:
        return functools.partial(self._zarr_read, key, self._zarr_layout(key, job_id))

    def read_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]]) -> np.ndarray:
        if not is_zarr(key):
            return super().read_region(key, job_id, region)
        return self.zarr_region_reader(key, job_id)(tuple(region))

    def commit_array(self, key: str, job_id: str) -> str:
        if not is_zarr(key):
            return super().commit_array(key, job_id)
        pending = self._zarr_pending(key, job_id)
        try:
            doc = self._get(pending, key)
        except BlobNotFoundError:
            raise StoreError(f"output {key} of job {job_id} was never created") from None
        layout = parse_v3(json.loads(doc), key)
        root = self._zarr_root(key)
        stored = set(self._list(root.bucket, root.key + "c/", key))
        missing = [chunk_number(index, layout.shape, layout.chunks) for index in all_chunks(layout.shape, layout.chunks)
                   if root.key + layout.chunk_key(index) not in stored]
        if missing:
            raise IncompleteJobError(job_id, missing, f"recorded done but no chunk of {key} stored")
        # The metadata goes last: only now can a reader open the array.
        self._put(ObjectRef(root.bucket, root.key + V3_METADATA), key, doc, "application/json")
        self._delete(pending.bucket, [pending.key], key)
        return f"s3://{root.bucket}/{root.key.rstrip('/')}"

    def discard_array(self, key: str, job_id: str) -> None:
        if not is_zarr(key):
            super().discard_array(key, job_id)
            return
        pending = self._zarr_pending(key, job_id)
        self._delete(pending.bucket, [pending.key], key)
        self._drop_zarr(key)

    def _drop_zarr(self, key: str) -> None:
        """Remove every object of the array at ``key``: its metadata first, so no reader
        opens it while its chunks go."""
        root = self._zarr_root(key)
        self._delete(root.bucket, [root.key + V3_METADATA, root.key + V2_METADATA], key)
        self._delete(root.bucket, list(self._list(root.bucket, root.key, key)), key)


def _json(data: bytes, label: str) -> dict[str, object]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidBlobError(label, "has Zarr metadata that is not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidBlobError(label, "has Zarr metadata that is not a JSON object")
    return doc

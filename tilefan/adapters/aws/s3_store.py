"""Blob store on S3 (the AWS backend): the same contract as ``localfs``, over objects.

Keys of the form ``s3://bucket/key`` name a user's object; other keys live under
``prefix`` in the store's own bucket. Arrays are ``.npy`` objects, so a tile reads only
its rows with one ranged GET and ``array_info`` reads only the header.

An output is never written in place: S3 has no partial writes. Each tile's block becomes
its own part object under ``jobs/<job>/parts/<output>/`` (named after its region, so a
retried tile overwrites its own part), next to a ``meta.json`` holding the shape and
dtype. ``commit_array`` streams the parts, band by band, into one multipart upload that
becomes visible at the key only when it completes, then deletes the parts.

Every botocore error is translated here into tilefan's own errors.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import math
import re
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from tilefan.adapters.aws.aws_call import call
from tilefan.errors import BlobNotFoundError, InvalidBlobError, StoreError

# Enough for the header of any array up to a few dozen dimensions; a longer header
# costs a second GET rather than failing.
HEADER_PROBE_BYTES = 4096
# Each part of a committed output's multipart upload (S3 wants at least 5 MiB for every
# part but the last, and allows 10,000 parts: 16 MiB parts reach 160 GiB).
DEFAULT_PART_BYTES = 16 * 2**20
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys
_NPY_MAGIC = b"\x93NUMPY"
_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_SSE = {"ServerSideEncryption": "AES256"}
_PART_NAME = re.compile(r"^(\d+-\d+)(_\d+-\d+)*\.npy$")


class _Obj(NamedTuple):
    bucket: str
    key: str


@dataclass(frozen=True)
class _Header:
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran: bool
    offset: int  # bytes before the first element

    @property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.dtype.itemsize


class S3BlobStore:
    def __init__(self, client: Any, bucket: str, prefix: str = "", *, part_bytes: int = DEFAULT_PART_BYTES) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.part_bytes = part_bytes

    # ------------------------------------------------------------------ addressing

    def _obj(self, key: str) -> _Obj:
        if key.startswith("s3://"):
            bucket, _, name = key[len("s3://") :].partition("/")
            return _Obj(bucket, name)
        return _Obj(self.bucket, self.prefix + key)

    def _parts_dir(self, key: str, job_id: str) -> str:
        # One folder per output per job; the hash keeps two outputs with the same file
        # name apart, the readable stem is for people browsing the bucket.
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", key.rstrip("/").rsplit("/", 1)[-1])[:64]
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return f"{self.prefix}jobs/{job_id}/parts/{stem}-{digest}/"

    def _meta_obj(self, key: str, job_id: str) -> _Obj:
        return _Obj(self.bucket, self._parts_dir(key, job_id) + "meta.json")

    # ------------------------------------------------------------------ S3 calls

    def _call(self, label: str, op: str, **params: Any) -> dict[str, Any]:
        """One S3 request, with botocore's errors turned into ours (``label`` names the
        key the caller asked about, which is what users need to see)."""
        def special(code: str, response: Mapping[str, Any]) -> Exception | None:
            if code in _NOT_FOUND:
                return BlobNotFoundError(label)
            if code == "InvalidRange":
                # Only ranged reads get here: the object is shorter than any .npy header.
                return InvalidBlobError(label, "is too short to be a .npy file")
            return None

        return call(self.client, op, params, failed=f"S3 {op} failed for {label}", fallback=StoreError,
                    special=special)

    def _get(self, obj: _Obj, label: str, first: int | None = None, last: int | None = None) -> bytes:
        params: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if first is not None:
            params["Range"] = f"bytes={first}-{last}"
        body = self._call(label, "get_object", **params)["Body"]
        try:
            data: bytes = body.read()
        except BotoCoreError as exc:
            raise StoreError(f"S3 read of {label} broke off: {exc}") from None
        return data

    def _put(self, obj: _Obj, label: str, body: bytes | bytearray | memoryview, content_type: str) -> None:
        self._call(label, "put_object", Bucket=obj.bucket, Key=obj.key,
                   Body=body if isinstance(body, bytes | bytearray) else bytes(body),
                   ContentType=content_type, **_SSE)

    def _list(self, bucket: str, prefix: str, label: str) -> Iterator[str]:
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            if token:
                params["ContinuationToken"] = token
            page = self._call(label, "list_objects_v2", **params)
            for item in page.get("Contents", []):
                yield str(item["Key"])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def _delete(self, bucket: str, keys: Sequence[str], label: str) -> None:
        for i in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": k} for k in keys[i : i + _DELETE_BATCH]]
            reply = self._call(label, "delete_objects", Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            # DeleteObjects reports per-key failures in a 200 reply instead of raising.
            if reply.get("Errors"):
                first = reply["Errors"][0]
                raise StoreError(f"S3 could not delete {first.get('Key')} under {label}: {first.get('Code')}")

    # ------------------------------------------------------------------ json and bytes

    def put_json(self, key: str, value: Any) -> None:
        self._put(self._obj(key), key, json.dumps(value).encode(), "application/json")

    def get_json(self, key: str) -> Any:
        return json.loads(self._get(self._obj(key), key))

    def read_bytes(self, key: str) -> bytes:
        return self._get(self._obj(key), key)

    def presign_put(self, key: str, expires_s: int) -> str:
        """A URL a client can PUT the object to without AWS credentials.

        No ServerSideEncryption parameter: it would become a header every uploader must
        send; the bucket's default encryption covers these objects instead.
        """
        obj = self._obj(key)
        try:
            url: str = self.client.generate_presigned_url(
                "put_object", Params={"Bucket": obj.bucket, "Key": obj.key}, ExpiresIn=expires_s, HttpMethod="PUT"
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"cannot presign an upload to {key}: {exc}") from None
        return url

    # ------------------------------------------------------------------ array headers and rows

    def _header(self, obj: _Obj, label: str) -> _Header:
        head = self._get(obj, label, 0, HEADER_PROBE_BYTES - 1)
        needed = _header_length(head, label)
        if needed > len(head):
            head = self._get(obj, label, 0, needed - 1)
        return _parse_header(head, label)

    def _leading_rows(self, obj: _Obj, label: str, rows: tuple[int, int]) -> np.ndarray:
        """Rows ``rows`` along the first axis, by one ranged GET when the layout allows."""
        h = self._header(obj, label)
        if h.fortran or not h.shape or h.dtype.hasobject:
            # Rows of a Fortran-ordered array are scattered through the object.
            return self._whole(obj, label)[rows[0] : rows[1]]
        start, stop, _ = slice(rows[0], rows[1]).indices(h.shape[0])
        stop = max(start, stop)
        shape = (stop - start, *h.shape[1:])
        if stop == start or h.row_bytes == 0:
            return np.empty(shape, dtype=h.dtype)
        first = h.offset + start * h.row_bytes
        last = h.offset + stop * h.row_bytes - 1
        data = self._get(obj, label, first, last)
        if len(data) != last - first + 1:
            raise InvalidBlobError(label, "is shorter than its .npy header says")
        return np.frombuffer(data, dtype=h.dtype).reshape(shape)

    def _whole(self, obj: _Obj, label: str) -> np.ndarray:
        data = self._get(obj, label)
        _parse_header(data, label)  # the same errors as a header read for non-.npy objects
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            raise InvalidBlobError(label, f"not a valid .npy file ({exc})") from None

    def array_info(self, key: str) -> tuple[tuple[int, ...], str]:
        h = self._header(self._obj(key), key)
        return h.shape, h.dtype.name

    def read_rows(self, key: str, rows: tuple[int, int], cols: tuple[int, int] | None = None) -> np.ndarray:
        block = self._leading_rows(self._obj(key), key, rows)
        return block if cols is None else block[:, cols[0] : cols[1]]

    def read_array(self, key: str) -> np.ndarray:
        return self._whole(self._obj(key), key)

    def write_array(self, key: str, array: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        self._put(self._obj(key), key, buf.getbuffer(), "application/octet-stream")

    # ------------------------------------------------------------------ outputs built from parts

    def create_array(self, key: str, shape: tuple[int, ...], dtype: str, job_id: str) -> None:
        # Starting again (a retried plan) starts from nothing, as localfs truncates.
        self.discard_array(key, job_id)
        meta = {"key": key, "shape": [int(n) for n in shape], "dtype": np.dtype(dtype).str}
        self._put(self._meta_obj(key, job_id), key, json.dumps(meta).encode(), "application/json")

    def _meta(self, key: str, job_id: str) -> tuple[tuple[int, ...], np.dtype[Any]] | None:
        try:
            meta = json.loads(self._get(self._meta_obj(key, job_id), key))
        except BlobNotFoundError:
            return None
        return tuple(meta["shape"]), np.dtype(meta["dtype"])

    def _parts(self, key: str, job_id: str) -> list[tuple[tuple[tuple[int, int], ...], _Obj]]:
        folder = self._parts_dir(key, job_id)
        found = []
        for name in self._list(self.bucket, folder, key):
            leaf = name[len(folder) :]
            if _PART_NAME.match(leaf):
                found.append((_parse_region(leaf), _Obj(self.bucket, name)))
        return found

    def write_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]], block: np.ndarray) -> None:
        meta = self._meta(key, job_id)
        if meta is None:
            raise BlobNotFoundError(key)
        shape, dtype = meta
        region = _clip(region, shape)
        sizes = tuple(b - a for a, b in region)
        if tuple(block.shape) != sizes:
            raise ValueError(f"block of shape {block.shape} does not fill region {region} of {key}")
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(block, dtype=dtype), allow_pickle=False)
        part = _Obj(self.bucket, self._parts_dir(key, job_id) + _region_name(region))
        self._put(part, key, buf.getbuffer(), "application/octet-stream")

    def read_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]]) -> np.ndarray:
        meta = self._meta(key, job_id)
        if meta is None:
            # Committed (or never created: the read then raises BlobNotFoundError).
            obj = self._obj(key)
            rows = self._leading_rows(obj, key, (region[0][0], region[0][1]))
            return rows[(slice(None), *(slice(a, b) for a, b in region[1:]))]
        shape, dtype = meta
        want = _clip(region, shape)
        # Unwritten cells read as zeros, like the sparse file of localfs.
        out = np.zeros(tuple(b - a for a, b in want), dtype=dtype)
        for part_region, part in self._parts(key, job_id):
            overlap = _intersect(want, part_region)
            if overlap is None:
                continue
            # Only the part's rows inside the overlap are fetched (one ranged GET).
            (o0, o1), p0 = overlap[0], part_region[0][0]
            rows = self._leading_rows(part, key, (o0 - p0, o1 - p0))
            out[_slices(overlap, want)] = rows[_slices(overlap, ((o0, o1), *part_region[1:]))]
        return out

    def commit_array(self, key: str, job_id: str) -> str:
        meta = self._meta(key, job_id)
        if meta is None:
            raise StoreError(f"output {key} of job {job_id} was never created")
        shape, dtype = meta
        parts = self._parts(key, job_id)
        dest = self._obj(key)
        upload = _Upload(self, dest, key)
        try:
            upload.write(_npy_header(shape, dtype))
            for band in self._bands(key, shape, dtype, parts):
                upload.write(band.data.cast("B"))
            upload.finish()
        except BaseException:
            upload.abort()
            raise
        # The meta object goes first: once it is gone, readers use the committed object
        # even if deleting the parts is cut short.
        self._drop_parts(key, job_id)
        return f"s3://{dest.bucket}/{dest.key}"

    def _bands(
        self, key: str, shape: tuple[int, ...], dtype: np.dtype[Any],
        parts: list[tuple[tuple[tuple[int, int], ...], _Obj]],
    ) -> Iterator[np.ndarray]:
        """The output in row bands cut at the tiles' row edges, so each part is fetched
        once and only one band of rows is in memory at a time."""
        if not shape:
            band = np.zeros((), dtype=dtype)
            for _, part in parts:
                band = self._whole(part, key)
            yield np.ascontiguousarray(band)
            return
        edges = sorted({0, shape[0], *(e for region, _ in parts for e in region[0])})
        for r0, r1 in itertools.pairwise(edges):
            band = np.zeros((r1 - r0, *shape[1:]), dtype=dtype)
            band_region = ((r0, r1), *((0, n) for n in shape[1:]))
            for region, part in parts:
                overlap = _intersect(band_region, region)
                if overlap is None:
                    continue
                band[_slices(overlap, band_region)] = self._whole(part, key)[_slices(overlap, region)]
            yield band

    def _drop_parts(self, key: str, job_id: str) -> None:
        meta = self._meta_obj(key, job_id)
        self._delete(self.bucket, [meta.key], key)
        self._delete(self.bucket, list(self._list(self.bucket, self._parts_dir(key, job_id), key)), key)

    def discard_array(self, key: str, job_id: str) -> None:
        self._drop_parts(key, job_id)

    def delete(self, key: str) -> None:
        obj = self._obj(key)
        self._delete(obj.bucket, [obj.key], key)

    def delete_prefix(self, prefix: str) -> None:
        # Like removing a directory: "jobs/ab" must not take "jobs/abc" with it.
        obj = self._obj(prefix.rstrip("/") + "/")
        self._delete(obj.bucket, list(self._list(obj.bucket, obj.key, prefix)), prefix)


class _Upload:
    """Bytes to one object: a plain PUT when small, else a multipart upload, which S3
    makes visible only when it completes (so a failed commit shows nothing)."""

    def __init__(self, store: S3BlobStore, dest: _Obj, label: str) -> None:
        self.store = store
        self.dest = dest
        self.label = label
        self.pending = bytearray()
        self.upload_id: str | None = None
        self.etags: list[dict[str, Any]] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.pending += data
        size = self.store.part_bytes
        # Always hold one full part back: ``finish`` then never sends an empty last part,
        # and an output under two parts goes up as one plain PUT.
        sent = 0
        with memoryview(self.pending) as view:
            while len(view) - sent >= 2 * size:
                self._send(bytes(view[sent : sent + size]))
                sent += size
        del self.pending[:sent]  # once, rather than shifting a large band per part

    def _send(self, chunk: bytes) -> None:
        if self.upload_id is None:
            reply = self.store._call(self.label, "create_multipart_upload", Bucket=self.dest.bucket,
                                     Key=self.dest.key, ContentType="application/octet-stream", **_SSE)
            self.upload_id = str(reply["UploadId"])
        number = len(self.etags) + 1
        reply = self.store._call(self.label, "upload_part", Bucket=self.dest.bucket, Key=self.dest.key,
                                 UploadId=self.upload_id, PartNumber=number, Body=chunk)
        self.etags.append({"ETag": reply["ETag"], "PartNumber": number})

    def finish(self) -> None:
        if self.upload_id is None:
            self.store._put(self.dest, self.label, self.pending, "application/octet-stream")
            return
        self._send(bytes(self.pending))
        self.pending.clear()
        self.store._call(self.label, "complete_multipart_upload", Bucket=self.dest.bucket, Key=self.dest.key,
                         UploadId=self.upload_id, MultipartUpload={"Parts": self.etags})

    def abort(self) -> None:
        if self.upload_id is not None:
            # Best effort: the error that brought us here is the one to report.
            with contextlib.suppress(StoreError):
                self.store._call(self.label, "abort_multipart_upload", Bucket=self.dest.bucket,
                                 Key=self.dest.key, UploadId=self.upload_id)


# --------------------------------------------------------------------------- .npy and regions


def _header_length(head: bytes, label: str) -> int:
    """How many leading bytes the .npy header takes (magic, version, length, dict)."""
    if len(head) < 10 or not head.startswith(_NPY_MAGIC):
        raise InvalidBlobError(label, "not a valid .npy file (the magic string is not correct)")
    if head[6] == 1:
        return 10 + int(struct.unpack("<H", head[8:10])[0])
    if len(head) < 12:
        raise InvalidBlobError(label, "not a valid .npy file (truncated header)")
    return 12 + int(struct.unpack("<I", head[8:12])[0])


def _parse_header(head: bytes, label: str) -> _Header:
    fp = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    except ValueError as exc:
        raise InvalidBlobError(label, f"not a valid .npy file ({exc})") from None
    return _Header(tuple(shape), dtype, fortran, fp.tell())


def _npy_header(shape: tuple[int, ...], dtype: np.dtype[Any]) -> bytes:
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    try:
        np.lib.format.write_array_header_1_0(buf, header)
    except ValueError:  # a header over 64 KiB needs format 2.0
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue()


def _region_name(region: Sequence[tuple[int, int]]) -> str:
    """The part object's name: its region, axis by axis.

    >>> _region_name([(0, 4), (8, 12)])
    '0-4_8-12.npy'
    """
    return "_".join(f"{a}-{b}" for a, b in region) + ".npy"


def _parse_region(name: str) -> tuple[tuple[int, int], ...]:
    """The region a part object's name encodes.

    >>> _parse_region('0-4_8-12.npy')
    ((0, 4), (8, 12))
    """
    spans = name[: -len(".npy")].split("_")
    return tuple((int(a), int(b)) for a, b in (s.split("-") for s in spans))


def _clip(region: Sequence[tuple[int, int]], shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """A region cut to the array, as NumPy slicing would cut it.

    >>> _clip([(2, 9), (0, 3)], (5, 3))
    ((2, 5), (0, 3))
    """
    if len(region) != len(shape):
        raise ValueError(f"region {tuple(region)} has {len(region)} axes; the array has {len(shape)}")
    out = []
    for (a, b), n in zip(region, shape, strict=True):
        start, stop, _ = slice(a, b).indices(n)
        out.append((start, max(start, stop)))
    return tuple(out)


def _intersect(
    a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]
) -> tuple[tuple[int, int], ...] | None:
    """The overlap of two regions, or None if they do not overlap.

    >>> _intersect([(0, 4), (0, 4)], [(2, 6), (3, 9)])
    ((2, 4), (3, 4))
    >>> _intersect([(0, 4)], [(4, 8)]) is None
    True
    """
    spans = tuple((max(x0, y0), min(x1, y1)) for (x0, x1), (y0, y1) in zip(a, b, strict=True))
    return spans if all(lo < hi for lo, hi in spans) else None


def _slices(spans: Sequence[tuple[int, int]], within: Sequence[tuple[int, int]]) -> tuple[slice, ...]:
    """Where ``spans`` (whole-array coordinates) lie in a block that holds ``within``.

    >>> _slices([(2, 4), (3, 4)], [(2, 6), (0, 9)])
    (slice(0, 2, None), slice(3, 4, None))
    """
    return tuple(slice(a - w0, b - w0) for (a, b), (w0, _) in zip(spans, within, strict=True))

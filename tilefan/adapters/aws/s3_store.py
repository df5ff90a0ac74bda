"""Blob store on S3 (the AWS backend): the same contract as ``localfs``, over objects.

Keys of the form ``s3://bucket/key`` name a user's object; other keys live under
``prefix`` in the store's own bucket. Arrays are ``.npy`` objects, so a tile reads only
its rows with ranged GETs and ``array_info`` reads only the header. Outputs are built
from part objects (``s3_parts``) and committed as one multipart upload whose parts are
server-side copies of the tiles' blocks where S3 allows it (``tilefan.pipeline.assemble``).
Keys ending in ``.zarr`` are Zarr arrays (``s3_zarr``): read chunk by chunk, and written
one chunk per tile with nothing assembled.

One request stream cannot fill a function's network, so a read of more than one part
(``tilefan.domain.transfer.PART_BYTES``) is split into ranged GETs run concurrently, and an
object of more than one part is written by a multipart upload whose parts go out
concurrently; both through the store's ``TransferPool`` of ``streams`` requests.

This module makes every S3 request of the store, each through ``aws_call``, so every
botocore error is translated here into tilefan's own errors.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tilefan.adapters.aws.aws_call import Special, call, pages, translated
from tilefan.adapters.aws.s3_parts import ObjectRef
from tilefan.adapters.aws.s3_transfer import TransferPool
from tilefan.adapters.aws.s3_uploads import SealedUploads
from tilefan.adapters.aws.s3_zarr import ZarrOutputs
from tilefan.adapters.npy_header import NpyHeader, from_npy, header_length, parse_header, to_npy
from tilefan.domain.assembly import PartLimits
from tilefan.domain.chunks import is_zarr
from tilefan.domain.regions import clip, row_byte_range, sizes
from tilefan.domain.routing import PANEL_READ_CHUNK_BYTES
from tilefan.domain.transfer import MAX_STREAMS, PART_BYTES, row_chunks
from tilefan.errors import BlobNotFoundError, InvalidBlobError, StoreError
from tilefan.pipeline.ports import JobStore, Ports

# Enough for the header of any array up to a few dozen dimensions; a longer header
# costs a second GET rather than failing.
HEADER_PROBE_BYTES = 4096
# The multipart requests of a commit, named here so the IAM grants of every S3 call can
# be checked: the parts are uploaded or copied server-side (UploadPartCopy), and an upload
# that fails is aborted, so the key shows the complete output or nothing.
ASSEMBLY_CALLS = ("create_multipart_upload", "upload_part", "upload_part_copy", "complete_multipart_upload",
                  "abort_multipart_upload")
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys
_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_SSE = {"ServerSideEncryption": "AES256"}
_READ_SLICE = 1 << 20


class S3BlobStore(ZarrOutputs, SealedUploads):
    def __init__(self, client: Any, bucket: str, prefix: str = "", *, limits: PartLimits | None = None,
                 streams: int = MAX_STREAMS, part_bytes: int = PART_BYTES) -> None:
        """``limits``: S3's own multipart rules unless a test needs smaller parts (moto
        enforces the 5 MiB minimum too, so tests shrink the outputs' rows instead).
        ``streams``: S3 requests in flight at once (``tilefan.domain.transfer.io_streams``
        of the function's memory; the client needs a connection for each) of ``part_bytes``
        each (S3's advice is 8–16 MB; tests shrink it, as moto's part minimum)."""
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.limits = limits or PartLimits()
        self.transfers = TransferPool(streams, part_bytes)
        self._pins: dict[str, str] = {}

    def _obj(self, key: str) -> ObjectRef:
        if key.startswith("s3://"):
            bucket, _, name = key[len("s3://") :].partition("/")
            return ObjectRef(bucket, name)
        return ObjectRef(self.bucket, self.prefix + key)

    # ------------------------------------------------------------------ S3 requests

    @classmethod
    def _special(cls, label: str, writing: bool = False) -> Special:
        """Errors that mean something about ``label``, the key the caller asked about
        (which is what users need to see)."""
        def special(code: str, response: Mapping[str, Any]) -> Exception | None:
            failed_condition = cls.condition_failed(code, label, writing)
            if failed_condition is not None:
                return failed_condition
            if code in _NOT_FOUND:
                return BlobNotFoundError(label)
            if code == "InvalidRange":
                # Only ranged reads get here: the object ends before the range starts (shorter
                # than any .npy header, or than its header says when a part starts past its end).
                return InvalidBlobError(label, "is shorter than a .npy file or its header says")
            return None

        return special

    def _call(self, label: str, op: str, **params: Any) -> dict[str, Any]:
        writing = op == "put_object" and "IfNoneMatch" in params
        return call(self.client, op, params, failed=f"S3 {op} failed for {label}", fallback=StoreError,
                    special=self._special(label, writing))

    def _get(self, obj: ObjectRef, label: str, first: int | None = None, last: int | None = None,
             etag: str | None = None) -> bytes:
        """The object's bytes (or a range); an upload's only while its ETag is still the
        one its completion recorded (or ``etag``, when given)."""
        reply = self._get_object(obj, label, first, last, etag)
        with translated(f"S3 read of {label} broke off", StoreError):
            data: bytes = reply["Body"].read()
        return data

    def _get_object(self, obj: ObjectRef, label: str, first: int | None, last: int | None,
                    etag: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if first is not None:
            params["Range"] = f"bytes={first}-{last}"
        pin = etag if etag is not None else self._pin(obj)
        if pin is not None:
            params["IfMatch"] = pin
        return self._call(label, "get_object", **params)

    def _get_into(self, obj: ObjectRef, label: str, first: int, into: memoryview, pin: str | None) -> tuple[int, str]:
        """Fill ``into`` from byte ``first`` on (one ranged GET): the bytes it got (fewer if
        the object ends sooner) and the ETag of the object they came from."""
        reply = self._get_object(obj, label, first, first + len(into) - 1, pin)
        body, got = reply["Body"], 0
        with translated(f"S3 read of {label} broke off", StoreError):
            # In slices the allocator reuses, not one fresh buffer a part: every fresh page
            # costs a fault, and a part's worth of them is slower than the copy.
            while got < len(into):
                chunk = body.read(min(_READ_SLICE, len(into) - got))
                if not chunk:
                    break
                into[got : got + len(chunk)] = chunk
                got += len(chunk)
            body.read(1)  # the end of the body: botocore checks its length, urllib3 frees the connection
        return got, str(reply.get("ETag", ""))

    def _get_range(self, obj: ObjectRef, label: str, first: int, last: int) -> bytes | memoryview:
        """Bytes ``first``..``last`` (fewer if the object ends sooner), by concurrent
        ranged GETs of a part each when there is more than one part."""
        if last - first < self.transfers.part_bytes or self.transfers.streams == 1:
            return self._get(obj, label, first, last)
        pin = self._pin(obj)
        return self.transfers.read(lambda a, into: self._get_into(obj, label, a, into, pin), first, last, label)

    def _put(self, obj: ObjectRef, label: str, body: bytes, content_type: str) -> None:
        if len(body) <= self.transfers.part_bytes:
            self._call(label, "put_object", Bucket=obj.bucket, Key=obj.key, Body=body, ContentType=content_type,
                       **_SSE)
            return
        # Bigger: a multipart upload of parts sent concurrently (what the cost
        # model charges: create, the parts and complete, instead of one PUT).
        upload = self._start_multipart(obj, label, content_type)
        try:
            etags = self.transfers.upload(lambda n, part: self._send_part(obj, label, upload, n, part), body)
            self._complete_multipart(obj, label, upload, etags)
        except BaseException:
            # If this fails too, the bucket's lifecycle rule aborts the upload after two days.
            with contextlib.suppress(StoreError):
                self._abort_multipart(obj, label, upload)
            raise

    def _list(self, bucket: str, prefix: str, label: str) -> Iterator[str]:
        replies = pages(self.client, "list_objects_v2", {"Bucket": bucket, "Prefix": prefix},
                        failed=f"S3 list_objects_v2 failed for {label}", fallback=StoreError,
                        special=self._special(label))
        for reply in replies:
            yield from (str(item["Key"]) for item in reply.get("Contents", []))

    def _delete(self, bucket: str, keys: Sequence[str], label: str) -> None:
        for i in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": k} for k in keys[i : i + _DELETE_BATCH]]
            reply = self._call(label, "delete_objects", Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            # DeleteObjects reports per-key failures in a 200 reply instead of raising.
            if reply.get("Errors"):
                first = reply["Errors"][0]
                raise StoreError(f"S3 could not delete {first.get('Key')} under {label}: {first.get('Code')}")

    def _start_multipart(self, dest: ObjectRef, label: str, content_type: str = "application/octet-stream") -> str:
        reply = self._call(label, "create_multipart_upload", Bucket=dest.bucket, Key=dest.key,
                           ContentType=content_type, **_SSE)
        return str(reply["UploadId"])

    def _send_part(self, dest: ObjectRef, label: str, upload: str, number: int, body: bytes) -> str:
        reply = self._call(label, "upload_part", Bucket=dest.bucket, Key=dest.key, UploadId=upload,
                           PartNumber=number, Body=body)
        return str(reply["ETag"])

    def _copy_part(
        self, dest: ObjectRef, label: str, upload: str, number: int, source: ObjectRef, first: int, last: int
    ) -> str:
        reply = self._call(label, "upload_part_copy", Bucket=dest.bucket, Key=dest.key, UploadId=upload,
                           PartNumber=number, CopySource={"Bucket": source.bucket, "Key": source.key},
                           CopySourceRange=f"bytes={first}-{last}")
        return str(reply["CopyPartResult"]["ETag"])

    def _complete_multipart(self, dest: ObjectRef, label: str, upload: str, etags: Sequence[str]) -> None:
        parts = [{"ETag": etag, "PartNumber": n} for n, etag in enumerate(etags, start=1)]
        self._call(label, "complete_multipart_upload", Bucket=dest.bucket, Key=dest.key, UploadId=upload,
                   MultipartUpload={"Parts": parts})

    def _abort_multipart(self, dest: ObjectRef, label: str, upload: str) -> None:
        self._call(label, "abort_multipart_upload", Bucket=dest.bucket, Key=dest.key, UploadId=upload)

    def io_streams(self) -> int:
        return self.transfers.streams

    # ------------------------------------------------------------------ json and bytes

    def put_json(self, key: str, value: Any) -> None:
        self._put(self._obj(key), key, json.dumps(value).encode(), "application/json")

    def get_json(self, key: str) -> Any:
        return json.loads(self._get(self._obj(key), key))

    def read_bytes(self, key: str) -> bytes:
        return self._get(self._obj(key), key)

    def presign_get(self, key: str, expires_s: int) -> str:
        """A URL a client can GET the object from without AWS credentials (a job's output)."""
        obj = self._obj(key)
        with translated(f"cannot presign a download of {key}", StoreError):
            url: str = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": obj.bucket, "Key": obj.key}, ExpiresIn=expires_s, HttpMethod="GET"
            )
        return url

    def presign_post(self, key: str, expires_s: int, max_bytes: int) -> dict[str, Any]:
        """A form a client can POST the object with; S3 refuses a body over ``max_bytes``."""
        obj = self._obj(key)
        with translated(f"cannot presign an upload to {key}", StoreError):
            form: dict[str, Any] = self.client.generate_presigned_post(
                obj.bucket, obj.key, Conditions=[["content-length-range", 1, max_bytes]], ExpiresIn=expires_s
            )
        return form

    # ------------------------------------------------------------------ arrays

    def _header(self, obj: ObjectRef, label: str, etag: str | None = None) -> NpyHeader:
        head = self._get(obj, label, 0, HEADER_PROBE_BYTES - 1, etag)
        needed = header_length(head, label)
        if needed > len(head):
            head = self._get(obj, label, 0, needed - 1, etag)
        return parse_header(head, label)

    def _leading_rows(
        self, obj: ObjectRef, label: str, rows: tuple[int, int], h: NpyHeader | None = None,
    ) -> np.ndarray:
        """Rows ``rows`` along the first axis, by one ranged GET when the layout allows."""
        h = h or self._header(obj, label)
        if not h.rows_readable:
            # Rows of a Fortran-ordered array are scattered through the object.
            return self._whole(obj, label)[rows[0] : rows[1]]
        [span] = clip([rows], h.shape[:1])
        shape = (*sizes([span]), *h.shape[1:])
        if math.prod(shape) == 0:
            return np.empty(shape, dtype=h.dtype)
        first, last = row_byte_range(span, h.row_bytes, h.offset)
        data = self._get_range(obj, label, first, last)
        if len(data) != last - first + 1:
            raise InvalidBlobError(label, "is shorter than its .npy header says")
        return np.frombuffer(data, dtype=h.dtype).reshape(shape)

    def _whole(self, obj: ObjectRef, label: str) -> np.ndarray:
        return from_npy(self._get(obj, label), label)

    def array_info(self, key: str) -> tuple[tuple[int, ...], str]:
        if is_zarr(key):
            return self.zarr_info(key)
        h = self._header(self._obj(key), key)
        return h.shape, h.dtype.name

    def read_rows(self, key: str, rows: tuple[int, int], cols: tuple[int, int] | None = None) -> np.ndarray:
        if is_zarr(key):
            return self.zarr_rows(key, rows, cols)
        obj = self._obj(key)
        if cols is None:
            return self._leading_rows(obj, key, rows)
        h = self._header(obj, key)
        if not h.rows_readable or len(h.shape) != 2:
            return self._leading_rows(obj, key, rows, h)[:, cols[0] : cols[1]]
        # A column panel's cells are scattered along whole rows, so whole rows are read (the
        # planner charges every byte of them), in chunks of about one part, each one ranged
        # GET, run concurrently and copied into the panel. At most PANEL_READ_CHUNK_BYTES of
        # chunks are in flight: memory holds the panel and those, not every full row.
        [span] = clip([rows], h.shape[:1])
        [width] = clip([cols], h.shape[1:])
        panel = np.empty((span[1] - span[0], width[1] - width[0]), dtype=h.dtype)
        part = self.transfers.part_bytes
        chunks = list(row_chunks(span, h.row_bytes, part))
        in_flight = max(1, PANEL_READ_CHUNK_BYTES // max(part, h.row_bytes))

        def fetch(chunk: tuple[int, int]) -> None:
            start, stop = chunk
            whole = self._leading_rows(obj, key, chunk, h)
            panel[start - span[0] : stop - span[0]] = whole[:, width[0] : width[1]]

        self.transfers.map(fetch, chunks, limit=in_flight)
        return panel

    def read_array(self, key: str) -> np.ndarray:
        return self._whole(self._obj(key), key)

    def write_array(self, key: str, array: np.ndarray) -> None:
        self._put(self._obj(key), key, to_npy(array), "application/octet-stream")

    def delete(self, key: str) -> None:
        if is_zarr(key):
            self._drop_zarr(key)
            return
        obj = self._obj(key)
        self._delete(obj.bucket, [obj.key], key)

    def delete_prefix(self, prefix: str) -> None:
        # Like removing a directory: "jobs/ab" must not take "jobs/abc" with it.
        obj = self._obj(prefix.rstrip("/") + "/")
        self._delete(obj.bucket, list(self._list(obj.bucket, obj.key, prefix)), prefix)


def s3_ports(blobs: S3BlobStore, jobs: JobStore) -> Ports:
    """The AWS adapter set's ports: the reducer assembles an output from the tiles' blocks,
    clients send and fetch the bytes with presigned URLs, and a sent upload is checked in
    place; every output is under its job's own prefix (no claims)."""
    return Ports(blobs, jobs, assembly=blobs, presign=blobs, sent_uploads=blobs, zarr_regions=blobs)

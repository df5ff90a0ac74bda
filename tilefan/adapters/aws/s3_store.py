"""Blob store on S3 (the AWS backend): the same contract as ``localfs``, over objects.

Keys of the form ``s3://bucket/key`` name a user's object; other keys live under
``prefix`` in the store's own bucket. Arrays are ``.npy`` objects, so a tile reads only
its rows with one ranged GET and ``array_info`` reads only the header. Outputs are built
from part objects (``s3_parts``) and committed as one multipart upload whose parts are
server-side copies of the tiles' blocks where S3 allows it (``tilefan.pipeline.assemble``).
Keys ending in ``.zarr`` are Zarr arrays (``s3_zarr``): read chunk by chunk, and written
one chunk per tile with nothing assembled.

This module makes every S3 request of the store, each through ``aws_call``, so every
botocore error is translated here into tilefan's own errors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tilefan.adapters.aws.aws_call import Special, call, pages, translated
from tilefan.adapters.aws.s3_parts import ObjectRef
from tilefan.adapters.aws.s3_uploads import SealedUploads
from tilefan.adapters.aws.s3_zarr import ZarrOutputs
from tilefan.adapters.npy_header import NpyHeader, from_npy, header_length, parse_header, to_npy
from tilefan.domain.assembly import PartLimits
from tilefan.domain.chunks import is_zarr
from tilefan.domain.regions import clip, row_byte_range, sizes
from tilefan.domain.routing import PANEL_READ_CHUNK_BYTES
from tilefan.errors import BlobNotFoundError, InvalidBlobError, StoreError

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


class S3BlobStore(ZarrOutputs, SealedUploads):
    def __init__(self, client: Any, bucket: str, prefix: str = "", *, limits: PartLimits | None = None) -> None:
        """``limits``: S3's own multipart rules unless a test needs smaller parts (moto
        enforces the 5 MiB minimum too, so tests shrink the outputs' rows instead)."""
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.limits = limits or PartLimits()
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
                # Only ranged reads get here: the object is shorter than any .npy header.
                return InvalidBlobError(label, "is too short to be a .npy file")
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
        params: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if first is not None:
            params["Range"] = f"bytes={first}-{last}"
        pin = etag if etag is not None else self._pin(obj)
        if pin is not None:
            params["IfMatch"] = pin
        body = self._call(label, "get_object", **params)["Body"]
        with translated(f"S3 read of {label} broke off", StoreError):
            data: bytes = body.read()
        return data

    def _put(self, obj: ObjectRef, label: str, body: bytes, content_type: str) -> None:
        self._call(label, "put_object", Bucket=obj.bucket, Key=obj.key, Body=body, ContentType=content_type, **_SSE)

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

    def _start_multipart(self, dest: ObjectRef, label: str) -> str:
        reply = self._call(label, "create_multipart_upload", Bucket=dest.bucket, Key=dest.key,
                           ContentType="application/octet-stream", **_SSE)
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
        data = self._get(obj, label, first, last)
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
        # planner charges every byte of them), in chunks of about PANEL_READ_CHUNK_BYTES
        # copied into the panel: memory holds the panel and one chunk, not every full row.
        [span] = clip([rows], h.shape[:1])
        [width] = clip([cols], h.shape[1:])
        panel = np.empty((span[1] - span[0], width[1] - width[0]), dtype=h.dtype)
        step = max(1, PANEL_READ_CHUNK_BYTES // max(1, h.row_bytes))
        for start in range(span[0], span[1], step):
            stop = min(start + step, span[1])
            chunk = self._leading_rows(obj, key, (start, stop), h)
            panel[start - span[0] : stop - span[0]] = chunk[:, width[0] : width[1]]
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

"""What the S3 blob store does for uploads that a client sent straight to S3.

A presigned POST lets a client write ``uploads/<id>/<name>`` for 15 minutes, as often as
it likes; S3 cannot make that form write-once. So the completion step records the bytes it
checked instead: ``upload_stamp`` reads the object's ETag, VersionId and size,
``upload_header``/``read_head`` read the start of *that* object (``IfMatch``), and
``put_json_once`` writes the completion record only if there is none (``IfNoneMatch: *``).
From then on every read of the upload carries ``IfMatch`` with the recorded ETag
(``_pin``), so bytes posted after completion make the read fail with a clear message
instead of handing a job a file nobody checked.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from tilefan.adapters.aws.s3_parts import ObjectRef
from tilefan.adapters.npy_header import NpyHeader
from tilefan.domain.upload_keys import complete_key, upload_id_of
from tilefan.errors import BlobNotFoundError, InvalidBlobError

# S3's answers to a failed condition: 412 for IfMatch/IfNoneMatch, 409 when another
# conditional write to the key was in flight at the same moment.
PRECONDITION_CODES = frozenset({"PreconditionFailed", "412"})
_LOST_RACE = PRECONDITION_CODES | {"ConditionalRequestConflict"}


def replaced(label: str) -> InvalidBlobError:
    return InvalidBlobError(label, "was replaced after its upload was completed, so these are not the bytes "
                                   "that were checked; upload the file again (POST /uploads) and name the new key")


class SealedUploads(ABC):
    """Upload completion and pinned reads, over the S3 store's own requests."""

    bucket: str
    prefix: str
    # Upload key -> the ETag its completion recorded. A completed upload's record is
    # written once and never changes, so a store may keep it for its whole life.
    _pins: dict[str, str]

    @abstractmethod
    def _obj(self, key: str) -> ObjectRef: ...

    @abstractmethod
    def _call(self, label: str, op: str, **params: Any) -> dict[str, Any]: ...

    @abstractmethod
    def _get(self, obj: ObjectRef, label: str, first: int | None = None, last: int | None = None,
             etag: str | None = None) -> bytes: ...

    @abstractmethod
    def _header(self, obj: ObjectRef, label: str, etag: str | None = None) -> NpyHeader: ...

    def _pin(self, obj: ObjectRef) -> str | None:
        """The ETag every read of ``obj`` must match: the one recorded when its upload
        completed. None for an object that is not an upload in this store."""
        if obj.bucket != self.bucket or not obj.key.startswith(self.prefix):
            return None
        key = obj.key[len(self.prefix) :]
        upload_id = upload_id_of(key)
        if upload_id is None:
            return None
        if key not in self._pins:
            record_key = complete_key(upload_id)
            try:
                record = json.loads(self._get(self._obj(record_key), record_key))
            except BlobNotFoundError:
                raise InvalidBlobError(key, f"upload {upload_id} is not complete; send its file, then "
                                            f"POST /uploads/{upload_id}/complete") from None
            self._pins[key] = str(record["etag"])
        return self._pins[key]

    def upload_stamp(self, key: str) -> dict[str, Any]:
        """The object at ``key`` as S3 has it now: ETag, VersionId (None when the bucket
        is not versioned) and size. Raises BlobNotFoundError."""
        head = self._call(key, "head_object", Bucket=self._obj(key).bucket, Key=self._obj(key).key)
        return {"etag": str(head["ETag"]), "version_id": head.get("VersionId"), "bytes": int(head["ContentLength"])}

    def upload_header(self, key: str, etag: str) -> tuple[tuple[int, ...], str, int]:
        """Shape, dtype and data offset from the ``.npy`` header of the object with ``etag``
        (ranged GETs). Raises InvalidBlobError for a malformed header or another ETag."""
        header = self._header(self._obj(key), key, etag)
        return header.shape, header.dtype.str, header.offset

    def read_head(self, key: str, size: int, etag: str) -> bytes:
        """The first ``size`` bytes of the object with ``etag`` (one ranged GET)."""
        return self._get(self._obj(key), key, 0, size - 1, etag=etag)

    def put_json_once(self, key: str, value: Any) -> bool:
        """Write ``value`` at ``key`` unless something is there already; False if it was."""
        obj = self._obj(key)
        try:
            self._call(key, "put_object", Bucket=obj.bucket, Key=obj.key, Body=json.dumps(value).encode(),
                       ContentType="application/json", IfNoneMatch="*", ServerSideEncryption="AES256")
        except _ConditionLost:
            return False
        return True

    @staticmethod
    def condition_failed(code: str, label: str, writing: bool) -> Exception | None:
        """The error a failed S3 condition means: a lost create-once race when writing,
        an upload replaced after completion when reading."""
        if writing and code in _LOST_RACE:
            return _ConditionLost(label)
        if code in PRECONDITION_CODES:
            return replaced(label)
        return None


class _ConditionLost(Exception):
    """``put_json_once`` found the key taken (never leaves this module)."""

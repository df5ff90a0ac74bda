"""Uploads addressed by ID: issued by ``POST /uploads``, filled once, then read-only.

An upload is a record at ``uploads/<id>/.issued.json`` (its file name, owner and expiry)
next to the file itself. The embedded server receives the bytes (``receive``): only for
an issued ID, before it expires, at most ``max_bytes``, once, and only if they are a
2-D float ``.npy`` or a UTF-8 CSV table. On AWS the client sends them to S3 with a
presigned POST whose policy caps the length; the header is checked when a job reads it.
A job names an upload by its key (``uploads/<id>/<name>``), which ``resolve`` checks is
issued, to this caller, and complete.
"""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilefan.domain.atoms import parse_csv
from tilefan.errors import (
    BlobNotFoundError,
    ConflictError,
    GoneError,
    InvalidSpecError,
    NotFoundError,
    TooLargeError,
)
from tilefan.pipeline.ports import BlobStore

UPLOAD_ID = re.compile(r"^[0-9a-f]{16}$")
UPLOAD_KEY = re.compile(r"^uploads/([0-9a-f]{16})/([A-Za-z0-9][A-Za-z0-9._-]{0,127})$")


def _record_key(upload_id: str) -> str:
    return f"uploads/{upload_id}/.issued.json"


def _unknown() -> NotFoundError:
    # One answer for "never issued", "someone else's" and "no such name": nothing to probe.
    return NotFoundError("unknown upload; ask POST /uploads for one")


@dataclass(frozen=True)
class Uploads:
    blobs: BlobStore
    expires_s: int
    max_bytes: int

    def issue(self, name: str, owner: str, now: float) -> tuple[str, str]:
        """A new upload ID for ``name``, and its key."""
        upload_id = uuid.uuid4().hex[:16]
        key = f"uploads/{upload_id}/{name}"
        self.blobs.put_json(_record_key(upload_id), {
            "name": name, "owner": owner, "expires_at": now + self.expires_s, "complete": False,
            "max_bytes": self.max_bytes})
        return upload_id, key

    def _record(self, upload_id: str, owner: str) -> dict[str, Any]:
        if not UPLOAD_ID.match(upload_id):
            raise _unknown()
        try:
            record: dict[str, Any] = self.blobs.get_json(_record_key(upload_id))
        except BlobNotFoundError:
            raise _unknown() from None
        if record.get("owner") != owner:
            raise _unknown()
        return record

    def receive(self, upload_id: str, name: str, owner: str, data: bytes, now: float,
                declared: int | None = None) -> dict[str, Any]:
        """Store an upload's bytes once: issued, unexpired, within the cap, and well formed."""
        record = self._record(upload_id, owner)
        if record["name"] != name:
            raise _unknown()
        if record["complete"]:
            raise ConflictError("this upload is complete and cannot be replaced; ask POST /uploads for a new one")
        if now > record["expires_at"]:
            raise GoneError("this upload ID has expired; ask POST /uploads for a new one")
        cap = int(record["max_bytes"])
        if (declared or 0) > cap or len(data) > cap:
            raise TooLargeError(f"uploads are capped at {cap} bytes (setting TILEFAN_MAX_UPLOAD_BYTES)")
        check_content(name, data)
        put = getattr(self.blobs, "put_bytes", None)
        if put is None:
            raise InvalidSpecError("upload", "this backend takes uploads through the presigned URL")
        key = f"uploads/{upload_id}/{name}"
        put(key, data)
        self.blobs.put_json(_record_key(upload_id), {**record, "complete": True, "bytes": len(data)})
        return {"key": key, "bytes": len(data)}

    def resolve(self, key: str, owner: str, field: str, *, needs_receipt: bool) -> str:
        """The key of a usable upload, or a 400 naming ``field`` that says nothing of paths."""
        match = UPLOAD_KEY.match(key)
        if not match:
            raise InvalidSpecError(field, "must name an upload (uploads/<upload_id>/<name>, from POST /uploads) "
                                          "or a job's output (jobs/<job_id>/out.npy)")
        try:
            record = self._record(match.group(1), owner)
        except NotFoundError:
            raise InvalidSpecError(field, "unknown upload; ask POST /uploads for one") from None
        if record["name"] != match.group(2):
            raise InvalidSpecError(field, "unknown upload; ask POST /uploads for one")
        if needs_receipt and not record["complete"]:
            raise InvalidSpecError(field, "this upload has not received its file yet")
        return key


def check_content(name: str, data: bytes) -> None:
    """A ``.npy`` must be a whole 2-D float32/float64 array; a ``.csv`` an atoms table."""
    if name.lower().endswith(".csv"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSpecError("upload", "a .csv upload must be UTF-8 text") from None
        parse_csv(text, "upload")
        return
    fp = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fp)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fp)
    except ValueError:
        raise InvalidSpecError("upload", "not a valid .npy file") from None
    if len(shape) != 2 or dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise InvalidSpecError("upload", "a .npy upload must hold a 2-D float32 or float64 array")
    expected = fp.tell() + shape[0] * shape[1] * dtype.itemsize
    if len(data) != expected:
        raise InvalidSpecError("upload", f"the .npy file is {len(data)} bytes; its header says {expected}")

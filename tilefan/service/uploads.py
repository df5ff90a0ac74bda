"""Uploads addressed by ID: issued by ``POST /uploads``, filled once, completed, then read-only.

An upload is a record at ``uploads/<id>/.issued.json`` (its file name, owner and expiry)
next to the file itself. The embedded server receives the bytes (``receive``): only for
an issued ID, before it expires, at most ``max_bytes``, once, and only if they are a
2-D float ``.npy`` or a UTF-8 CSV table; receiving them completes the upload.

On AWS the client sends the bytes to S3 with a presigned POST whose policy caps the
length, then calls ``POST /uploads/{id}/complete`` (``complete``): before the ID expires,
the object's header is read with ranged GETs of the exact object (its ETag) and checked
as above, and the ETag and VersionId are written once to ``uploads/<id>/.complete.json``.
The store then pins every read of the upload to that ETag, so bytes posted to the form
after completion make a job fail with a clear message rather than read unchecked data.
``complete`` answers the same for a completed upload on both backends (it is idempotent).

A job names an upload by its key (``uploads/<id>/<name>``), which ``resolve`` checks is
issued, to this caller, and complete.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilefan.domain.atoms import parse_csv
from tilefan.domain.molecules import parse_pqr, parse_xyz
from tilefan.domain.upload_keys import UPLOAD_ID, UPLOAD_KEY, UPLOAD_SUFFIXES, complete_key, issued_key, upload_key
from tilefan.errors import (
    BlobNotFoundError,
    ConflictError,
    GoneError,
    InvalidBlobError,
    InvalidSpecError,
    NotFoundError,
)
from tilefan.pipeline.ports import BlobStore
from tilefan.pipeline.store_capabilities import DirectPut, SentUploads
from tilefan.service.body_caps import upload_cap

__all__ = ["UPLOAD_ID", "UPLOAD_KEY", "UPLOAD_SUFFIXES", "Uploads", "check_content"]

# Text uploads (atoms tables and molecules) and the parser that checks each: every suffix
# an upload may take (``upload_keys.UPLOAD_SUFFIXES``) but .npy, whose header is checked.
TEXT_UPLOADS = {".csv": parse_csv, ".pqr": parse_pqr, ".xyz": parse_xyz, ".extxyz": parse_xyz}


def _text_parser(name: str) -> Any:
    return next((parse for suffix, parse in TEXT_UPLOADS.items() if name.lower().endswith(suffix)), None)


# How much of a .csv upload the completion step reads to check it looks like an atoms
# table (the whole file is parsed when a job reads it, pinned to the same bytes).
CSV_PROBE_BYTES = 64 * 1024
# A file posted just before its form expired may still be arriving: the completion step
# takes it for this long after. Nothing new can be written by then (S3 refuses an expired
# form), so the grace cannot let unchecked bytes in.
COMPLETE_GRACE_S = 300


def _unknown() -> NotFoundError:
    # One answer for "never issued", "someone else's" and "no such name": nothing to probe.
    return NotFoundError("unknown upload; ask POST /uploads for one")


@dataclass(frozen=True)
class Uploads:
    blobs: BlobStore
    expires_s: int
    max_bytes: int
    # How the bytes arrive, as the adapter set offers: the server stores them itself
    # (``receive``), or a client sends them to the store and ``complete`` checks them.
    direct_put: DirectPut | None = None
    sent: SentUploads | None = None

    def issue(self, name: str, owner: str, now: float) -> tuple[str, str]:
        """A new upload ID for ``name``, and its key."""
        upload_id = uuid.uuid4().hex[:16]
        key = upload_key(upload_id, name)
        self.blobs.put_json(issued_key(upload_id), {
            "name": name, "owner": owner, "expires_at": now + self.expires_s, "complete": False,
            "max_bytes": self.max_bytes})
        return upload_id, key

    def _record(self, upload_id: str, owner: str) -> dict[str, Any]:
        if not UPLOAD_ID.match(upload_id):
            raise _unknown()
        try:
            record: dict[str, Any] = self.blobs.get_json(issued_key(upload_id))
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
        upload_cap(int(record["max_bytes"])).check(declared, len(data))
        check_content(name, data)
        if self.direct_put is None:
            raise InvalidSpecError("upload", "this backend takes uploads through the presigned URL")
        key = upload_key(upload_id, name)
        self.direct_put.put_bytes(key, data)
        self.blobs.put_json(issued_key(upload_id), {**record, "complete": True, "bytes": len(data)})
        return {"key": key, "bytes": len(data)}

    def complete(self, upload_id: str, owner: str, now: float) -> dict[str, Any]:
        """Check a sent upload and record it COMPLETE, exactly once; the same answer after."""
        record = self._record(upload_id, owner)
        key = upload_key(upload_id, record["name"])
        done = self._completion(upload_id, record)
        if done is None:
            if now > record["expires_at"] + COMPLETE_GRACE_S:
                raise GoneError("this upload ID has expired; ask POST /uploads for a new one")
            sent = self.sent
            if sent is None:
                raise ConflictError(f"no file has been received for this upload; PUT it to /uploads/{upload_id}/"
                                    f"{record['name']} first")
            done = _check_sent(sent, key, record, now)
            # Two completions racing both checked the object; the first record written
            # is the one every read is pinned to.
            if not sent.put_json_once(complete_key(upload_id), done):
                done = self.blobs.get_json(complete_key(upload_id))
        return {"upload_id": upload_id, "key": key, "status": "COMPLETE", "bytes": done["bytes"],
                **{k: done[k] for k in ("etag", "version_id") if done.get(k) is not None},
                "use_as": {"file": key}}

    def _completion(self, upload_id: str, record: dict[str, Any]) -> dict[str, Any] | None:
        """What completed the upload: the embedded receipt or the completion record."""
        if record.get("complete"):
            return {"bytes": record.get("bytes")}
        try:
            done: dict[str, Any] = self.blobs.get_json(complete_key(upload_id))
        except BlobNotFoundError:
            return None
        return done

    def resolve(self, key: str, owner: str, field: str) -> str:
        """The key of a complete upload, or a 400 naming ``field`` that says nothing of paths."""
        match = UPLOAD_KEY.match(key)
        if not match:
            raise InvalidSpecError(field, "must name an upload (uploads/<upload_id>/<name>, from POST /uploads) "
                                          "or a job's output (jobs/<job_id>/out.npy)")
        upload_id = match.group(1)
        try:
            record = self._record(upload_id, owner)
        except NotFoundError:
            raise InvalidSpecError(field, "unknown upload; ask POST /uploads for one") from None
        if record["name"] != match.group(2):
            raise InvalidSpecError(field, "unknown upload; ask POST /uploads for one")
        if self._completion(upload_id, record) is None:
            raise InvalidSpecError(field, f"upload {upload_id} is not complete; send its file, then "
                                          f"POST /uploads/{upload_id}/complete")
        return key


def _check_sent(store: SentUploads, key: str, record: dict[str, Any], now: float) -> dict[str, Any]:
    """The completion record of the object now at ``key``, after checking its content."""
    try:
        sent = store.upload_stamp(key)
    except BlobNotFoundError:
        raise ConflictError("no file has arrived for this upload yet; POST it with the form from "
                            "POST /uploads, then complete it") from None
    size, etag = sent["bytes"], sent["etag"]
    upload_cap(int(record["max_bytes"])).check(size)
    if size == 0:
        raise InvalidSpecError("upload", "the file is empty")
    try:
        parse = _text_parser(record["name"])
        if parse is not None:
            head = store.read_head(key, min(size, CSV_PROBE_BYTES), etag)
            check_text_start(record["name"], head, whole=size <= CSV_PROBE_BYTES)
        else:
            shape, dtype, offset = store.upload_header(key, etag)
            check_npy(tuple(shape), np.dtype(dtype), offset, size)
    except InvalidBlobError as exc:
        raise InvalidSpecError("upload", exc.reason) from None
    return {**sent, "completed_at": now}


def check_content(name: str, data: bytes) -> None:
    """A ``.npy`` must be a whole 2-D float32/float64 array; a ``.csv`` an atoms table, a ``.pqr``
    or ``.xyz`` a molecule."""
    if _text_parser(name) is not None:
        check_text_start(name, data, whole=True)
        return
    fp = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fp)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fp)
    except ValueError:
        raise InvalidSpecError("upload", "not a valid .npy file") from None
    check_npy(shape, dtype, fp.tell(), len(data))


def check_npy(shape: tuple[int, ...], dtype: np.dtype[Any], offset: int, size: int) -> None:
    """A ``.npy`` header fit for an input: 2-D float32/float64, and exactly ``size`` bytes long."""
    if len(shape) != 2 or dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise InvalidSpecError("upload", "a .npy upload must hold a 2-D float32 or float64 array")
    expected = offset + shape[0] * shape[1] * dtype.itemsize
    if size != expected:
        raise InvalidSpecError("upload", f"the .npy file is {size} bytes; its header says {expected}")


def check_text_start(name: str, data: bytes, *, whole: bool) -> None:
    """A text upload: a whole file must parse; of a longer one, a CSV's first lines must, and a
    molecule's start must be UTF-8 (the job parses it all, strictly, when it is submitted)."""
    parse = _text_parser(name)
    if parse is parse_csv:
        check_csv_start(data, whole=whole)
        return
    if not whole:
        data = data[: data.rfind(b"\n") + 1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSpecError("upload", f"a {name.rsplit('.', 1)[-1]} upload must be UTF-8 text") from None
    if whole:
        parse(text, "upload")


def check_csv_start(data: bytes, *, whole: bool) -> None:
    """A UTF-8 atoms table; of a longer file, the whole lines among ``data``, its start."""
    if not whole:
        end = data.rfind(b"\n")
        if end < 0:
            raise InvalidSpecError("upload", f"a .csv upload's first line must be shorter than {len(data)} bytes")
        data = data[: end + 1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSpecError("upload", "a .csv upload must be UTF-8 text") from None
    parse_csv(text, "upload")

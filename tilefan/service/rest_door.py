"""What a REST caller may name: data by ID, never a path or a bucket key of their choosing.

A REST body names an input as seeded random data, an upload (``uploads/<upload_id>/<name>``
from ``POST /uploads``), or a previous job's output (``jobs/<job_id>/out.npy``,
``.../out.zarr`` or ``.../field.npy``), each only the caller's own: someone else's upload or
job is unknown, exactly as a missing one is. Outputs belong to the job: ``out`` and
``field_out`` are refused, a matrix job may ask for a Zarr result with ``"out_format": "zarr"``
(written one chunk per tile, never assembled), and an atoms job asks for its field with
``"field": true``. ``restrict`` rewrites a body into
the spec the pipeline runs, raising ``InvalidSpecError`` naming the field otherwise;
messages never say whether a path exists or what a file holds. The CLI does not come
through here: it runs as its user, on that user's paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tilefan.domain.records import Status
from tilefan.domain.upload_keys import OUT_FORMATS, UPLOAD_KEY, field_key, job_output_of, produced, result_key
from tilefan.errors import InvalidSpecError, JobNotFoundError
from tilefan.pipeline.ports import JobStore
from tilefan.service.uploads import Uploads

_OUTPUTS = {"out": "matmul and add", "field_out": "atoms"}


def restrict(raw: Any, job_id: str, owner: str, uploads: Uploads, jobs: JobStore) -> Any:
    """The body a REST caller may submit, with its own outputs filled in."""
    if not isinstance(raw, Mapping):
        return raw  # the spec check says what is wrong with it
    body = dict(raw)
    for name in _OUTPUTS:
        if body.get(name) is not None:
            raise InvalidSpecError(name, "outputs belong to the job and cannot be placed; download them from "
                                         f"GET /jobs/{{job_id}}/{'field' if name == 'field_out' else 'result'}")
        body.pop(name, None)
    if body.get("kind") == "atoms":
        want_field = body.pop("field", False)
        if not isinstance(want_field, bool):
            raise InvalidSpecError("field", f"must be true or false, got {type(want_field).__name__}")
        if want_field:
            body["field_out"] = field_key(job_id)
    else:
        out_format = body.pop("out_format", "npy")
        if out_format not in OUT_FORMATS:
            raise InvalidSpecError("out_format", f"must be one of {', '.join(OUT_FORMATS)}, got {out_format!r}")
        body["out"] = result_key(job_id, out_format)
    for role in ("a", "b", "atoms"):
        value = body.get(role)
        if isinstance(value, Mapping) and "file" in value:
            key = _input_key(value["file"], f"{role}.file", owner, uploads, jobs)
            body[role] = {**value, "file": key}
    around = body.get("around")
    if isinstance(around, Mapping) and around.get("file") is not None:
        body["around"] = {**around, "file": _input_key(around["file"], "around.file", owner, uploads, jobs)}
    return body


def _input_key(value: Any, field: str, owner: str, uploads: Uploads, jobs: JobStore) -> str:
    if not isinstance(value, str):
        raise InvalidSpecError(field, "must be a string naming an upload or a job's output")
    if UPLOAD_KEY.match(value):
        return uploads.resolve(value, owner, field)
    output = job_output_of(value)
    if output is None:
        raise InvalidSpecError(field, "must name an upload (uploads/<upload_id>/<name>, from POST /uploads) "
                                      "or a job's output (jobs/<job_id>/out.npy, out.zarr or field.npy)")
    job_id, which, _ = output
    try:
        record = jobs.get_job(job_id, owner)  # someone else's job: as if there were none
    except JobNotFoundError:
        raise InvalidSpecError(field, f"no job {job_id} has an output to use") from None
    if record.status is not Status.SUCCEEDED:
        raise InvalidSpecError(field, f"no job {job_id} has an output to use")
    if produced(record.spec, which) != value:
        raise InvalidSpecError(field, f"no job {job_id} has an output to use")
    return value


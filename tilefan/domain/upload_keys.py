"""The keys a REST caller's data lives at in a blob store, named once: uploads and job outputs.

Uploads: ``uploads/<id>/<name>`` is the file; ``uploads/<id>/.issued.json`` the record
written when the ID is issued; ``uploads/<id>/.complete.json`` the record written once,
when the completion step has checked the file (on AWS: its ETag and VersionId). Record
names start with a dot, which a file name cannot, so no upload key ever names a record.
A file name is plain (letters, digits, ``. _ -``, at most 128 characters) and ends in one
of ``UPLOAD_SUFFIXES``; the OpenAPI document's patterns are built from the same pieces.

Job outputs: a job run through the REST API writes its result to
``jobs/<id>/out.npy`` (or ``out.zarr``) and its field to ``jobs/<id>/field.npy``; those
are what ``GET /jobs/{id}/result`` and ``/field`` serve, and what a later job may name as
an input. The service, the input check and the plan step all ask this module.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from tilefan.domain.spec.resolved import AtomsSpec, JobSpec, MatrixSpec
from tilefan.errors import InvalidSpecError

UPLOAD_SUFFIXES = (".npy", ".csv", ".pqr", ".xyz", ".extxyz")
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
UPLOAD_NAME = re.compile(rf"^{_NAME}$")
UPLOAD_ID = re.compile(r"^[0-9a-f]{16}$")
UPLOAD_KEY = re.compile(rf"^uploads/([0-9a-f]{{16}})/({_NAME})$")

OUT_FORMATS = ("npy", "zarr")
_OUTPUT_FILES = r"(out\.npy|out\.zarr|field\.npy)"
JOB_OUTPUT_KEY = re.compile(rf"^jobs/([0-9a-f]{{16}})/{_OUTPUT_FILES}$")
Output = Literal["result", "field"]


def _any_case(suffix: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in suffix)


# The schema's form of the name rule: a suffix in any case after at most 124 characters
# (JSON Schema patterns have no portable look-ahead to bound the whole length).
_NAME_WITH_SUFFIX = (r"[A-Za-z0-9][A-Za-z0-9._-]{0,123}\.("
                     + "|".join(_any_case(s.removeprefix(".")) for s in UPLOAD_SUFFIXES) + ")")
UPLOAD_NAME_PATTERN = rf"^{_NAME_WITH_SUFFIX}$"
# What a job's ``file`` may name over REST: an upload's key or a previous job's output.
INPUT_KEY_PATTERN = rf"^(uploads/[0-9a-f]{{16}}/{_NAME_WITH_SUFFIX}|jobs/[0-9a-f]{{16}}/{_OUTPUT_FILES})$"


def check_upload_name(name: Any) -> str:
    """A file name an upload may take, or InvalidSpecError naming ``filename``.

    >>> check_upload_name("A.npy")
    'A.npy'
    >>> check_upload_name("../A.npy")
    Traceback (most recent call last):
    tilefan.errors.InvalidSpecError: filename: must be a plain file name (letters, digits, . _ -), e.g. A.npy
    """
    if not isinstance(name, str) or not UPLOAD_NAME.match(name):
        raise InvalidSpecError("filename", "must be a plain file name (letters, digits, . _ -), e.g. A.npy")
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        raise InvalidSpecError("filename", f"must end in {', '.join(UPLOAD_SUFFIXES)}")
    return name


def upload_key(upload_id: str, name: str) -> str:
    """
    >>> upload_key("0123456789abcdef", "A.npy")
    'uploads/0123456789abcdef/A.npy'
    """
    return f"uploads/{upload_id}/{name}"


def issued_key(upload_id: str) -> str:
    """The record written when ``upload_id`` is issued.

    >>> issued_key("0123456789abcdef")
    'uploads/0123456789abcdef/.issued.json'
    """
    return f"uploads/{upload_id}/.issued.json"


def complete_key(upload_id: str) -> str:
    """The record written once, when ``upload_id`` completes.

    >>> complete_key("0123456789abcdef")
    'uploads/0123456789abcdef/.complete.json'
    """
    return f"uploads/{upload_id}/.complete.json"


def upload_id_of(key: str) -> str | None:
    """The upload ID a store key names, or None for any other key.

    >>> upload_id_of("uploads/0123456789abcdef/A.npy"), upload_id_of("uploads/0123456789abcdef/.issued.json")
    ('0123456789abcdef', None)
    """
    match = UPLOAD_KEY.match(key)
    return match.group(1) if match else None


def result_key(job_id: str, out_format: str = "npy") -> str:
    """
    >>> result_key("0123456789abcdef"), result_key("0123456789abcdef", "zarr")
    ('jobs/0123456789abcdef/out.npy', 'jobs/0123456789abcdef/out.zarr')
    """
    return f"jobs/{job_id}/out.{out_format}"


def field_key(job_id: str) -> str:
    return f"jobs/{job_id}/field.npy"


def output_key(job_id: str, which: Output) -> str:
    """The key ``GET /jobs/{id}/result`` (the ``.npy`` result) or ``/field`` serves."""
    return result_key(job_id) if which == "result" else field_key(job_id)


def produced(spec: JobSpec, which: Output) -> str | None:
    """Where a job's spec put its result (a matrix job's ``out``) or its field (an atoms
    job's ``field_out``), if anywhere."""
    if which == "result":
        return spec.out if isinstance(spec, MatrixSpec) else None
    return spec.field_out if isinstance(spec, AtomsSpec) else None


def job_output_of(key: str) -> tuple[str, Output, str] | None:
    """The job, the output and its file a key names, or None for any other key.

    >>> job_output_of("jobs/0123456789abcdef/out.zarr"), job_output_of("jobs/0123456789abcdef/manifest.json")
    (('0123456789abcdef', 'result', 'out.zarr'), None)
    """
    match = JOB_OUTPUT_KEY.match(key)
    if not match:
        return None
    job_id, name = match.groups()
    return job_id, "result" if name.startswith("out") else "field", name

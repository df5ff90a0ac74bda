"""Response models: the public shapes the REST API returns, for the OpenAPI document.

The service builds plain dicts (``JobRecord.to_dict``, ``JobService``); these models state
their shape once so ``tilefan.entrypoints.http.openapi`` can generate the schema, and the
service validates each job, job page and upload answer against them before it leaves
(``tilefan.service.responses``). Fields that may be absent are optional without being
nullable; fields that are always present but may be empty are required and nullable.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from tilefan.domain.records import Status
from tilefan.domain.spec.request_models import JobRequest
from tilefan.domain.spec.resolved import Kind
from tilefan.domain.upload_keys import UPLOAD_NAME_PATTERN

Dtype = Literal["float32", "float64"]


Triple = Annotated[list[float], Field(min_length=3, max_length=3)]
IntTriple = Annotated[list[int], Field(min_length=3, max_length=3)]


class _Fixed(BaseModel):
    """A shape the API never extends silently: unknown keys are a documentation bug."""

    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """A shape that may carry more keys than listed (they vary by method or backend)."""

    model_config = ConfigDict(extra="allow")


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _absent(description: str | None = None, **extra: Any) -> Any:
    """A key that is left out rather than set to null (so the schema shows no null default)."""
    return Field(None, description=description, json_schema_extra=_drop_default, **extra)


# --------------------------------------------------------------------------- errors


class ErrorDetail(_Fixed):
    code: str = Field(examples=["invalid_input", "job_not_found", "conflict"])
    message: str
    field: str | SkipJsonSchema[None] = _absent("the spec field to fix, for invalid input", examples=["a.shape"])


class Error(_Fixed):
    """The body of every 4xx and 5xx answer."""

    error: ErrorDetail


class JobError(ErrorDetail):
    """Why a job FAILED."""

    tile_id: int | SkipJsonSchema[None] = _absent("the tile whose kernel failed")


# --------------------------------------------------------------------------- results


class Verification(_Open):
    method: Literal["exact", "freivalds", "sampled"]
    passed: bool


class Checksums(_Fixed):
    sum: float
    frobenius: float


class MatrixResult(_Fixed):
    """What a matmul or add job produced."""

    shape: Annotated[list[int], Field(min_length=2, max_length=2)]
    dtype: Dtype
    checksums: Checksums
    output: str = Field(description="where C was written")
    verification: Verification | SkipJsonSchema[None] = _absent("present when the job asked to verify")


class AtomsResult(_Fixed):
    """What an atoms job produced: the field's minimum, and where it lies."""

    min_value: float
    min_index: IntTriple
    min_point: Triple
    grid: IntTriple
    precision: Dtype
    field: str | SkipJsonSchema[None] = _absent("where the whole field was written (with field_out)")
    verification: Verification | SkipJsonSchema[None] = _absent("present when the job asked to verify")


# --------------------------------------------------------------------------- jobs


class Progress(_Fixed):
    tiles_done: int
    tiles_total: int
    units_done: int
    units_total: int
    percent: float
    eta_s: float | None = Field(description="seconds left at the current rate; null while unknown")
    queue_place: int | SkipJsonSchema[None] = _absent(
        "while QUEUED on the embedded backend: 1 for the next job the scheduler starts, 2 for the one after...")


class Job(_Fixed):
    """A job record: what was asked, how far it got, and what came of it."""

    job_id: str
    kind: Kind
    status: Status
    spec: JobRequest = Field(description="the resolved spec, in a form that resubmits the same job")
    progress: Progress
    timings: dict[str, float] = Field(description="epoch seconds (…_at) and durations (…_s)")
    result: MatrixResult | AtomsResult | None
    error: JobError | None
    links: dict[str, str] = Field(description="self, report, and backend-specific links")
    owner: str = Field(description="who submitted it: 'local' under tilefan serve; on AWS the caller's IAM ARN, "
                                   "or cognito:<sub>. Only the owner sees a job")


class JobPage(_Fixed):
    """Jobs newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""

    jobs: list[Job]
    next_cursor: str | None


# --------------------------------------------------------------------------- reports


class TileRow(_Open):
    tile_id: int
    status: Literal["running", "done", "failed", "cancelled"]
    started_at: float | None
    finished_at: float | None
    duration_s: float | None
    route: str | None
    worker: str | None
    attempts: int | None
    error: str | dict[str, Any] | None


class AttemptRow(_Fixed):
    """One attempt at a tile: every accepted start is one. Exactly one attempt of a done
    tile is "done"; "duplicate" finished after another had counted (not counted again);
    "lost" never reported back (its worker died or timed out)."""

    tile_id: int
    attempt: int = Field(description="1 for the first attempt at the tile, 2 for its first retry...")
    status: Literal["running", "done", "failed", "cancelled", "duplicate", "lost"]
    started_at: float | None
    finished_at: float | None
    duration_s: float | None
    route: str | None
    worker: str | None
    bytes_read: int | None
    bytes_written: int | None
    error: str | None


class ReportSummary(_Open):
    status: Status
    tiles_total: int
    tiles_done: int
    tiles_failed: int
    tile_seconds_total: float
    tile_seconds_max: float
    tile_seconds_mean: float
    routes: list[str]
    route_counts: dict[str, int]
    attempts_total: int = Field(description="attempts at all tiles (one row each in ``attempts``)")
    retries: int = Field(description="attempts beyond the first at each tile")
    attempts_failed: int = Field(description="attempts that failed or were lost")


class Report(_Fixed):
    """Per-tile timings, routes and workers, every attempt at each tile, and a summary."""

    job_id: str
    summary: ReportSummary
    tiles: list[TileRow]
    attempts: list[AttemptRow]


# --------------------------------------------------------------------------- uploads


class UploadRequest(_Open):
    filename: str = Field(pattern=UPLOAD_NAME_PATTERN, examples=["A.npy", "atoms.csv", "adk_open.pqr"])


class StoredFile(_Fixed):
    file: str


class UploadTarget(_Fixed):
    """Where to send the file's bytes (embedded: PUT to ``url``; AWS: a form POST of ``fields``
    and the file to S3's ``url``); a job then names it as ``use_as``."""

    upload_id: str
    key: str
    method: Literal["PUT", "POST"]
    url: str
    fields: dict[str, str] | SkipJsonSchema[None] = _absent("form fields to POST with the file (AWS)")
    expires_in: int = Field(description="seconds the upload ID stays valid")
    max_bytes: int = Field(description="the largest file accepted")
    use_as: StoredFile
    complete: str = Field(description="where to POST once the file is sent; a job may name it only then")


class UploadStored(_Fixed):
    key: str
    bytes: int


class UploadComplete(_Fixed):
    """A checked upload: what its file is, and (on AWS) the S3 object every read is pinned to."""

    upload_id: str
    key: str
    status: Literal["COMPLETE"]
    bytes: int
    etag: str | SkipJsonSchema[None] = _absent("the S3 object's ETag that every read must match (AWS)")
    version_id: str | SkipJsonSchema[None] = _absent("the S3 object's VersionId (AWS, versioned buckets)")
    use_as: StoredFile

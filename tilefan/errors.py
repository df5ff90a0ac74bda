"""The project's own exceptions. Adapters translate backend errors into these.

``tilefan.pipeline.error_codec`` turns them into error bodies and back; every class a
runner may report must be defined here, so the codec finds it by name.
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[TilefanError], args: tuple[object, ...]) -> TilefanError:
    """An error of ``cls`` with ``args`` but without running its ``__init__``: pickle then
    restores the attributes the constructor set."""
    return cls.__new__(cls, *args)


class TilefanError(Exception):
    """Base class for every error tilefan raises on purpose.

    An error raised in a pool worker is pickled back to the parent. Pickle would call the
    class with ``args`` (the message), which fits no subclass's constructor, so every error
    is rebuilt from its message and the attributes its constructor set instead.
    """

    code = "internal_error"
    # Whether trying again later may succeed. The one answer for every runner: the embedded
    # scheduler retries a tile only on a retryable error, and the state machine's tile
    # states never retry the others (a test checks its Retry lists against this).
    retryable = False

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args), self.__dict__)


class InvalidSpecError(TilefanError):
    """A job spec or input file is wrong; ``field`` names what to fix."""

    code = "invalid_input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class JobNotFoundError(TilefanError):
    code = "job_not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class BlobNotFoundError(TilefanError):
    code = "blob_not_found"

    def __init__(self, key: str) -> None:
        super().__init__(f"no such input or object: {key}")
        self.key = key


class ConflictError(TilefanError):
    """A conditional write lost: the record was not in the state the caller expected."""

    code = "conflict"


class NotFoundError(TilefanError):
    """Something a caller named by ID (an upload, a job's output) that is not there for them."""

    code = "not_found"


class TooManyJobsError(TilefanError):
    """A caller already has as many QUEUED or RUNNING jobs as the limit allows."""

    code = "too_many_jobs"

    def __init__(self, limit: int, setting: str = "TILEFAN_MAX_CONCURRENT_JOBS") -> None:
        super().__init__(
            f"too many jobs at once: each caller may have at most {limit} queued or running "
            f"(setting {setting}); wait for one to end or cancel one")
        self.limit = limit


class UnauthenticatedError(TilefanError):
    """A request that reached a route without an authenticated identity to own its jobs."""

    code = "unauthorized"


class GoneError(TilefanError):
    """An upload ID whose time to receive bytes has passed."""

    code = "upload_expired"


class TooLargeError(TilefanError):
    """A request or upload over its size cap (the message names the cap)."""

    code = "body_too_large"


class IncompleteJobError(TilefanError):
    """The reducer was asked to finish a job whose tiles are not all recorded done."""

    code = "incomplete_job"

    def __init__(self, job_id: str, missing: list[int], why: str = "not recorded done") -> None:
        shown = ", ".join(str(t) for t in missing[:10])
        more = "" if len(missing) <= 10 else f" and {len(missing) - 10} more"
        super().__init__(
            f"job {job_id} cannot be reduced: {len(missing)} tile(s) {why} ({shown}{more})"
        )
        self.job_id = job_id
        self.missing = missing


class TileFailedError(TilefanError):
    """A tile's kernel failed; carries the tile id so users can see which one."""

    code = "tile_failed"

    def __init__(self, tile_id: int, message: str) -> None:
        super().__init__(f"tile {tile_id}: {message}")
        self.tile_id = tile_id
        self.message = message


class StoreError(TilefanError):
    """A storage backend failed in a way the caller cannot fix by changing input."""

    code = "store_error"
    retryable = True


class StoreThrottledError(StoreError):
    """The backend refused a request for its rate (DynamoDB or S3 throttling): retrying
    later succeeds. Step Functions retries the Plan and Reduce steps on it by name."""


class RunnerError(TilefanError):
    code = "runner_error"


class InvalidBlobError(TilefanError):
    """An object exists but is not what was expected (not a .npy file, bad CSV...)."""

    code = "invalid_input"

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class QueueError(TilefanError):
    """The spot work queue (SQS) refused or failed a request."""

    code = "queue_error"


class StaleTaskTokenError(TilefanError):
    """Step Functions no longer waits on this task token: it timed out, was answered, or
    never existed. Whatever the message carrying it asked for has been given to another."""

    code = "stale_task_token"


class CapacityError(TilefanError):
    """EC2 could not launch spot workers (no capacity, a limit, a bad template...)."""

    code = "capacity_error"


class MetadataError(TilefanError):
    """The instance metadata service (IMDSv2) could not be read."""

    code = "metadata_error"


class VerificationFailedError(TilefanError):
    """The reducer's spot check of a result disagreed with an independent computation."""

    code = "verification_failed"

    def __init__(self, check: dict[str, Any]) -> None:
        super().__init__(f"verification failed: {check}")
        self.check = check


class ReportedError(TilefanError):
    """An error raised in another process (a Lambda, a spot worker) and known to us only by
    what it reported: its code, message and, where it had them, field and tile id."""

    def __init__(self, code: str, message: str, field: str | None = None, tile_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.tile_id = tile_id


def error_types() -> dict[str, type[TilefanError]]:
    """Every TilefanError class by its name (what a Lambda reports as ``errorType``)."""

    def walk(cls: type[TilefanError]) -> list[type[TilefanError]]:
        return [c for sub in cls.__subclasses__() for c in (sub, *walk(sub))]

    return {cls.__name__: cls for cls in walk(TilefanError)}

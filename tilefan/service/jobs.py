"""What the REST API does, free of any web framework.

The Chalice routes (``rest.py``) turn requests into these calls and the results into
responses, on AWS and under ``tilefan serve`` alike. ``tilefan.service.core.JobCore``
adds running a job here to these calls: it is the one object every door is given. Each
answer is checked against its response model (``responses.documented``).

Every job has an owner, and the routes pass the caller's (``owner_of``): on AWS the
identity API Gateway authenticated, on the embedded backend the home's one principal
(``principal``, LOCAL_OWNER). A job of anyone else's is answered as a missing one, 404,
and so is its report, result or field; as an input of a new job it is an unknown job.
Calls without ``owner`` act as the ``principal`` (the embedded backend's own callers).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tilefan.domain.records import JobRecord, Status
from tilefan.domain.routing import RoutePolicy
from tilefan.domain.spec.parse import Limits
from tilefan.domain.upload_keys import Output, check_upload_name, field_key, output_key, produced, result_key
from tilefan.errors import ConflictError, InvalidSpecError, NotFoundError, UnauthenticatedError
from tilefan.pipeline.error_codec import error_body
from tilefan.pipeline.lifecycle import fail_job
from tilefan.pipeline.ports import JobRunner, Ports, QueuePlace, Serving
from tilefan.pipeline.report import tile_report
from tilefan.pipeline.submit import new_job_id, submit
from tilefan.service.responses import documented
from tilefan.settings import HttpLimits, list_policy

if TYPE_CHECKING:
    from tilefan.service.uploads import Uploads

# What only a REST caller needs (uploads and their caps, the rules of what a request may
# name) is imported by the calls that use it: the local doors' core (``tilefan run``)
# never loads it, so a short run does not pay for it.

MAX_PAGE = 100
UPLOAD_EXPIRES_S = 900
DOWNLOAD_EXPIRES_S = 300


@dataclass(eq=False)
class JobService:
    """The REST calls, over the ports and the runner the composition root hands it."""

    ports: Ports
    runner: JobRunner
    limits: Limits
    clock: Callable[[], float] = time.time
    policy: RoutePolicy = field(default_factory=list_policy)  # the list prices unless handed others
    # The one owner of every job on a single-principal backend (embedded); None where
    # each request's authenticated identity owns its jobs (AWS).
    principal: str | None = None
    # The embedded backend queues jobs in its store: the owner's cap counts them up to
    # limits.max_queued_jobs, and its scheduler runs max_concurrent_jobs at most.
    queue: bool = False
    # The runner's optional capabilities, as the composition root wired them: where a
    # QUEUED job waits, and a dispatcher the server starts and stops (both embedded).
    places: QueuePlace | None = None
    serving: Serving | None = None
    http_limits: HttpLimits = field(default_factory=HttpLimits)  # what one request may carry

    @cached_property
    def uploads(self) -> Uploads:
        """The issued uploads, built at the first call that needs them (REST only)."""
        from tilefan.service.uploads import Uploads

        return Uploads(self.ports.blobs, UPLOAD_EXPIRES_S, self.http_limits.max_upload_bytes,
                       self.ports.direct_put, self.ports.sent_uploads)

    # ------------------------------------------------------------------ owners

    def owner_of(self, identity: str | None) -> str:
        """Who owns what a request creates and may see: the backend's one principal, else
        the authenticated identity of the request; UnauthenticatedError without either."""
        if self.principal is not None:
            return self.principal
        if not identity:
            raise UnauthenticatedError("this request carries no authenticated identity to own jobs")
        return identity

    def _owner(self, owner: str | None) -> str | None:
        return owner if owner is not None else self.principal

    # ------------------------------------------------------------------ jobs

    def submit(self, body: Any, owner: str | None = None) -> dict[str, Any]:
        """Validate and record the job, then start it. Bad input raises before any write."""
        from tilefan.service.rest_door import restrict

        who = self.owner_of(self._owner(owner))
        job_id = new_job_id()
        body = restrict(body, job_id, who, self.uploads, self.ports.jobs)
        links = {"self": f"/jobs/{job_id}", "report": f"/jobs/{job_id}/report", **self.runner.links(job_id)}
        submission = submit(self.ports, body, limits=self.limits, clock=self.clock, job_id=job_id, links=links,
                            policy=self.policy, owner=who, queue=self.queue)
        try:
            self.runner.start(job_id, submission.plan)
        except Exception as exc:
            fail_job(self.ports, job_id, error_body(exc), clock=self.clock)
            raise
        return documented("job", self.describe(self.ports.jobs.get_job(submission.record.job_id)))

    def get(self, job_id: str, owner: str | None = None) -> dict[str, Any]:
        return documented("job", self.describe(self.ports.jobs.get_job(job_id, self._owner(owner))))

    def describe(self, record: JobRecord) -> dict[str, Any]:
        doc = record.to_dict()
        doc["progress"]["eta_s"] = self._eta(record)
        if record.status is Status.QUEUED and self.places is not None:
            # The job may leave the queue between the two reads: then there is no place to say.
            where = self.places.queue_place(record.job_id)
            if where is not None:
                doc["progress"]["queue_place"] = where
        return doc

    def _eta(self, record: JobRecord) -> float | None:
        if record.status is Status.SUCCEEDED:
            return 0.0
        started = record.timings.get("started_at")
        if record.status is not Status.RUNNING or not started or record.units_done == 0:
            return None
        elapsed = max(self.clock() - started, 0.0)
        rate = record.units_done / elapsed if elapsed > 0 else 0.0
        return round((record.units_total - record.units_done) / rate, 3) if rate > 0 else None

    def list(self, limit: Any = None, cursor: str | None = None, owner: str | None = None) -> dict[str, Any]:
        size = 20 if limit is None else _page_size(limit)
        records, next_cursor = self.ports.jobs.list_jobs(size, cursor or None, self._owner(owner))
        return documented("job_page", {"jobs": [self.describe(r) for r in records], "next_cursor": next_cursor})

    def cancel(self, job_id: str, owner: str | None = None) -> dict[str, Any]:
        record = self.ports.jobs.get_job(job_id, self._owner(owner))  # someone else's: not found
        if record.status.terminal or not self.runner.cancel(job_id):
            status = self.ports.jobs.get_job(job_id).status.value
            raise ConflictError(f"job {job_id} is {status}; only QUEUED or RUNNING jobs can be cancelled")
        return self.get(job_id, owner)

    def report(self, job_id: str, owner: str | None = None) -> dict[str, Any]:
        self.ports.jobs.get_job(job_id, self._owner(owner))  # someone else's: not found
        return documented("report", tile_report(self.ports, job_id, self.policy))

    # ------------------------------------------------------------------ uploads

    def create_upload(self, body: Any, owner: str | None = None) -> dict[str, Any]:
        """An upload ID and where to send the file; a job then names it as {"file": key}."""
        return documented("upload_target", self._upload_target(body, owner))

    def _upload_target(self, body: Any, owner: str | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidSpecError("body", "must be a JSON object like {\"filename\": \"A.npy\"}")
        name = check_upload_name(body.get("filename"))
        upload_id, key = self.uploads.issue(name, self.owner_of(self._owner(owner)), self.clock())
        target = {"upload_id": upload_id, "key": key, "method": "PUT", "url": f"/uploads/{upload_id}/{name}",
                  "expires_in": UPLOAD_EXPIRES_S, "max_bytes": self.uploads.max_bytes, "use_as": {"file": key},
                  "complete": f"/uploads/{upload_id}/complete"}
        if self.ports.presign is not None:
            form = self.ports.presign.presign_post(key, UPLOAD_EXPIRES_S, self.uploads.max_bytes)
            target.update(method="POST", url=form["url"], fields=form["fields"])
        return target

    def receive_upload(self, upload_id: str, name: str, data: bytes, owner: str | None = None,
                       declared: int | None = None) -> dict[str, Any]:
        """Embedded backend only: store an issued upload's bytes, once (on AWS the client posts to S3)."""
        return documented("upload_stored", self.uploads.receive(upload_id, name, self.owner_of(self._owner(owner)),
                                                                data, self.clock(), declared))

    def complete_upload(self, upload_id: str, owner: str | None = None) -> dict[str, Any]:
        """POST /uploads/{id}/complete: check the sent file and record it COMPLETE (idempotent)."""
        return documented("upload_complete", self.uploads.complete(upload_id, self.owner_of(self._owner(owner)),
                                                                   self.clock()))

    def output(self, job_id: str, which: Output, owner: str | None = None) -> tuple[str, str | bytes]:
        """A finished job's output: ("redirect", presigned URL) on AWS, ("bytes", the .npy) locally."""
        record = self.ports.jobs.get_job(job_id, self._owner(owner))
        key = output_key(job_id, which)
        placed = produced(record.spec, which)
        if which == "result" and placed == result_key(job_id, "zarr") and record.status is Status.SUCCEEDED:
            raise NotFoundError(f"job {job_id}'s result is a Zarr array (one object per chunk), not one file: read it "
                                f"where result.output says, or name jobs/{job_id}/out.zarr as a job's input")
        if record.status is not Status.SUCCEEDED or placed != key:
            # Outputs a caller placed elsewhere (the CLI's own paths) are not served.
            raise NotFoundError(f"job {job_id} has no {which} to download")
        if self.ports.presign is not None:
            return "redirect", self.ports.presign.presign_get(key, DOWNLOAD_EXPIRES_S)
        return "bytes", self.ports.blobs.read_bytes(key)

    def field_source(self, job_id: str, owner: str | None = None) -> tuple[Any, Callable[[], Any], bool]:
        """A finished atoms job's spec, a reader of its field, and whether the field is remote
        (downloaded by redirect): what a map conversion needs (``entrypoints.http.field_download``)."""
        how, _ = self.output(job_id, "field", owner)  # the same checks: the caller's, finished, with a field
        spec = self.ports.jobs.get_job(job_id).spec
        return spec, lambda: self.ports.blobs.read_array(field_key(job_id)), how == "redirect"

    def record(self, job_id: str, owner: str | None = None) -> JobRecord:
        """The job's record, typed, as the local doors read it (someone else's: not found)."""
        return self.ports.jobs.get_job(job_id, self._owner(owner))

    def atoms_slice(self, job_id: str, owner: str | None = None) -> dict[str, Any]:
        """The web page's heat map: a slice through a finished atoms job's field."""
        from tilefan.pipeline.slices import atoms_slice

        self.record(job_id, owner)  # someone else's job: not found
        return atoms_slice(self.ports, job_id)


def _page_size(raw: Any) -> int:
    # Digits only, as the OpenAPI document's integer says: int() would also take "", " 5",
    # "+5" and "5_0", which the document does not allow.
    if isinstance(raw, str) and re.fullmatch(r"-?[0-9]{1,18}", raw):
        size = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        size = raw
    else:
        raise InvalidSpecError("limit", f"must be an integer, got {raw!r}")
    if not 1 <= size <= MAX_PAGE:
        raise InvalidSpecError("limit", f"must be between 1 and {MAX_PAGE}, got {size}")
    return size

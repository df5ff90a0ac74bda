"""Submit: validate a raw spec at the door and record the job as QUEUED.

Both runners call this step (the embedded process pool directly, the AWS REST API through
its job service); nothing here knows which backend it is on. A submission plans its job
once: the size fit, the guardrails and the record share one plan, which ``submit`` returns
for the plan step (``plan_job(..., planned=...)``) to use rather than cut it again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from tilefan.domain.inline_tiles import held_matmul_tile, reads_in_place
from tilefan.domain.plan import Plan, output_shape
from tilefan.domain.records import LOCAL_OWNER, JobRecord, Status
from tilefan.domain.routing import RoutePolicy
from tilefan.domain.spec.parse import JobSpec, Kind, Limits, MatrixSpec, parse_spec
from tilefan.domain.tile_fit import fit_to_lambda, fitted_plan
from tilefan.errors import TooManyJobsError
from tilefan.pipeline.guardrails import check_guardrails
from tilefan.pipeline.inputs import load_atoms_file, output_key
from tilefan.pipeline.output_claims import claim_output
from tilefan.pipeline.ports import Clock, Ports
from tilefan.settings import list_policy


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


def admit(ports: Ports, raw: Any, limits: Limits, policy: RoutePolicy | None = None) -> JobSpec:
    """Validate a raw spec at the door, reading file headers through the blob store.

    When the user left the tile size to us, pick one that keeps the job on Lambda if that
    is no dearer than sending its big tiles to spot (``tile_fit.fit_to_lambda``), at ``policy``'s
    prices (the list prices without one); a matmul whose output this process builds in its
    memory gets the row panels it runs fastest in here (``inline_tiles.held_matmul_tile``).
    """
    spec = _resolve(ports, raw, limits)
    if raw.get("tile") is not None:
        return spec
    return _held_here(ports, spec, "submit") or fit_to_lambda(spec, policy or list_policy())


def admit_planned(
    ports: Ports, raw: Any, limits: Limits, policy: RoutePolicy | None = None, job_id: str = "submit",
) -> tuple[JobSpec, Plan | None]:
    """``admit``'s spec, with the plan the size fit judged it by (None when the user gave the
    tile, or when the job's output, ``output_key(job_id, spec)``, is built in memory)."""
    spec = _resolve(ports, raw, limits)
    if raw.get("tile") is not None:
        return spec, None
    held = _held_here(ports, spec, job_id)
    return (held, None) if held is not None else fitted_plan(spec, policy or list_policy(), job_id=job_id)


def _held_here(ports: Ports, spec: JobSpec, job_id: str) -> JobSpec | None:
    """``spec`` with ``held_matmul_tile``'s tiles if it is a matmul whose output this
    process would build in its memory and whose inputs its tiles read in place, else None."""
    memory = ports.memory_outputs
    if memory is None or not isinstance(spec, MatrixSpec) or spec.kind is not Kind.MATMUL \
            or not reads_in_place(spec):
        return None
    key = output_key(job_id, spec)
    if key is None or not memory.would_hold(key, output_shape(spec), spec.dtype):
        return None
    return replace(spec, tile=held_matmul_tile(spec.out_shape))


def _resolve(ports: Ports, raw: Any, limits: Limits) -> JobSpec:
    return parse_spec(
        raw,
        limits=limits,
        inspect=ports.blobs.array_info,
        load_atoms=lambda uri: load_atoms_file(ports.blobs, uri),
    )


@dataclass(frozen=True)
class Submission:
    """A recorded job and its plan, cut once while it was submitted."""

    record: JobRecord
    plan: Plan


def submit_job(
    ports: Ports, raw: Any, *, limits: Limits | None = None, clock: Clock = time.time,
    job_id: str | None = None, links: Mapping[str, str] | None = None, policy: RoutePolicy | None = None,
    owner: str = LOCAL_OWNER, queue: bool = False,
) -> JobRecord:
    """Validate and record a new job of ``owner``'s as QUEUED (``submit``'s record)."""
    return submit(ports, raw, limits=limits, clock=clock, job_id=job_id, links=links, policy=policy,
                  owner=owner, queue=queue).record


def submit(
    ports: Ports, raw: Any, *, limits: Limits | None = None, clock: Clock = time.time,
    job_id: str | None = None, links: Mapping[str, str] | None = None, policy: RoutePolicy | None = None,
    owner: str = LOCAL_OWNER, queue: bool = False, check: Callable[[JobSpec], None] | None = None,
) -> Submission:
    """Validate and record a new job of ``owner``'s as QUEUED. Raises InvalidSpecError,
    writing nothing, and TooManyJobsError when the owner already has
    ``limits.max_concurrent_jobs`` jobs queued or running; with ``queue`` (the embedded
    backend, whose scheduler bounds running jobs itself) ``limits.max_queued_jobs``.
    ``check``: a door's own test of the admitted spec (raising InvalidSpecError), before
    anything is written."""
    limits = limits or Limits()
    policy = policy or list_policy()
    job_id = job_id or new_job_id()
    spec, fitted = admit_planned(ports, raw, limits, policy, job_id)
    if check is not None:
        check(spec)
    the_plan = check_guardrails(spec, limits, policy, planned=fitted)
    claim_output(ports, job_id, spec)
    record = JobRecord(
        job_id=job_id,
        kind=spec.kind.value,
        status=Status.QUEUED,
        spec=spec,
        created_at=clock(),
        tiles_total=len(the_plan.tiles),
        units_total=spec.units_total,
        links=dict(links or {}),
        owner=owner,
    )
    cap, setting = ((limits.max_queued_jobs, "TILEFAN_MAX_QUEUED_JOBS") if queue
                    else (limits.max_concurrent_jobs, "TILEFAN_MAX_CONCURRENT_JOBS"))
    try:
        ports.jobs.create_job(record, max_active=cap)
    except TooManyJobsError:
        raise TooManyJobsError(cap, setting) from None
    return Submission(record, the_plan.for_job(job_id))

"""A job whose Step Functions execution ended without saying so: timed out, aborted, failed.

The state machine marks its job FAILED itself (its MarkFailed state) and the reducer
SUCCEEDED; but an execution that times out, is stopped from the console or the API, or
fails in a way no Catch sees, ends with its job still QUEUED or RUNNING, which would keep
the owner's slot among their jobs at once forever. EventBridge's "Step Functions
Execution Status Change" event for this state machine (rule ``ExecutionEndedRule`` in
stepfunctions/merge-template.json) brings such an ending here:

- TIMED_OUT or FAILED: the job is marked FAILED (a runner error naming what happened);
- ABORTED: the job is marked CANCELLED, as a cancel through the API does.

A job already final is left alone (the usual case: the state machine marked it, or the
API cancelled it), and the store's transitions are conditional, so however often the
event is delivered the job ends once and its owner's slot is freed once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tilefan.errors import InvalidSpecError, JobNotFoundError
from tilefan.pipeline.error_codec import error_body, error_from_state
from tilefan.pipeline.lifecycle import cancel_job, fail_job
from tilefan.pipeline.ports import Clock, Ports

SOURCE = "aws.states"
DETAIL_TYPE = "Step Functions Execution Status Change"
ENDINGS = ("TIMED_OUT", "ABORTED", "FAILED")  # what the rule's pattern lets through
# The state error each ending is reported as, when the event names none.
_DEFAULT_ERRORS = {"TIMED_OUT": "States.Timeout", "FAILED": "States.Runtime"}


@dataclass(frozen=True)
class Ended:
    """One execution's ending, as the event says it."""

    job_id: str
    status: str  # one of ENDINGS
    error: str | None
    cause: str | None


def is_execution_event(event: Any) -> bool:
    return isinstance(event, Mapping) and event.get("source") == SOURCE and event.get("detail-type") == DETAIL_TYPE


def parse(event: Mapping[str, Any]) -> Ended:
    """The job and ending an event names. The execution is named after its job, and its
    input is ``{"job_id": ...}`` (``StepFunctionsRunner.start``); the input wins."""
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise InvalidSpecError("detail", f"must be an object, got {detail!r}")
    status = detail.get("status")
    if status not in ENDINGS:
        raise InvalidSpecError("detail.status", f"must be one of {', '.join(ENDINGS)}, got {status!r}")
    job_id = _input_job_id(detail.get("input")) or detail.get("name")
    if not isinstance(job_id, str) or not job_id:
        raise InvalidSpecError("detail.name", f"must name the job, got {job_id!r}")
    error, cause = detail.get("error"), detail.get("cause")
    return Ended(job_id, str(status), error if isinstance(error, str) else None,
                 cause if isinstance(cause, str) else None)


def _input_job_id(raw: Any) -> str | None:
    try:
        doc = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    value = doc.get("job_id") if isinstance(doc, dict) else None
    return value if isinstance(value, str) and value else None


def settle(ports: Ports, ended: Ended, *, clock: Clock = time.time) -> tuple[str | None, bool]:
    """End the job as its execution did, unless it has ended already: (its status, or None
    for an unknown job; whether this call ended it)."""
    try:
        record = ports.jobs.get_job(ended.job_id)
    except JobNotFoundError:
        return None, False
    if record.status.terminal:
        return record.status.value, False
    if ended.status == "ABORTED":
        changed = cancel_job(ports, ended.job_id, clock=clock)
    else:
        name = ended.error or _DEFAULT_ERRORS[ended.status]
        why = ended.cause or f"the execution ended {ended.status} before the job was marked"
        changed = fail_job(ports, ended.job_id, error_body(error_from_state({"Error": name, "Cause": why})),
                           clock=clock)
    return ports.jobs.get_job(ended.job_id).status.value, changed

"""An execution that ends without marking its job frees the owner's slot, exactly once.

On the moto stack, EventBridge's "Step Functions Execution Status Change" event, as the
rule ``ExecutionEndedRule`` delivers it to the mark-failed function (``app.mark_failed``),
ends a job left QUEUED or RUNNING: FAILED for a timed-out or failed execution, CANCELLED
for an aborted one. EventBridge delivers at least once, so each event is delivered twice
here: the job ends once, and the owner's cap on jobs at once (``create_job(max_active)``)
shows the slot freed once, not twice. A job the state machine already marked is left as
it is.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import app as chalice_app
from chalicelib import lambdas
from tests.functional.test_store_contract import job
from tilefan.domain.records import Status
from tilefan.errors import TooManyJobsError
from tilefan.pipeline.lifecycle import fail_job

ALICE = "arn:aws:iam::123456789012:user/alice"
CAP = 2


def ended(stack: Any, job_id: str, status: str, error: str | None = None, cause: str | None = None) -> dict[str, Any]:
    """The event as EventBridge delivers it for one of this state machine's executions."""
    execution = stack.execution_arn(job_id)
    return {
        "version": "0", "id": f"event-{job_id}-{status}", "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states", "account": "123456789012", "time": "2026-12-02T00:00:00Z", "region": "us-east-1",
        "resources": [execution],
        "detail": {"executionArn": execution, "stateMachineArn": stack.state_machine_arn, "name": job_id,
                   "status": status, "startDate": 1_764_633_600_000, "stopDate": 1_764_637_200_000,
                   "input": json.dumps({"job_id": job_id}), "output": None, "error": error, "cause": cause},
    }


def deliver_twice(stack: Any, event: dict[str, Any]) -> list[dict[str, Any]]:
    return [chalice_app.mark_failed(json.loads(json.dumps(event)), None) for _ in range(2)]


def admit(job_id: str) -> None:
    lambdas.get_ports().jobs.create_job(job(job_id, owner=ALICE), max_active=CAP)


def test_a_timed_out_execution_fails_its_job_and_frees_the_slot_once(stack: Any) -> None:
    jobs = lambdas.get_ports().jobs
    admit("j1")
    admit("j2")
    assert jobs.transition("j1", Status.RUNNING, timings={"started_at": 1.0})
    with pytest.raises(TooManyJobsError):
        admit("j3")

    first, again = deliver_twice(stack, ended(stack, "j1", "TIMED_OUT"))
    assert first == {"job_id": "j1", "status": "FAILED", "changed": True}
    assert again == {"job_id": "j1", "status": "FAILED", "changed": False}
    record = jobs.get_job("j1")
    assert record.error is not None and record.error["code"] == "runner_error"
    assert "States.Timeout" in record.error["message"] and "TIMED_OUT" in record.error["message"]
    assert record.timings["finished_at"] > 0

    admit("j3")  # one slot freed ...
    with pytest.raises(TooManyJobsError):
        admit("j4")  # ... and only one, though the event came twice


def test_an_aborted_execution_cancels_its_job_and_frees_the_slot_once(stack: Any) -> None:
    jobs = lambdas.get_ports().jobs
    admit("j1")
    admit("j2")
    assert jobs.transition("j2", Status.RUNNING, timings={"started_at": 1.0})
    assert jobs.tile_started("j2", 0, "lambda-1", "lambda", 2.0) is not None

    first, again = deliver_twice(stack, ended(stack, "j2", "ABORTED"))
    assert (first["status"], first["changed"], again["status"], again["changed"]) == (
        "CANCELLED", True, "CANCELLED", False)
    # The tile in flight is reported cancelled, not running forever.
    assert [row["status"] for row in jobs.tile_rows("j2")] == ["cancelled"]
    admit("j3")
    with pytest.raises(TooManyJobsError):
        admit("j4")


def test_a_failure_names_the_executions_error_and_a_job_already_ended_is_left_alone(stack: Any) -> None:
    ports = lambdas.get_ports()
    admit("j1")
    admit("j2")
    first, _ = deliver_twice(stack, ended(stack, "j1", "FAILED", "Lambda.ServiceException", "the service failed"))
    assert first["changed"] is True
    assert "Lambda.ServiceException" in ports.jobs.get_job("j1").error["message"]  # type: ignore[index]

    # The usual FAILED event: the state machine's MarkFailed state ended the job first.
    marked = {"code": "tile_failed", "message": "tile 1: boom", "tile_id": 1}
    assert fail_job(ports, "j2", marked)
    results = deliver_twice(stack, ended(stack, "j2", "FAILED", "TileFailedError", "{}"))
    assert [r["changed"] for r in results] == [False, False]
    assert ports.jobs.get_job("j2").error == marked
    admit("j3")
    admit("j4")  # both slots free: each freed once
    with pytest.raises(TooManyJobsError):
        admit("j5")

    unknown = chalice_app.mark_failed(ended(stack, "nosuchjob", "TIMED_OUT"), None)
    assert unknown == {"job_id": "nosuchjob", "status": None, "changed": False}

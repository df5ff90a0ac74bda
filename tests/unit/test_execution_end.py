"""Reading EventBridge's "Step Functions Execution Status Change" event (no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tilefan.errors import InvalidSpecError
from tilefan.pipeline.execution_end import Ended, is_execution_event, parse


def event(**detail: Any) -> dict[str, Any]:
    return {"source": "aws.states", "detail-type": "Step Functions Execution Status Change",
            "detail": {"name": "exec-name", "status": "TIMED_OUT", "input": json.dumps({"job_id": "j1"}),
                       "error": None, "cause": None, **detail}}


def test_the_job_is_the_executions_input_else_its_name() -> None:
    assert parse(event()) == Ended("j1", "TIMED_OUT", None, None)
    assert parse(event(input="not json", status="ABORTED")).job_id == "exec-name"
    assert parse(event(input=None, status="FAILED", error="E", cause="C")) == Ended("exec-name", "FAILED", "E", "C")


def test_only_the_state_machines_status_change_events_are_recognised() -> None:
    assert is_execution_event(event())
    assert not is_execution_event({"job_id": "j1", "execution_id": "x", "error": {"Error": "E"}})
    assert not is_execution_event({**event(), "source": "aws.ec2"})
    assert not is_execution_event("aws.states")


@pytest.mark.parametrize(("bad", "field"), [
    ({"status": "SUCCEEDED"}, "detail.status"), ({"status": "RUNNING"}, "detail.status"),
    ({"input": "{}", "name": ""}, "detail.name"), ({"input": "[1]", "name": None}, "detail.name"),
])
def test_an_event_that_names_no_unmarked_ending_is_refused(bad: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as refused:
        parse(event(**bad))
    assert refused.value.field == field
    with pytest.raises(InvalidSpecError):
        parse({**event(), "detail": "x"})

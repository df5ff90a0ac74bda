"""StepFunctionsRunner under moto: start once, describe, stop, and errors as tilefan's own."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tilefan.adapters.aws.sfn_runner import StepFunctionsRunner
from tilefan.errors import ConflictError, JobNotFoundError, RunnerError

REGION = "us-east-1"
MACHINE = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 600, "End": True}}}


@pytest.fixture
def runner(mocked_aws: None, aws_session: Any) -> StepFunctionsRunner:
    client = aws_session.client("stepfunctions")
    arn = client.create_state_machine(
        name="tilefan", definition=json.dumps(MACHINE), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    return StepFunctionsRunner(client, arn, REGION)


def test_start_names_the_execution_after_the_job_and_runs_it_once(runner: StepFunctionsRunner) -> None:
    arn = runner.start("abc123")
    assert arn.endswith(":execution:tilefan:abc123")
    assert runner.start("abc123") == arn  # idempotent while it runs
    runner.stop(arn, cause="cancelled by user")
    with pytest.raises(ConflictError):
        runner.start("abc123")  # refused once finished


def test_describe_and_stop(runner: StepFunctionsRunner) -> None:
    arn = runner.start("j1")
    d = runner.describe(arn)
    assert d["status"] == "RUNNING" and isinstance(d["start_date"], float) and d["stop_date"] is None
    runner.stop(arn, cause="cancelled by user")
    d = runner.describe(arn)
    assert d["status"] == "ABORTED" and isinstance(d["stop_date"], float)
    runner.stop(arn, cause="again")  # stopping a stopped execution is not an error (in moto)


def test_unknown_execution_is_job_not_found(runner: StepFunctionsRunner) -> None:
    missing = runner.state_machine_arn.replace(":stateMachine:", ":execution:") + ":nope"
    with pytest.raises(JobNotFoundError) as info:
        runner.describe(missing)
    assert info.value.job_id == "nope"
    with pytest.raises(JobNotFoundError):
        runner.stop(missing, cause="x")


def test_unknown_state_machine_is_a_runner_error(mocked_aws: None, aws_session: Any) -> None:
    r = StepFunctionsRunner(aws_session.client("stepfunctions"),
                            "arn:aws:states:us-east-1:123456789012:stateMachine:none", REGION)
    with pytest.raises(RunnerError):
        r.start("j")

"""Step Functions calls for the AWS runner: start, describe and stop a job's execution.

Each job runs as one Standard execution named after the job id. Execution names are
unique per state machine for 90 days, so Step Functions itself keeps a job from running
twice: starting it again while it runs (same name, same input) returns the running
execution, as StartExecution is idempotent for Standard workflows; starting it after
it has finished is refused (ConflictError here).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tilefan.adapters.aws.aws_call import call
from tilefan.errors import ConflictError, JobNotFoundError, RunnerError

_NO_EXECUTION = frozenset({"ExecutionDoesNotExist", "ResourceNotFound"})


class StepFunctionsRunner:
    def __init__(self, client: Any, state_machine_arn: str, region: str) -> None:
        self.client = client
        self.state_machine_arn = state_machine_arn
        self.region = region

    def _send(self, op: str, subject: str, **params: Any) -> dict[str, Any]:
        """One request; ``subject`` is the job id or execution the error should name."""
        def special(code: str, response: Mapping[str, Any]) -> Exception | None:
            if code == "ExecutionAlreadyExists":
                return ConflictError(f"job {subject} has already been started")
            if code in _NO_EXECUTION:
                return JobNotFoundError(_job_id(subject))
            return None

        return call(self.client, op, params, failed=f"Step Functions {op} failed for {subject}",
                    fallback=RunnerError, special=special)

    def start(self, job_id: str) -> str:
        """Start the job's execution and return its ARN (the same ARN again while it is
        running); ConflictError once that execution has finished."""
        reply = self._send(
            "start_execution", job_id, stateMachineArn=self.state_machine_arn, name=job_id,
            input=json.dumps({"job_id": job_id}),
        )
        return str(reply["executionArn"])

    def describe(self, execution_arn: str) -> dict[str, Any]:
        """Status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED...), start and stop as
        epoch seconds (stop is None while running), and the error and cause if any."""
        reply = self._send("describe_execution", execution_arn, executionArn=execution_arn)
        return {
            "execution_arn": execution_arn,
            "status": str(reply["status"]),
            "start_date": _epoch(reply.get("startDate")),
            "stop_date": _epoch(reply.get("stopDate")),
            "error": reply.get("error"),
            "cause": reply.get("cause"),
        }

    def stop(self, execution_arn: str, cause: str) -> None:
        self._send("stop_execution", execution_arn, executionArn=execution_arn, cause=cause)

    def console_url(self, execution_arn: str) -> str:
        """Where a person can watch the execution in the AWS console.

        >>> StepFunctionsRunner(None, "", "eu-west-1").console_url("arn:x")
        'https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/arn:x'
        """
        return (
            f"https://{self.region}.console.aws.amazon.com/states/home?region={self.region}"
            f"#/v2/executions/details/{execution_arn}"
        )


def _epoch(value: Any) -> float | None:
    # botocore parses timestamps into aware datetimes; records hold epoch seconds.
    return value.timestamp() if isinstance(value, datetime) else None


def _job_id(subject: str) -> str:
    """The job an execution ARN belongs to: executions are named after their job.

    >>> _job_id("arn:aws:states:us-east-1:123456789012:execution:tilefan:abc123")
    'abc123'
    >>> _job_id("abc123")
    'abc123'
    """
    return subject.rsplit(":", 1)[-1]

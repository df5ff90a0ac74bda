"""JobRunner on AWS: one Step Functions execution per job, named after the job."""

from __future__ import annotations

from typing import Protocol

from tilefan.domain.plan import Plan
from tilefan.pipeline.lifecycle import cancel_job
from tilefan.pipeline.ports import Ports


class Executions(Protocol):
    """What the runner needs of Step Functions (``adapters.aws.sfn_runner`` implements it)."""

    def start(self, job_id: str) -> str: ...

    def stop(self, execution_arn: str, cause: str) -> None: ...

    def console_url(self, execution_arn: str) -> str: ...


def execution_arn(state_machine_arn: str, job_id: str) -> str:
    """The ARN an execution named ``job_id`` gets, known before it starts.

    >>> execution_arn("arn:aws:states:us-east-1:123456789012:stateMachine:tilefan", "abc")
    'arn:aws:states:us-east-1:123456789012:execution:tilefan:abc'
    """
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{job_id}"


class StepFunctionsJobRunner:
    def __init__(self, sfn: Executions, ports: Ports, state_machine_arn: str) -> None:
        self.sfn = sfn
        self.ports = ports
        self.state_machine_arn = state_machine_arn

    def start(self, job_id: str, plan: Plan | None = None) -> None:
        # The state machine's plan Lambda plans in its own process: the plan cannot travel.
        self.sfn.start(job_id)

    def cancel(self, job_id: str) -> bool:
        # Mark first: tiles that are mid-flight then stop recording, and the reducer
        # refuses a job that is not RUNNING; stopping the execution ends the rest.
        changed = cancel_job(self.ports, job_id)
        if changed:
            self.sfn.stop(execution_arn(self.state_machine_arn, job_id), cause="cancelled by user")
        return changed

    def links(self, job_id: str) -> dict[str, str]:
        arn = execution_arn(self.state_machine_arn, job_id)
        return {"execution_arn": arn, "console_url": self.sfn.console_url(arn)}

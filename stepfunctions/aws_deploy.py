"""The AWS calls of ``make deploy`` and ``make destroy``, through boto3 (a dependency already):
no AWS CLI to install.

``Boto3Aws`` makes the calls; ``DryRunAws`` prints each one (``+ aws <service> <operation>
...``) and answers with placeholders, so ``--dry-run`` shows the same plan and needs no
account. Both raise ``DeployError`` (one line, what failed and why) instead of botocore's
exceptions, so ``deploy.py`` never imports botocore.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Protocol

FLEET_TAG = "tilefan:fleet"  # tilefan/adapters/aws/ec2_capacity.py tags each worker with it
# CAPABILITY_IAM: the stack creates roles, none with a fixed name. CAPABILITY_AUTO_EXPAND:
# the template is SAM (a transform), expanded by CloudFormation.
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
# A stack whose creation failed and rolled back cannot be updated, only deleted.
_DEAD = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"}
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_STACK_WAIT = {"Delay": 10, "MaxAttempts": 360}  # an hour: the stack creates ~80 resources


class DeployError(Exception):
    """An AWS call of the deployment failed; the message says which and why."""


class DeployCalls(Protocol):
    """What deploy.py asks of AWS: ``Boto3Aws`` makes the calls, ``DryRunAws`` prints them."""

    region: str

    def upload_file(self, path: Path, bucket: str, key: str) -> None: ...
    def template_url(self, bucket: str, key: str) -> str: ...
    def deploy_stack(self, stack: str, template_url: str, overrides: dict[str, str]) -> bool: ...
    def outputs(self, stack: str) -> dict[str, str]: ...
    def fleet(self, stack: str) -> list[str]: ...
    def terminate(self, ids: list[str]) -> None: ...
    def delete_stack(self, stack: str) -> None: ...
    def delete_bucket(self, bucket: str) -> None: ...


def missing_setup(session: Any, region: str | None) -> str | None:
    """One line naming what a real deployment lacks (credentials, a region), or None."""
    missing = []
    if session.get_credentials() is None:
        missing.append("no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
    if not (region or session.region_name):
        missing.append("no region (REGION=..., or AWS_DEFAULT_REGION)")
    return "deploy: " + " and ".join(missing) if missing else None


class Boto3Aws:
    """The calls, made with one boto3 session's clients (created here, when first used)."""

    def __init__(self, session: Any, region: str | None, clients: dict[str, Any] | None = None) -> None:
        self.region: str = region or session.region_name
        self._session = session
        self._clients: dict[str, Any] = dict(clients or {})  # tests hand in stubbed or moto clients

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, region_name=self.region)
        return self._clients[service]

    def _call(self, service: str, operation: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client(service), operation)(**params)
        except ClientError as exc:
            raise DeployError(f"{service} {operation}: {exc.response['Error'].get('Message', exc)}") from None
        except BotoCoreError as exc:
            raise DeployError(f"{service} {operation}: {exc}") from None

    def _wait(self, service: str, waiter: str, **params: Any) -> str | None:
        """Wait; None when done, else the waiter's reason (the caller says what failed)."""
        from botocore.exceptions import WaiterError

        try:
            self._client(service).get_waiter(waiter).wait(**params)
        except WaiterError as exc:
            return str(exc.last_response.get("StatusReason") or exc)
        return None

    def upload_file(self, path: Path, bucket: str, key: str) -> None:
        from boto3.exceptions import S3UploadFailedError

        try:
            self._client("s3").upload_file(str(path), bucket, key)
        except S3UploadFailedError as exc:
            raise DeployError(f"s3 upload of {path} to s3://{bucket}/{key}: {exc}") from None

    def template_url(self, bucket: str, key: str) -> str:
        return f"https://{bucket}.s3.{self.region}.amazonaws.com/{key}"

    def stack(self, stack: str) -> dict[str, Any] | None:
        """The stack's description, or None when there is none by that name."""
        from botocore.exceptions import ClientError

        try:
            stacks = self._client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc.response["Error"].get("Message", "")):
                return None
            raise DeployError(f"cloudformation describe_stacks: {exc.response['Error'].get('Message')}") from None
        return dict(stacks[0]) if stacks else None

    def deploy_stack(self, stack: str, template_url: str, overrides: dict[str, str]) -> bool:
        """Create or update the stack through a change set; False when nothing changed."""
        found = self.stack(stack)
        status = found["StackStatus"] if found else None
        if status in _DEAD:
            raise DeployError(f"stack {stack} is {status}: run make destroy, then deploy again")
        create = status in (None, "REVIEW_IN_PROGRESS")
        # Parameters not given keep the stack's current values (their defaults on a new stack).
        keep = [] if create or found is None else [
            p["ParameterKey"] for p in found.get("Parameters", []) if p["ParameterKey"] not in overrides]
        parameters: list[dict[str, Any]] = [{"ParameterKey": k, "ParameterValue": v} for k, v in overrides.items()]
        parameters += [{"ParameterKey": k, "UsePreviousValue": True} for k in keep]
        name = f"{stack}-deploy"
        self._call("cloudformation", "create_change_set", StackName=stack, ChangeSetName=name,
                   ChangeSetType="CREATE" if create else "UPDATE", TemplateURL=template_url,
                   Parameters=parameters, Capabilities=CAPABILITIES)
        reason = self._wait("cloudformation", "change_set_create_complete", StackName=stack, ChangeSetName=name)
        if reason is not None:
            described = self._call("cloudformation", "describe_change_set", StackName=stack, ChangeSetName=name)
            why = str(described.get("StatusReason") or reason)
            self._call("cloudformation", "delete_change_set", StackName=stack, ChangeSetName=name)
            if any(text in why for text in _NO_CHANGES):
                return False
            raise DeployError(f"the change set for {stack} failed: {why}")
        self._call("cloudformation", "execute_change_set", StackName=stack, ChangeSetName=name)
        waiter = "stack_create_complete" if create else "stack_update_complete"
        if (reason := self._wait("cloudformation", waiter, StackName=stack, WaiterConfig=_STACK_WAIT)) is not None:
            raise DeployError(f"stack {stack} did not deploy ({reason}); its events say why")
        return True

    def outputs(self, stack: str) -> dict[str, str]:
        found = self.stack(stack)
        return {o["OutputKey"]: o["OutputValue"] for o in (found or {}).get("Outputs", [])}

    def fleet(self, stack: str) -> list[str]:
        """The IDs of the stack's spot workers that are not terminated."""
        filters = [{"Name": f"tag:{FLEET_TAG}", "Values": [stack]},
                   {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
        pages = self._client("ec2").get_paginator("describe_instances").paginate(Filters=filters)
        return [i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]]

    def terminate(self, ids: list[str]) -> None:
        self._call("ec2", "terminate_instances", InstanceIds=ids)

    def delete_stack(self, stack: str) -> None:
        self._call("cloudformation", "delete_stack", StackName=stack)
        if (reason := self._wait("cloudformation", "stack_delete_complete", StackName=stack,
                                 WaiterConfig=_STACK_WAIT)) is not None:
            raise DeployError(f"stack {stack} was not deleted ({reason})")

    def delete_bucket(self, bucket: str) -> None:
        self._call("s3", "delete_bucket", Bucket=bucket)

    def s3(self) -> Any:
        return self._client("s3")


class DryRunAws:
    """Prints each call it is asked for; answers with placeholders (``<JobsBucketName>``)."""

    region = "<region>"

    def __init__(self, region: str | None) -> None:
        if region:
            self.region = region

    def _show(self, service: str, operation: str, *words: str) -> None:
        print("+ " + shlex.join(["aws", service, operation, *words]), flush=True)

    def upload_file(self, path: Path, bucket: str, key: str) -> None:
        self._show("s3", "upload_file", str(path), f"s3://{bucket}/{key}")

    def template_url(self, bucket: str, key: str) -> str:
        return f"https://{bucket}.s3.{self.region}.amazonaws.com/{key}"

    def deploy_stack(self, stack: str, template_url: str, overrides: dict[str, str]) -> bool:
        self._show("cloudformation", "create_change_set", stack, template_url,
                   *(f"{k}={v}" for k, v in overrides.items()), *CAPABILITIES)
        self._show("cloudformation", "execute_change_set", stack)
        return True

    def outputs(self, stack: str) -> dict[str, str]:
        self._show("cloudformation", "describe_stacks", stack)
        return {k: f"<{k}>" for k in ("JobsBucketName", "JobsTableName")}

    def fleet(self, stack: str) -> list[str]:
        self._show("ec2", "describe_instances", f"tag:{FLEET_TAG}={stack}")
        return ["<instance-ids>"]

    def terminate(self, ids: list[str]) -> None:
        self._show("ec2", "terminate_instances", *ids)

    def delete_stack(self, stack: str) -> None:
        self._show("cloudformation", "delete_stack", stack)

    def delete_bucket(self, bucket: str) -> None:
        self._show("s3", "delete_bucket", bucket)

"""An emulated tilefan stack in moto: bucket, table, the four Lambda functions and the
real state machine (stepfunctions/tilefan.asl.json), executed by moto.

moto does not run Lambda code when ``use_docker`` is off; it answers every invoke from
``LambdaSimpleBackend.invoke``. ``aws_stack`` replaces that method so an invoke runs the
function of the same name from ``app.py`` in-process, the way the Lambda runtime would:
a JSON event in, a JSON result or an ``Unhandled`` function error out. ``faults`` lets a
test make a given call fail or block. This reaches into moto's internals, which is why
moto is pinned in pyproject.toml.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "stepfunctions" / "tilefan.asl.json"
REGION = "us-east-1"
BUCKET = "tilefan-e2e-jobs"
TABLE = "tilefan-e2e-jobs"
FUNCTIONS = {"plan": "PlanFunctionArn", "tile": "TileFunctionArn", "reduce": "ReduceFunctionArn",
             "mark_failed": "MarkFailedFunctionArn"}

# (function name, event) → None to run normally, or raise / block inside the "Lambda".
Fault = Callable[[str, dict[str, Any]], None]


@dataclass
class Stack:
    session: Any
    state_machine_arn: str
    env: dict[str, str]
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION)

    def wait_execution(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll the execution named ``job_id`` until it leaves RUNNING."""
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            desc: dict[str, Any] = sfn.describe_execution(executionArn=arn)
            if desc["status"] != "RUNNING":
                return desc
            if time.monotonic() > deadline:
                raise AssertionError(f"execution {job_id} still RUNNING after {timeout}s")
            time.sleep(0.05)


class _Context:
    """The parts of a Lambda context our handlers read."""

    def __init__(self, name: str) -> None:
        self.function_name = f"tilefan-dev-{name}"
        self.aws_request_id = f"req-{threading.get_ident()}-{time.monotonic_ns()}"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{self.function_name}"
        self.memory_limit_in_mb = 10240

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "# code runs in-process in tests\n")
    return buf.getvalue()


@contextmanager
def aws_stack(*, distributed_threshold: int = 256) -> Iterator[Stack]:
    import boto3
    from moto import mock_aws
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.dynamodb.responses import DynamoHandler

    import app as chalice_app
    from chalicelib import lambdas
    from tilefan import bootstrap
    from tilefan.adapters.aws.dynamo_store import create_table
    from tilefan.entrypoints import rest

    env = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
        "TILEFAN_BACKEND": "aws", "TILEFAN_BUCKET": BUCKET, "TILEFAN_TABLE": TABLE,
        "TILEFAN_DISTRIBUTED_THRESHOLD": str(distributed_threshold),
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "tilefan",
    }
    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock.patch.dict(os.environ, env), mock_aws(config=config):
        session = boto3.session.Session(region_name=REGION)
        session.client("s3").create_bucket(Bucket=BUCKET)
        create_table(session.client("dynamodb"), TABLE)
        iam = session.client("iam")
        role = iam.create_role(RoleName="tilefan-e2e", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                   "Principal": {"Service": ["lambda.amazonaws.com",
                                                                             "states.amazonaws.com"]}}]}),
        )["Role"]["Arn"]
        awslambda = session.client("lambda")
        definition = ASL.read_text()
        handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
        for name, placeholder in FUNCTIONS.items():
            fn = awslambda.create_function(
                FunctionName=f"tilefan-dev-{name}", Runtime="python3.11", Role=role, Handler=f"app.{name}",
                Code={"ZipFile": _zip()},
            )
            definition = definition.replace("${" + placeholder + "}", fn["FunctionArn"])
            handlers[f"tilefan-dev-{name}"] = getattr(chalice_app, name)
        sm_arn = session.client("stepfunctions").create_state_machine(
            name="tilefan-e2e", definition=definition, roleArn=role,
        )["stateMachineArn"]
        os.environ["TILEFAN_STATE_MACHINE_ARN"] = sm_arn
        stack = Stack(session=session, state_machine_arn=sm_arn, env={**env, "TILEFAN_STATE_MACHINE_ARN": sm_arn})

        def invoke(self: Any, function_name: str, qualifier: Any, body: Any, headers: Any,
                   response_headers: dict[str, str]) -> bytes:
            name = function_name.rsplit(":", 1)[-1] if function_name.startswith("arn:") else function_name
            event = json.loads(body or "{}")
            short = name.removeprefix("tilefan-dev-")
            stack.calls.append((short, event))
            try:
                for fault in stack.faults:
                    fault(short, event)
                result = handlers[name](event, _Context(short))
                return json.dumps(result).encode()
            except Exception as exc:  # what the Lambda runtime does with an unhandled error
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc),
                                   "stackTrace": []}).encode()

        settings = bootstrap.aws_settings()
        ports = bootstrap.build_aws_ports(settings, session=session)
        lambdas.set_ports(ports, settings)
        rest.set_service_factory(lambda: bootstrap.build_service())
        # Real DynamoDB isolates every request; moto does not (a transaction deep-copies
        # tables other threads are changing). Serve DynamoDB requests one at a time, which
        # still lets an adapter that reads, decides and writes in separate requests race.
        dynamo_lock = threading.Lock()
        call_action = DynamoHandler.call_action

        def one_at_a_time(self: Any) -> Any:
            with dynamo_lock:
                return call_action(self)

        try:
            with mock.patch.object(LambdaSimpleBackend, "invoke", invoke), \
                    mock.patch.object(DynamoHandler, "call_action", one_at_a_time):
                yield stack
        finally:
            lambdas.set_ports(None)
            rest.set_service_factory(None)

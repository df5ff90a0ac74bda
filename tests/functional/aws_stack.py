"""An emulated tilefan stack in moto: bucket, table, the four Lambda functions and the
real state machine (stepfunctions/tilefan.asl.json), executed by moto.

moto does not run Lambda code when ``use_docker`` is off; it answers every invoke from
``LambdaSimpleBackend.invoke``. ``aws_stack`` replaces that method so an invoke runs the
function of the same name from ``app.py`` in-process, the way the Lambda runtime would:
a JSON event in, a JSON result or an ``Unhandled`` function error out. ``faults`` lets a
test make a given call fail or block; ``calls`` and ``returns`` record every invoke as it
starts and as it ends, so a test can wait for the calls in flight to finish. This reaches
into moto's internals, which is why moto is pinned in pyproject.toml.

``aws_api`` is the REST API as ``app.py`` wires it, over the service of the innermost
stack open at the time of each request (built on its first request, as a Lambda
container builds it once), so a test client may be made before the stack is.

A variant of the stack (the spot branch) passes its own functions, state machine
definition and environment to ``aws_stack`` rather than patching this module.
"""

from __future__ import annotations

import functools
import io
import json
import os
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

from tests.helpers import wait_until

if TYPE_CHECKING:
    from chalice import Chalice

    from tilefan.service.jobs import JobService

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "stepfunctions" / "tilefan.asl.json"
REGION = "us-east-1"
BUCKET = "tilefan-e2e-jobs"
TABLE = "tilefan-e2e-jobs"
FUNCTIONS = {"plan": "PlanFunctionArn", "tile": "TileFunctionArn", "reduce": "ReduceFunctionArn",
             "mark_failed": "MarkFailedFunctionArn"}

# (function name, event) → None to run normally, or raise / block inside the "Lambda".
Fault = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Return:
    """One invoke that has ended: its result, or the error the runtime reported."""

    name: str
    event: dict[str, Any]
    result: Any = None
    error: str | None = None


@dataclass
class Stack:
    session: Any
    state_machine_arn: str
    env: dict[str, str]
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # as each invoke starts
    returns: list[Return] = field(default_factory=list)  # as each invoke ends
    faults: list[Fault] = field(default_factory=list)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _service: JobService | None = field(default=None, repr=False)

    def service(self) -> JobService:
        """The REST API's service over this stack, built from its settings on first use."""
        if self._service is None:
            from tilefan import bootstrap

            self._service = bootstrap.build_service()
        return self._service

    def client(self, service: str) -> Any:
        """A client of this stack's session, made once per service."""
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=REGION)
        return self._clients[service]

    def execution_arn(self, job_id: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"

    def wait_execution(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll the execution named ``job_id`` until it leaves RUNNING."""
        sfn = self.client("stepfunctions")

        def ended() -> dict[str, Any] | None:
            desc: dict[str, Any] = sfn.describe_execution(executionArn=self.execution_arn(job_id))
            return desc if desc["status"] != "RUNNING" else None

        return wait_until(ended, f"execution {job_id} to leave RUNNING", timeout)

    def wait_all_returned(self, timeout: float = 60.0) -> list[Return]:
        """Wait until every invoke that has started has also ended; every ``Return`` so far."""
        # list.append is atomic, and an invoke is in ``calls`` before it can be in ``returns``.
        wait_until(lambda: len(self.returns) == len(self.calls), "the invokes in flight to return", timeout)
        return list(self.returns)


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


def with_short_retries(definition: str) -> str:
    """The state machine with every retrier waiting one second before its first retry.

    moto waits out ``IntervalSeconds`` in full; a test of what a retry does need not wait
    the five seconds production allows a failed tile to recover.
    """

    def shorten(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: 1 if k == "IntervalSeconds" else shorten(v) for k, v in node.items()}
        return [shorten(v) for v in node] if isinstance(node, list) else node

    return json.dumps(shorten(json.loads(definition)))


@functools.cache
def shared_session() -> Any:
    """One boto3 session, with fake credentials of its own, for every stack of the run.

    A fresh session re-reads botocore's endpoint and service files (about a tenth of a
    second, and again for each client it makes); moto's request hook does not depend on
    the session, so one serves every ``mock_aws`` context. moto is imported first so the
    hook is in place.
    """
    import boto3
    import moto  # noqa: F401

    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token="testing",
        region_name=REGION,
    )


# The stacks whose context is open, innermost last: the one whose service aws_api serves.
_LIVE: list[Stack] = []


def live_service() -> JobService:
    """The service of the innermost open stack."""
    assert _LIVE, "the REST API was called with no aws_stack open"
    return _LIVE[-1].service()


def aws_api() -> Chalice:
    """The HTTP routes as ``app.py`` wires them on AWS (API Gateway's authorizer in front,
    so every request is admitted), over the innermost open stack's service."""
    from tests.functional.rest_client import rest_app
    from tilefan.bootstrap import api_authorizer

    return rest_app(live_service, authorizer=api_authorizer())


@contextmanager
def aws_stack(
    *, distributed_threshold: int = 256, functions: Mapping[str, str] = FUNCTIONS, definition: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """The stack, live while the context lasts.

    ``functions`` maps each ``app.py`` handler to deploy onto the ASL placeholder that
    receives its ARN; ``definition`` is the ASL text (the real one by default) with any
    other placeholders already filled in; ``env`` is added to the environment the
    handlers and the REST service read their settings from.
    """
    import boto3
    from moto import mock_aws
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.dynamodb.responses import DynamoHandler

    import app as chalice_app
    from chalicelib import lambdas
    from tilefan import bootstrap
    from tilefan.adapters.aws.dynamo_table import create_table

    environment = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
        "TILEFAN_BACKEND": "aws", "TILEFAN_BUCKET": BUCKET, "TILEFAN_TABLE": TABLE,
        "TILEFAN_DISTRIBUTED_THRESHOLD": str(distributed_threshold),
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "tilefan",
        **(env or {}),
    }
    config: Any = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock.patch.dict(os.environ, environment), mock_aws(config=config):
        session = shared_session()
        stack = Stack(session=session, state_machine_arn="", env=environment)
        stack.client("s3").create_bucket(Bucket=BUCKET)
        create_table(stack.client("dynamodb"), TABLE)
        iam = stack.client("iam")
        role = iam.create_role(RoleName="tilefan-e2e", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                   "Principal": {"Service": ["lambda.amazonaws.com",
                                                                             "states.amazonaws.com"]}}]}),
        )["Role"]["Arn"]
        awslambda = stack.client("lambda")
        definition = ASL.read_text() if definition is None else definition
        handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
        for name, placeholder in functions.items():
            fn = awslambda.create_function(
                FunctionName=f"tilefan-dev-{name}", Runtime="python3.13", Role=role, Handler=f"app.{name}",
                Code={"ZipFile": _zip()},
            )
            definition = definition.replace("${" + placeholder + "}", fn["FunctionArn"])
            handlers[f"tilefan-dev-{name}"] = getattr(chalice_app, name)
        definition = definition.replace("${JobsBucketName}", BUCKET)  # the stack's Ref JobsBucket
        sm_arn = stack.client("stepfunctions").create_state_machine(
            name="tilefan-e2e", definition=definition, roleArn=role,
        )["stateMachineArn"]
        os.environ["TILEFAN_STATE_MACHINE_ARN"] = sm_arn
        stack.state_machine_arn = sm_arn
        stack.env = {**environment, "TILEFAN_STATE_MACHINE_ARN": sm_arn}

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
            except Exception as exc:  # what the Lambda runtime does with an unhandled error
                stack.returns.append(Return(short, event, error=f"{type(exc).__name__}: {exc}"))
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc),
                                   "stackTrace": []}).encode()
            stack.returns.append(Return(short, event, result=result))
            return json.dumps(result).encode()

        settings = bootstrap.aws_settings()
        ports = bootstrap.build_aws_ports(settings, session=session)
        lambdas.set_ports(ports, settings)
        _LIVE.append(stack)
        # Real DynamoDB isolates every request; moto does not (a transaction deep-copies
        # tables other threads are changing). Serve DynamoDB requests one at a time, which
        # still lets an adapter that reads, decides and writes in separate requests race.
        dynamo_lock = threading.Lock()
        call_action = DynamoHandler.call_action

        def one_at_a_time(self: Any) -> Any:
            with dynamo_lock:
                return call_action(self)

        # The code under test makes its own boto3 sessions (bootstrap, once per service or
        # capacity step); inside the stack each gets the shared one, already loaded, so the
        # wiring is the real one without half a second of loading per stack.
        try:
            with mock.patch.object(LambdaSimpleBackend, "invoke", invoke), \
                    mock.patch.object(DynamoHandler, "call_action", one_at_a_time), \
                    mock.patch.object(boto3.session, "Session", lambda *args, **kwargs: session):
                yield stack
        finally:
            lambdas.set_ports(None)
            _LIVE.remove(stack)

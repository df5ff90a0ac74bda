"""The emulated stack of ``aws_stack`` plus the spot branch: the spot queue and its
dead-letter queue, a launch template in moto's EC2, the capacity function, spot workers
running in threads, and a fake instance metadata endpoint (IMDSv2) that can announce an
interruption.

Gaps in moto are bridged here, and only here, so that the real ASL runs unchanged:

- moto reports a heartbeat timeout of a callback task as ``States.Timeout``; AWS reports
  ``States.HeartbeatTimeout``, which is what the state machine retries.
- moto retries a ``.waitForTaskToken`` task with the same task token, and the retry sees
  the answer the failed attempt got (so a tile handed back with ``Spot.Interrupted`` fails
  again at the next heartbeat). In AWS every attempt gets a fresh token.
- moto accepts a heartbeat or an answer on a token that has timed out while its execution
  still runs (AWS answers ``TaskTimedOut``), so tests look for stale tokens only once the
  execution has ended, when moto does answer ``InvalidToken``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

from chalicelib import lambdas
from tests.functional import aws_stack as base
from tilefan.adapters.aws.sqs_queue import SqsTileQueue
from tilefan.adapters.aws.task_tokens import TaskTokens
from tilefan.domain import kernels
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.tile import run_tile
from tilefan.runtimes.spot.worker import Worker, WorkerOptions

ACCOUNT = "123456789012"
QUEUE = "tilefan-e2e-spot"
DLQ = "tilefan-e2e-spot-dlq"
QUEUE_URL = f"https://sqs.{base.REGION}.amazonaws.com/{ACCOUNT}/{QUEUE}"
DLQ_URL = f"https://sqs.{base.REGION}.amazonaws.com/{ACCOUNT}/{DLQ}"
FLEET = "tilefan-e2e"

# The spot branch's timings, shortened so a lost worker is noticed within seconds.
SPOT_ENV = {
    "TILEFAN_SPOT_QUEUE_URL": QUEUE_URL,
    "TILEFAN_SPOT_DLQ_URL": DLQ_URL,
    "TILEFAN_SPOT_HEARTBEAT_S": "2",  # a healthy worker beats every 0.67 s; a dead one is noticed in 2 s
    "TILEFAN_SPOT_TIMEOUT_S": "60",
    "TILEFAN_SPOT_FLEET": FLEET,
    "TILEFAN_SPOT_MAX_INSTANCES": "3",
}


# --------------------------------------------------------------------------- fake IMDSv2


class FakeImds:
    """An instance metadata endpoint on localhost, IMDSv2 only: reads without a session
    token get 401, as on an instance that requires IMDSv2."""

    def __init__(self, instance_id: str = "i-0fake0000000000001") -> None:
        self.instance_id = instance_id
        self.token = "fake-imds-token"  # change it to play a restarted service
        self.notice: dict[str, str] | None = None
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: str = "") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                fake.requests.append(("PUT", self.path))
                if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self._send(400)
                    return
                self._send(200, fake.token)

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path))
                if self.headers.get("X-aws-ec2-metadata-token") != fake.token:
                    self._send(401)
                elif self.path == "/latest/meta-data/instance-id":
                    self._send(200, fake.instance_id)
                elif self.path == "/latest/meta-data/spot/instance-action":
                    if fake.notice is None:
                        self._send(404, "Not Found")
                    else:
                        self._send(200, json.dumps(fake.notice))
                else:
                    self._send(404, "Not Found")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def announce(self, action: str = "terminate") -> None:
        """Schedule an interruption two minutes from now, as EC2 would."""
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 120))
        self.notice = {"action": action, "time": at}

    def __enter__(self) -> FakeImds:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class NoNotice:
    """A metadata source for workers whose instance is never interrupted."""

    def spot_notice(self) -> None:
        return None


# --------------------------------------------------------------------------- a worker that can die


class Severable:
    """A boto3 client that stops reaching AWS when severed: a dead instance, as AWS sees it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.severed = threading.Event()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.severed.is_set():
                from botocore.exceptions import EndpointConnectionError

                raise EndpointConnectionError(endpoint_url="https://severed.invalid")
            return attr(*args, **kwargs)

        return call


@dataclass
class WorkerHandle:
    worker: Worker
    thread: threading.Thread
    clients: list[Severable]
    result: list[str] = field(default_factory=list)

    def kill(self) -> None:
        """From now on nothing this worker sends reaches AWS: no heartbeat, no answer."""
        for client in self.clients:
            client.severed.set()

    def stop(self, timeout: float = 10.0) -> None:
        self.worker.stop()
        self.thread.join(timeout)


# --------------------------------------------------------------------------- the stack


@dataclass
class SpotStack:
    stack: base.Stack
    ports: Ports
    launch_template_id: str
    workers: list[WorkerHandle] = field(default_factory=list)
    launch_requests: list[dict[str, Any]] = field(default_factory=list)  # RunInstances parameters

    def client(self, service: str) -> Any:
        return self.stack.client(service)

    def start_worker(
        self, name: str, *, notices: Any = None, atoms_kernel: Callable[..., Any] = kernels.atoms_potential,
        poll_s: float = 0.05, idle_s: float = 120.0, visibility_s: int = 30,
    ) -> WorkerHandle:
        """A worker in a thread, over its own (severable) clients, as on its own instance."""
        sqs, sfn = Severable(self.client("sqs")), Severable(self.client("stepfunctions"))
        ports = self.ports

        def tile_fn(job_id: str, tile_id: int) -> bool:
            return run_tile(ports, job_id, tile_id, worker=name, route="spot", atoms_kernel=atoms_kernel).recorded

        worker = Worker(
            queue=SqsTileQueue(sqs, QUEUE_URL, DLQ_URL), tokens=TaskTokens(sfn), jobs=ports.jobs, tile_fn=tile_fn,
            notices=notices or NoNotice(),
            options=WorkerOptions(name=name, wait_s=1, visibility_s=visibility_s, idle_s=idle_s,
                                  interruption_poll_s=poll_s),
        )
        handle = WorkerHandle(worker=worker, thread=threading.Thread(target=lambda: None), clients=[sqs, sfn])
        handle.thread = threading.Thread(target=lambda: handle.result.append(worker.run()), name=name, daemon=True)
        handle.thread.start()
        self.workers.append(handle)
        return handle

    def queue_counts(self, url: str = QUEUE_URL) -> tuple[int, int]:
        """(visible, in flight) messages."""
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def dead_letters(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        sqs = self.client("sqs")
        while True:
            got = sqs.receive_message(QueueUrl=DLQ_URL, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                      VisibilityTimeout=60).get("Messages", [])
            if not got:
                return out
            out += got


def _heartbeat_timeouts_as_aws_names_them() -> Any:
    """moto maps a callback task's heartbeat timeout to States.Timeout; AWS (and our ASL's
    retrier) call it States.HeartbeatTimeout."""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskTimedOutEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import HeartbeatTimeoutError
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    original = StateTaskServiceCallback._from_error

    def _from_error(self: Any, env: Any, ex: Exception) -> Any:
        if isinstance(ex, HeartbeatTimeoutError):
            name = StatesErrorNameType.StatesHeartbeatTimeout
            return FailureEvent(
                env=env, error_name=StatesErrorName(typ=name), event_type=HistoryEventType.TaskTimedOut,
                # moto declares every detail key required; AWS sends the one that applies.
                event_details=EventDetails(taskTimedOutEventDetails=TaskTimedOutEventDetails(  # type: ignore[typeddict-item]
                    resourceType=self._get_sfn_resource_type(), resource=self._get_sfn_resource(),
                    error=name.to_name(),
                )),
            )
        return original(self, env, ex)

    return mock.patch.object(StateTaskServiceCallback, "_from_error", _from_error)


def _fresh_token_per_attempt() -> Any:
    """Each retry of a callback task waits on a new task token, as in AWS."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )

    original = StateTaskServiceCallback._evaluate_with_timeout

    def _evaluate_with_timeout(self: Any, env: Any) -> Any:
        retrying = env.states.context_object.context_object_data["State"].get("RetryCount", 0) > 0
        if retrying and self.resource.condition == ResourceCondition.WaitForTaskToken:
            env.callback_pool_manager.add(env.states.context_object.update_task_token())
        return original(self, env)

    return mock.patch.object(StateTaskServiceCallback, "_evaluate_with_timeout", _evaluate_with_timeout)


def _definition_with_queue() -> str:
    """The real ASL with the queue's URL in place (moto's URLs are known in advance)."""
    return base.ASL.read_text().replace("${SpotQueueUrl}", QUEUE_URL)


AMI = "ami-12c6146b"
# moto loads hundreds of stock AMIs into each fresh EC2 backend (about a second); an
# instance launches from an unknown AMI just as well.
MOTO_ENV = {"MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}


def _launch_template(ec2: Any) -> str:
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{FLEET}-worker",
        LaunchTemplateData={
            "ImageId": AMI, "InstanceType": "c7i.4xlarge", "InstanceInitiatedShutdownBehavior": "terminate",
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
            "UserData": "IyEvYmluL2Jhc2gKdGlsZWZhbiB3b3JrZXIK",  # "#!/bin/bash\ntilefan worker\n"
        },
    )
    return str(template["LaunchTemplate"]["LaunchTemplateId"])


@contextmanager
def spot_stack(**env: str) -> Iterator[SpotStack]:
    """``aws_stack`` with the spot branch wired: queue, DLQ, capacity function, EC2.

    ``env`` overrides the spot settings (or adds any other setting) for this stack.
    """
    with (
        _heartbeat_timeouts_as_aws_names_them(),
        _fresh_token_per_attempt(),
        base.aws_stack(functions={**base.FUNCTIONS, "capacity": "CapacityFunctionArn"},
                       definition=_definition_with_queue(), env={**SPOT_ENV, **MOTO_ENV, **env}) as stack,
    ):
        sqs = stack.client("sqs")
        dlq_arn = sqs.get_queue_attributes(
            QueueUrl=sqs.create_queue(QueueName=DLQ)["QueueUrl"], AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        url = sqs.create_queue(QueueName=QUEUE, Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        })["QueueUrl"]
        assert url == QUEUE_URL, url
        template_id = _launch_template(stack.client("ec2"))
        settings = lambdas.get_settings()
        ports = lambdas.get_ports()
        lambdas.set_ports(ports, replace(settings, spot=replace(settings.spot, launch_template=template_id)))
        spot = SpotStack(stack=stack, ports=ports, launch_template_id=template_id)
        # moto launches MinCount instances where EC2 launches up to MaxCount: keep the requests.
        lambdas.get_capacity().client.meta.events.register(
            "provide-client-params.ec2.RunInstances", lambda params, **_: spot.launch_requests.append(dict(params))
        )
        try:
            yield spot
        finally:
            for handle in spot.workers:
                handle.kill()
                handle.worker.stop()
            for handle in spot.workers:
                handle.thread.join(10)

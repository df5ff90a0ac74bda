"""The spot adapters against moto (EC2, SQS, Step Functions) and a fake IMDSv2 endpoint:
the launch request, the queue moves, stale task tokens, the interruption notice, and
``tilefan worker`` wired from configuration."""

from __future__ import annotations

import argparse
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from unittest import mock

import pytest

from chalicelib import lambdas
from tests.functional.spot_stack import AMI, MOTO_ENV, FakeImds
from tilefan.adapters.aws.ec2_capacity import Ec2SpotCapacity
from tilefan.adapters.aws.imds import Imds
from tilefan.adapters.aws.sqs_queue import SqsTileQueue
from tilefan.adapters.aws.task_tokens import TaskTokens
from tilefan.bootstrap import AwsSettings, SpotSettings
from tilefan.errors import CapacityError, MetadataError, StaleTaskTokenError
from tilefan.settings import list_policy

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")

POLICY = list_policy()  # the planner's defaults at the list prices
FLEET = "tilefan-test"


@pytest.fixture
def ec2(aws_credentials: None, aws_session: Any) -> Iterator[Any]:
    from moto import mock_aws

    with mock.patch.dict("os.environ", MOTO_ENV), mock_aws():
        yield aws_session.client("ec2")


@pytest.fixture
def template(ec2: Any) -> str:
    """A launch template like the stack's WorkerLaunchTemplate."""
    reply = ec2.create_launch_template(LaunchTemplateName="tilefan-worker", LaunchTemplateData={
        "ImageId": AMI, "InstanceType": "c7i.4xlarge", "InstanceInitiatedShutdownBehavior": "terminate",
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
    })
    return str(reply["LaunchTemplate"]["LaunchTemplateId"])


def recorded_launches(client: Any) -> list[dict[str, Any]]:
    """RunInstances parameters as sent (moto launches MinCount where EC2 launches up to MaxCount)."""
    requests: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        if "LaunchTemplate" in params:  # the capacity step's, not the test's own launches
            requests.append(dict(params))

    client.meta.events.register("provide-client-params.ec2.RunInstances", record)
    return requests


def fleet(ec2: Any) -> list[dict[str, Any]]:
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:tilefan:fleet", "Values": [FLEET]}])["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


@dataclass
class Context:
    aws_request_id: str = "req-1"


@pytest.fixture
def capacity_step(ec2: Any, template: str) -> Iterator[Ec2SpotCapacity]:
    """The capacity Lambda's wiring over moto's EC2, with a stage cap of 3."""
    settings = AwsSettings(bucket="b", table="t", state_machine_arn="", region="us-east-1",
                           spot=SpotSettings(launch_template=template, fleet=FLEET),
                           route_policy=replace(POLICY, spot_max_workers=3))
    capacity = Ec2SpotCapacity(ec2, template, FLEET)
    lambdas.set_ports(mock.Mock(), settings)
    lambdas._capacity = capacity
    try:
        yield capacity
    finally:
        lambdas.set_ports(None)


EVENT = {"job_id": "job1", "execution_id": "arn:aws:states:us-east-1:123456789012:execution:tilefan:job1"}


def test_the_launch_request_asks_for_one_time_spot_imdsv2_and_tags(ec2: Any, capacity_step: Ec2SpotCapacity) -> None:
    requests = recorded_launches(ec2)
    out = lambdas.capacity_handler({**EVENT, "spot_tiles": 2}, Context())
    assert out == {"job_id": "job1", "spot_tiles": 2, "running": 0, "launched": 1}  # moto: MinCount
    [request] = requests
    assert (request["MinCount"], request["MaxCount"]) == (1, 2)
    assert request["InstanceMarketOptions"] == {
        "MarketType": "spot",
        "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
    }
    assert request["MetadataOptions"]["HttpTokens"] == "required"
    assert request["LaunchTemplate"] == {"LaunchTemplateId": capacity_step.launch_template_id, "Version": "$Latest"}
    [instance] = fleet(ec2)
    assert instance["InstanceLifecycle"] == "spot"
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags == {"Name": f"tilefan-worker-{FLEET}", "tilefan:fleet": FLEET, "tilefan:role": "worker",
                    "tilefan:job": "job1", "aws:ec2launchtemplate:id": capacity_step.launch_template_id,
                    "aws:ec2launchtemplate:version": "1"}
    assert {spec["ResourceType"] for spec in request["TagSpecifications"]} == {"instance", "volume"}
    # The template the request names requires IMDSv2 as well.
    version = ec2.describe_launch_template_versions(LaunchTemplateId=capacity_step.launch_template_id)
    assert version["LaunchTemplateVersions"][0]["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"] == "required"


def test_the_stage_cap_counts_workers_already_running(ec2: Any, capacity_step: Ec2SpotCapacity) -> None:
    requests = recorded_launches(ec2)
    assert lambdas.capacity_handler({**EVENT, "spot_tiles": 10}, Context())["running"] == 0
    assert requests[-1]["MaxCount"] == 3  # ten spot tiles, a cap of three
    # Two more workers of this fleet come up (another job's launch, say): 3 are live.
    ec2.run_instances(ImageId=AMI, MinCount=2, MaxCount=2, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "tilefan:fleet", "Value": FLEET}]}])
    assert capacity_step.running() == 3
    out = lambdas.capacity_handler({**EVENT, "job_id": "job2", "spot_tiles": 4}, Context())
    assert out["running"] == 3 and out["launched"] == 0 and len(requests) == 1  # at the cap: no request at all
    # Workers of another stack, and terminated ones, do not count.
    ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "tilefan:fleet", "Value": "another-stage"}]}])
    ec2.terminate_instances(InstanceIds=[fleet(ec2)[0]["InstanceId"]])
    assert capacity_step.running() == 2


def test_workers_launch_in_the_first_subnet_that_has_room(ec2: Any, template: str) -> None:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    requests = recorded_launches(ec2)
    capacity = Ec2SpotCapacity(ec2, template, FLEET, subnets=["subnet-0doesnotexist", subnet])
    assert len(capacity.launch(2, "job1")) == 1
    assert [r.get("SubnetId") for r in requests] == ["subnet-0doesnotexist", subnet]
    assert fleet(ec2)[0]["SubnetId"] == subnet


def test_a_refused_launch_fails_the_step_only_when_no_worker_is_running(
    ec2: Any, capacity_step: Ec2SpotCapacity
) -> None:
    capacity_step.subnets = ("subnet-0doesnotexist",)
    with pytest.raises(CapacityError, match=r"EC2 run_instances failed: InvalidSubnetID\.NotFound"):
        lambdas.capacity_handler({**EVENT, "spot_tiles": 2}, Context())
    ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "tilefan:fleet", "Value": FLEET}]}])
    out = lambdas.capacity_handler({**EVENT, "spot_tiles": 2}, Context())
    assert out == {"job_id": "job1", "spot_tiles": 2, "running": 1, "launched": 0}


# --------------------------------------------------------------------------- queue and tokens


@pytest.fixture
def stepfunctions(aws_credentials: None, aws_session: Any) -> Iterator[Any]:
    """Step Functions as moto runs executions (its plain backend ignores task tokens)."""
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield aws_session.client("stepfunctions")


@pytest.fixture
def queues(mocked_aws: None, aws_session: Any) -> tuple[Any, SqsTileQueue]:
    sqs = aws_session.client("sqs")
    dlq = sqs.create_queue(QueueName="spot-dlq")["QueueUrl"]
    url = sqs.create_queue(QueueName="spot")["QueueUrl"]
    return sqs, SqsTileQueue(sqs, url, dlq)


def test_the_queue_adapter_hides_releases_deletes_and_dead_letters(queues: tuple[Any, SqsTileQueue]) -> None:
    sqs, queue = queues
    assert queue.receive(wait_s=0, visibility_s=30) is None
    sqs.send_message(QueueUrl=queue.queue_url, MessageBody='{"tile_id": 1}')
    message = queue.receive(wait_s=0, visibility_s=30)
    assert message is not None and message.body == '{"tile_id": 1}' and message.receive_count == 1
    assert queue.receive(wait_s=0, visibility_s=30) is None  # hidden while we hold it
    queue.extend(message, 60)
    queue.release(message)
    again = queue.receive(wait_s=0, visibility_s=30)
    assert again is not None and again.message_id == message.message_id and again.receive_count == 2
    queue.dead_letter(again, "malformed message: body: is not JSON", "spot:w1")
    assert queue.receive(wait_s=0, visibility_s=0) is None
    [letter] = sqs.receive_message(QueueUrl=queue.dead_letter_url, MessageAttributeNames=["All"])["Messages"]
    assert letter["Body"] == '{"tile_id": 1}'
    attrs = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert attrs == {"reason": "malformed message: body: is not JSON", "source_message_id": message.message_id,
                     "worker": "spot:w1"}


def test_a_token_step_functions_does_not_know_is_stale(stepfunctions: Any) -> None:
    tokens = TaskTokens(stepfunctions)
    for call in (lambda: tokens.heartbeat("no-such-token"), lambda: tokens.succeed("no-such-token", {}),
                 lambda: tokens.fail("no-such-token", "Spot.Interrupted", json.dumps({"x": 1}))):
        with pytest.raises(StaleTaskTokenError, match="InvalidToken"):
            call()


# --------------------------------------------------------------------------- IMDSv2


def test_imds_reads_the_notice_with_a_session_token() -> None:
    with FakeImds(instance_id="i-0123") as fake:
        imds = Imds(fake.url, timeout_s=2.0)
        assert imds.instance_id() == "i-0123"
        assert imds.spot_notice() is None
        fake.announce("stop")
        notice = imds.spot_notice()
        assert notice is not None and notice.action == "stop" and notice.time.endswith("Z")
        # One token, reused: PUT once, then GETs.
        assert [m for m, _ in fake.requests] == ["PUT", "GET", "GET", "GET"]


def test_imds_renews_a_token_the_service_no_longer_accepts() -> None:
    with FakeImds() as fake:
        imds = Imds(fake.url, timeout_s=2.0)
        assert imds.spot_notice() is None
        fake.token = "rotated"  # the service restarted: the old token now gets 401
        assert imds.spot_notice() is None
        assert [m for m, _ in fake.requests] == ["PUT", "GET", "GET", "PUT", "GET"]


def test_imds_unreachable_is_a_metadata_error_not_a_hang() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(MetadataError, match="unreachable"):
        Imds(f"http://127.0.0.1:{port}", timeout_s=0.5).spot_notice()


# --------------------------------------------------------------------------- tilefan worker


def test_tilefan_worker_wires_itself_from_configuration_and_stops_when_idle(
    mocked_aws: None, aws_session: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tilefan.entrypoints.cli.main import main

    sqs = aws_session.client("sqs")
    with FakeImds(instance_id="i-0worker") as fake:
        for name, value in {
            "TILEFAN_BUCKET": "b", "TILEFAN_TABLE": "t", "TILEFAN_IMDS_URL": fake.url,
            "TILEFAN_SPOT_QUEUE_URL": sqs.create_queue(QueueName="spot")["QueueUrl"],
            "TILEFAN_SPOT_DLQ_URL": sqs.create_queue(QueueName="spot-dlq")["QueueUrl"],
            "TILEFAN_WORKER_WAIT_S": "1", "TILEFAN_KERNEL": "numpy",
        }.items():
            monkeypatch.setenv(name, value)
        with mock.patch("signal.signal"):  # pytest owns the process's signal handlers
            assert main(["worker", "--idle-seconds", "1"]) == 0
    err = capsys.readouterr().err
    assert "tilefan worker spot:i-0worker: idle" in err


def test_tilefan_worker_refuses_to_start_without_its_queue(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from tilefan.entrypoints.cli.worker import cli_main

    monkeypatch.setenv("TILEFAN_BUCKET", "b")
    monkeypatch.setenv("TILEFAN_TABLE", "t")
    monkeypatch.delenv("TILEFAN_SPOT_QUEUE_URL", raising=False)
    assert cli_main(argparse.Namespace(idle_seconds=None, name="w")) == 2
    assert "TILEFAN_SPOT_QUEUE_URL: must be set for tilefan worker" in capsys.readouterr().err

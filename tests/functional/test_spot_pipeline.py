"""The spot branch end to end in moto: REST → the real state machine → a per-tile Choice →
Lambda tiles in-process and spot tiles through SQS with a task token to worker threads →
reduce. Workers die, get interrupted, and still every tile is counted exactly once."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from chalice.test import Client

from tests.functional.aws_stack import aws_api
from tests.functional.identity import ALICE, client_as
from tests.functional.rest_client import submit, wait_job
from tests.functional.spot_stack import DLQ_URL, FLEET, QUEUE_URL, FakeImds, SpotStack, spot_stack
from tests.helpers import argmin_index, brute_force_phi, random_pair, s3_array, wait_until
from tilefan.domain import kernels
from tilefan.domain.randgen import random_atoms
from tilefan.domain.spec.parse import RandomAtoms

TIME_BOUND_S = 30.0

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")


@pytest.fixture
def client() -> Iterator[Client]:
    with client_as(aws_api(), ALICE) as c:  # as API Gateway passes on a SigV4-signed request
        yield c


def report(client: Client, job_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = client.http.get(f"/jobs/{job_id}/report").json_body
    return doc


def history_errors(spot: SpotStack, job_id: str) -> list[str]:
    arn = spot.stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
    events = spot.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
    errors = []
    for event in events:
        for key in ("taskFailedEventDetails", "taskTimedOutEventDetails"):
            if key in event:
                errors.append(str(event[key].get("error")))
    return errors


def gated_kernel(started: threading.Event, gate: threading.Event) -> Callable[..., np.ndarray]:
    """The NumPy atoms kernel, held until ``gate`` opens: a tile that is mid-computation."""

    def kernel(*args: Any) -> np.ndarray:
        started.set()
        gate.wait(60)
        return kernels.atoms_potential(*args)

    return kernel


ATOMS = {"kind": "atoms", "grid": [12, 10, 8], "atoms": {"count": 30, "seed": 4}, "softening": 0.1, "tile": 12,
         "route": "spot"}


def atoms_reference(spec: dict[str, Any]) -> np.ndarray:
    """φ of a random-atoms job on the default grid, by brute force."""
    grid = tuple(spec["grid"])
    atoms = RandomAtoms(count=spec["atoms"]["count"], seed=spec["atoms"]["seed"])
    table = random_atoms(atoms, grid, (0.0, 0.0, 0.0), 1.0)
    return brute_force_phi(table, grid, softening=spec["softening"])[0]


# --------------------------------------------------------------------------- mixed routes


def test_a_job_with_lambda_and_spot_tiles_completes_and_equals_numpy(client: Client) -> None:
    # A Lambda memory budget of about 134 KB: the two full 64x64 tiles (about 171 KB with
    # their panels) go to spot, the thinner edge tiles stay on Lambda.
    with spot_stack(TILEFAN_LAMBDA_MEMORY_MARGIN="0.0000125") as spot:
        spot.start_worker("spot:w1")
        spot.start_worker("spot:w2")
        spec = {"kind": "matmul", "a": {"shape": [150, 90]}, "b": {"shape": [90, 70]}, "seed": 5, "tile": 64,
                "verify": True}
        job_id = submit(client, spec)
        doc = wait_job(client, job_id, TIME_BOUND_S)
        assert doc["status"] == "SUCCEEDED", doc["error"]
        assert doc["progress"]["tiles_done"] == doc["progress"]["tiles_total"] == 6

        a, b = random_pair(5, "float64", (150, 90), (90, 70))
        got = s3_array(spot.client("s3"), doc["result"]["output"])
        np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-12)

        rep = report(client, job_id)
        routes = {t["tile_id"]: t["route"] for t in rep["tiles"]}
        assert routes == {0: "spot", 1: "lambda", 2: "spot", 3: "lambda", 4: "lambda", 5: "lambda"}
        assert rep["summary"]["route_counts"] == rep["summary"]["planned_routes"] == {"lambda": 4, "spot": 2}
        for t in rep["tiles"]:
            assert t["worker"].startswith("spot:w" if t["route"] == "spot" else "lambda:"), t
            assert t["status"] == "done" and t["attempts"] >= 1

        # Capacity: up to one spot worker per spot tile, from the template, tagged.
        assert [c[1]["spot_tiles"] for c in spot.stack.calls if c[0] == "capacity"] == [2]
        [launch] = spot.launch_requests
        assert (launch["MinCount"], launch["MaxCount"]) == (1, 2)
        assert launch["LaunchTemplate"]["LaunchTemplateId"] == spot.launch_template_id
        reservations = spot.client("ec2").describe_instances(
            Filters=[{"Name": "tag:tilefan:fleet", "Values": [FLEET]}])["Reservations"]
        instances = [i for r in reservations for i in r["Instances"]]
        assert instances and all(i["InstanceLifecycle"] == "spot" for i in instances)
        assert {t["Key"]: t["Value"] for t in instances[0]["Tags"]}["tilefan:job"] == job_id
        # Every message was answered and deleted; nothing went to the dead-letter queue.
        assert spot.queue_counts() == (0, 0)
        assert spot.queue_counts(DLQ_URL) == (0, 0)


def test_a_lambda_only_job_launches_no_capacity(client: Client) -> None:
    with spot_stack() as spot:
        job_id = submit(client, {"kind": "add", "a": {"shape": [40, 40]}, "b": {"shape": [40, 40]}, "tile": 20})
        assert wait_job(client, job_id, TIME_BOUND_S)["status"] == "SUCCEEDED"
        assert not [c for c in spot.stack.calls if c[0] == "capacity"]
        assert spot.client("ec2").describe_instances(
            Filters=[{"Name": "tag:tilefan:fleet", "Values": [FLEET]}])["Reservations"] == []


# --------------------------------------------------------------------------- a worker dies


def test_a_worker_killed_mid_tile_times_out_and_another_finishes_the_tile_once(
    client: Client
) -> None:
    started, gate = threading.Event(), threading.Event()
    with spot_stack() as spot:
        try:
            # A long visibility: the dead worker's message must stay hidden for the whole test.
            doomed = spot.start_worker("spot:doomed", atoms_kernel=gated_kernel(started, gate), visibility_s=600)
            spec = {**ATOMS, "tile": [12, 10, 8]}  # one tile, sent to spot
            job_id = submit(client, spec)
            wait_until(started.is_set, "the first worker to start the tile")
            doomed.kill()  # mid-tile: its heartbeats stop, it will never answer
            survivor = spot.start_worker("spot:survivor")
            doc = wait_job(client, job_id, TIME_BOUND_S)
            assert doc["status"] == "SUCCEEDED", doc["error"]
        finally:
            gate.set()  # the dead worker's computation ends; it cannot record the tile again
        assert doc["progress"]["tiles_done"] == 1 and doc["progress"]["units_done"] == 12 * 10 * 8
        assert "States.HeartbeatTimeout" in history_errors(spot, job_id)
        [tile] = report(client, job_id)["tiles"]
        assert tile["status"] == "done" and tile["worker"] == "spot:survivor" and tile["route"] == "spot"
        assert tile["attempts"] >= 2  # started by both (a slow machine may add a retry), recorded once
        phi = atoms_reference(spec)
        assert doc["result"]["min_index"] == argmin_index(phi)
        assert doc["result"]["min_value"] == pytest.approx(float(phi.min()), rel=1e-12)
        # The dead worker's message is not lost: still hidden, it will come back and (its
        # token closed) be dead-lettered by whichever worker receives it.
        assert spot.queue_counts() == (0, 1)
        wait_until(lambda: survivor.worker.stats.outcomes.get("done") == 1, "the survivor's count")
        # Once released, the dead worker's late result changes nothing.
        wait_until(lambda: not doomed.thread.is_alive() or doomed.worker.stats.outcomes.get("released") == 1,
                 "the dead worker's tile to end")
        assert spot.ports.jobs.get_job(job_id).tiles_done == 1


# --------------------------------------------------------------------------- interruption


def test_an_interruption_notice_hands_the_tile_back_and_another_worker_finishes_it(
    client: Client
) -> None:
    started, gate = threading.Event(), threading.Event()
    with spot_stack() as spot, FakeImds() as imds:
        try:
            interrupted = spot.start_worker("spot:interrupted", notices=_imds(imds),
                                            atoms_kernel=gated_kernel(started, gate))
            job_id = submit(client, ATOMS)
            wait_until(started.is_set, "the worker to start the tile")
            t0 = time.monotonic()
            imds.announce()
            # It hands the tile back and exits cleanly, without waiting for the computation.
            interrupted.thread.join(TIME_BOUND_S)
            assert interrupted.result == ["interrupted"]
            assert interrupted.worker.stats.outcomes == {"handed-back": 1}
            assert time.monotonic() - t0 < 5.0, "an interruption must be acted on within seconds"
            spot.start_worker("spot:replacement")
            doc = wait_job(client, job_id, TIME_BOUND_S)
        finally:
            gate.set()
        assert doc["status"] == "SUCCEEDED", doc["error"]
        assert doc["progress"]["tiles_done"] == doc["progress"]["tiles_total"] == 1
        assert "Spot.Interrupted" in history_errors(spot, job_id)
        [tile] = report(client, job_id)["tiles"]
        assert tile["worker"] == "spot:replacement"
        # The handed-back message was deleted (its token is closed); the retry's was answered.
        assert spot.queue_counts() == (0, 0)
        assert spot.dead_letters() == []
        # IMDSv2: a session token first, then every read with it.
        assert imds.requests[0] == ("PUT", "/latest/api/token")
        assert ("GET", "/latest/meta-data/spot/instance-action") in imds.requests


def _beat(sfn: Any, token: str, done: threading.Event) -> None:
    while not done.wait(0.2):
        # Answered already, or not known yet: either way, keep quiet and keep beating.
        with contextlib.suppress(Exception):
            sfn.send_task_heartbeat(taskToken=token)


def _imds(fake: FakeImds) -> Any:
    from tilefan.adapters.aws.imds import Imds

    return Imds(fake.url, timeout_s=1.0)


# --------------------------------------------------------------------------- bad input


def test_messages_with_an_unknown_job_or_a_closed_token_are_dead_lettered(client: Client) -> None:
    with spot_stack() as spot:
        sqs = spot.client("sqs")
        # A spot job whose tile waits on a live token, answered by no worker yet.
        job_id = submit(client, {**ATOMS, "tile": [12, 10, 8]})
        wait_until(lambda: spot.queue_counts()[0] == 1, "the spot tile's message")
        [message] = sqs.receive_message(QueueUrl=QUEUE_URL, MaxNumberOfMessages=1)["Messages"]
        body = json.loads(message["Body"])
        sqs.delete_message(QueueUrl=QUEUE_URL, ReceiptHandle=message["ReceiptHandle"])
        # Keep the token alive meanwhile, however slow this machine: no heartbeat timeout.
        done = threading.Event()
        keep_alive = threading.Thread(target=_beat, args=(spot.client("stepfunctions"), body["task_token"], done))
        keep_alive.start()
        try:
            # The same live token, for a job that does not exist.
            sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps({**body, "job_id": "nosuchjob"}))
            worker = spot.start_worker("spot:w1")
            doc = wait_job(client, job_id, TIME_BOUND_S)
        finally:
            done.set()
            keep_alive.join()
        # The worker failed the task at once (no retry of JobNotFoundError), so the job
        # failed with the cause instead of waiting for its timeout.
        assert doc["status"] == "FAILED" and doc["error"]["code"] == "job_not_found"
        wait_until(lambda: worker.worker.stats.outcomes.get("dead-lettered") == 1, "the dead-lettering")
        # Once the execution is over its token is closed. A message still carrying it...
        assert spot.stack.wait_execution(job_id)["status"] == "FAILED"
        sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=message["Body"])
        wait_until(lambda: worker.worker.stats.outcomes.get("dead-lettered") == 2, "the stale message")
        assert worker.thread.is_alive()
        letters = spot.dead_letters()
        reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in letters)
        assert reasons[0].startswith("bad tile: no job with id 'nosuchjob'")
        assert reasons[1].startswith("expired task token: InvalidToken")
        assert all(m["MessageAttributes"]["worker"]["StringValue"] == "spot:w1" for m in letters)
        assert spot.queue_counts() == (0, 0)

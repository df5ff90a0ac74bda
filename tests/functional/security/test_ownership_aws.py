"""Job ownership through the REST API on AWS (moto), with two IAM callers, Alice and Bob.

Each request reaches the app as API Gateway would pass a SigV4-signed one: with the
signer's ARN in ``requestContext.identity.userArn`` (``tests.functional.identity``).
Alice's jobs are invisible to Bob: every route answers him exactly what it answers for a
job that does not exist (404, never 403), her outputs and uploads are unknown inputs to
him, and his list never shows them. Each caller may have TILEFAN_MAX_CONCURRENT_JOBS jobs
queued or running (2 here); one more is a 429, and a job that ends frees its slot.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from tests.functional.aws_stack import Stack, aws_api, aws_stack
from tests.functional.identity import ALICE, BOB, client_as
from tests.functional.rest_client import JSON, post_job, submit, wait_job
from tests.helpers import wait_until

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")

NOBODYS = "0123456789abcdef"  # a job ID no one has
ADD = {"kind": "add", "a": {"shape": [30, 20]}, "b": {"shape": [30, 20]}, "seed": 2, "tile": 16}
ATOMS = {"kind": "atoms", "grid": 8, "atoms": {"count": 5, "seed": 1}, "tile": 4, "field": True}
# Every route that names a job, and how it is asked.
JOB_ROUTES = [("GET", "/jobs/{}"), ("DELETE", "/jobs/{}"), ("GET", "/jobs/{}/report"),
              ("GET", "/jobs/{}/report/performance.txt"), ("GET", "/jobs/{}/report/logs.csv"),
              ("GET", "/jobs/{}/result"), ("GET", "/jobs/{}/field"), ("GET", "/jobs/{}/slice")]


@pytest.fixture
def stack() -> Iterator[Stack]:
    with aws_stack(env={"TILEFAN_MAX_CONCURRENT_JOBS": "2"}) as s:
        yield s


@pytest.fixture
def alice(stack: Stack) -> Iterator[Client]:
    with client_as(aws_api(), ALICE) as c:
        yield c


@pytest.fixture
def bob(stack: Stack) -> Iterator[Client]:
    with client_as(aws_api(), BOB) as c:
        yield c


def as_missing(response: Any, job_id: str) -> Any:
    """The answer's status and body with ``job_id`` written as NOBODYS."""
    return response.status_code, json.loads(json.dumps(response.json_body).replace(job_id, NOBODYS))


def test_someone_elses_job_is_answered_as_a_missing_one_on_every_route(alice: Client, bob: Client) -> None:
    add, atoms, his = submit(alice, ADD), submit(alice, ATOMS), submit(bob, ADD)
    for client, job_id in ((alice, add), (alice, atoms), (bob, his)):
        assert wait_job(client, job_id)["status"] == "SUCCEEDED"

    # Alice sees her jobs and their outputs.
    doc = alice.http.get(f"/jobs/{add}").json_body
    assert doc["owner"] == ALICE and doc["status"] == "SUCCEEDED"
    assert alice.http.get(f"/jobs/{add}/result").status_code == 307
    assert alice.http.get(f"/jobs/{atoms}/field").status_code == 307
    assert alice.http.get(f"/jobs/{atoms}/slice").status_code == 200
    assert alice.http.get(f"/jobs/{add}/report").status_code == 200
    assert alice.http.get(f"/jobs/{add}/report/performance.txt").status_code == 200

    # Bob gets, on every route, what a job that does not exist gets: a 404.
    for method, path in JOB_ROUTES:
        missing = bob.http.request(method, path.format(NOBODYS))
        assert missing.status_code == 404, (method, path, missing.json_body)
        assert set(missing.json_body) == {"error"} and missing.json_body["error"]["code"] == "job_not_found"
        for job_id in (add, atoms):
            theirs = bob.http.request(method, path.format(job_id))
            assert as_missing(theirs, job_id) == (404, missing.json_body), (method, path)
    assert alice.http.get(f"/jobs/{add}").json_body["status"] == "SUCCEEDED"  # Bob's DELETE changed nothing

    # Each list has its owner's jobs only.
    mine = {j["job_id"] for j in alice.http.get("/jobs").json_body["jobs"]}
    bobs = {j["job_id"] for j in bob.http.get("/jobs").json_body["jobs"]}
    assert (mine, bobs) == ({add, atoms}, {his})
    assert bob.http.get(f"/jobs/{his}").json_body["owner"] == BOB


def test_someone_elses_output_or_upload_is_an_unknown_input(alice: Client, bob: Client) -> None:
    job_id = submit(alice, ADD)
    assert wait_job(alice, job_id)["status"] == "SUCCEEDED"
    hers = {**ADD, "a": {"file": f"jobs/{job_id}/out.npy"}}
    nobodys = {**ADD, "a": {"file": f"jobs/{NOBODYS}/out.npy"}}
    refused = post_job(bob, hers)
    assert as_missing(refused, job_id) == (400, post_job(bob, nobodys).json_body)
    assert refused.json_body["error"]["field"] == "a.file"
    # Its owner may use it.
    assert wait_job(alice, submit(alice, hers))["status"] == "SUCCEEDED"

    upload = alice.http.post("/uploads", headers=JSON, body=json.dumps({"filename": "A.npy"})).json_body
    never = upload["key"].replace(upload["upload_id"], NOBODYS)
    taken = post_job(bob, {**ADD, "a": {"file": upload["key"]}})
    assert as_missing(taken, upload["upload_id"]) == (400, post_job(bob, {**ADD, "a": {"file": never}}).json_body)
    assert taken.json_body["error"]["message"].startswith("unknown upload")


def test_the_cap_on_jobs_at_once_is_per_caller_and_frees_up_as_jobs_end(stack: Stack, alice: Client,
                                                                         bob: Client) -> None:
    started, release = threading.Event(), threading.Event()

    def hold(name: str, event: dict[str, Any]) -> None:
        if name == "tile":
            started.set()
            assert release.wait(30)

    stack.faults.append(hold)
    try:
        first, second = submit(alice, ADD), submit(alice, ADD)
        assert started.wait(30)
        refused = post_job(alice, ADD)
        assert refused.status_code == 429
        error = refused.json_body["error"]
        assert error["code"] == "too_many_jobs"
        assert "at most 2 queued or running" in error["message"] and "TILEFAN_MAX_CONCURRENT_JOBS" in error["message"]
        theirs = submit(bob, ADD)  # Bob's slots are his own
        assert bob.http.delete(f"/jobs/{first}").status_code == 404  # nor can he end Alice's jobs
        assert alice.http.get(f"/jobs/{first}").json_body["status"] in ("QUEUED", "RUNNING")
    finally:
        release.set()
    for client, job_id in ((alice, first), (alice, second), (bob, theirs)):
        assert wait_job(client, job_id)["status"] == "SUCCEEDED"
    # Both of Alice's slots are free again.
    again = [submit(alice, ADD), submit(alice, ADD)]
    for job_id in again:
        assert wait_job(alice, job_id)["status"] == "SUCCEEDED"
    wait_until(lambda: len(stack.returns) == len(stack.calls), "the invokes in flight to return")

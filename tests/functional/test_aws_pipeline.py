"""The AWS path end to end in moto: REST (chalice.test.Client) → Step Functions running the
real ASL → Lambda handlers in-process → S3 and DynamoDB, compared with the embedded
backend and with NumPy."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chalice.test import Client

from tests.functional.aws_stack import ASL, BUCKET, Stack, aws_stack, with_short_retries
from tests.functional.rest_client import JSON, post_job, wait_job
from tests.helpers import argmin_index, brute_force_phi, normal_pair, npy_bytes, random_pair, s3_array, wait_until
from tilefan.bootstrap import embedded_ports
from tilefan.compute.kernel_choice import choose_atoms_kernel
from tilefan.domain.randgen import random_atoms
from tilefan.domain.spec.parse import RandomAtoms
from tilefan.errors import StoreError, TileFailedError
from tilefan.pipeline.plan import plan_job
from tilefan.pipeline.reduce import reduce_job
from tilefan.pipeline.submit import submit_job
from tilefan.pipeline.tile import run_tile


def embedded_result(tmp_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """The same spec on the embedded backend, in-process, with the atoms kernel both
    backends choose (the tile Lambda and the embedded scheduler alike: ``auto``). Equal to
    the bit on one CPU, the same build level of the same kernel; NumPy's kernel, or the C
    kernel's AVX-512 build on another CPU, agrees within ``atoms_rtol`` instead (the
    brute-force check below, and ``tests/unit/test_kernels.py``)."""
    ports = embedded_ports(tmp_path / "embedded")
    record = submit_job(ports, spec)
    the_plan = plan_job(ports, record.job_id)
    for t in the_plan.tiles:
        run_tile(ports, record.job_id, t.tile_id, atoms_kernel=choose_atoms_kernel("auto"))
    result = reduce_job(ports, record.job_id).result
    assert result is not None
    return result


def test_matmul_on_aws_equals_embedded_and_numpy(stack: Stack, client: Client, tmp_path: Path) -> None:
    spec = {"kind": "matmul", "a": {"shape": [150, 90]}, "b": {"shape": [90, 70]}, "seed": 5, "tile": 64,
            "verify": True}
    response = post_job(client, spec)
    assert response.status_code == 202
    accepted = response.json_body
    assert accepted["status"] in ("QUEUED", "RUNNING")
    assert accepted["links"]["execution_arn"].endswith(f":execution:tilefan-e2e:{accepted['job_id']}")
    assert "console.aws.amazon.com/states" in accepted["links"]["console_url"]
    doc = wait_job(client, accepted["job_id"])
    assert doc["status"] == "SUCCEEDED", doc["error"]
    assert doc["progress"]["tiles_done"] == doc["progress"]["tiles_total"] == 6
    assert doc["progress"]["percent"] == 100.0
    assert doc["result"]["verification"]["passed"] is True
    got = s3_array(stack.client("s3"), doc["result"]["output"])
    a, b = random_pair(5, "float64", (150, 90), (90, 70))
    np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-12)
    local = embedded_result(tmp_path, spec)
    assert np.array_equal(got, np.load(local["output"]))
    assert doc["result"]["checksums"] == local["checksums"]
    assert stack.wait_execution(accepted["job_id"])["status"] == "SUCCEEDED"
    # Nothing but the committed output is left of the tile parts.
    keys = [o["Key"] for o in stack.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert not [k for k in keys if "/parts/" in k]


def test_add_from_uploaded_files_on_aws(stack: Stack, client: Client, tmp_path: Path) -> None:
    a, b = normal_pair(1, (70, 50), (70, 50), "float32", "float32")
    keys = {}
    for name, arr in (("A.npy", a), ("B.npy", b)):
        up = client.http.post("/uploads", headers=JSON, body=json.dumps({"filename": name}))
        assert up.status_code == 201
        target = up.json_body
        assert target["key"].startswith("uploads/") and target["url"].startswith("https://")
        # The client would POST the presigned form; here the bytes go to the same key.
        stack.client("s3").put_object(Bucket=BUCKET, Key=target["key"], Body=npy_bytes(arr))
        assert client.http.post(target["complete"]).json_body["status"] == "COMPLETE"
        keys[name] = target["key"]
    spec = {"kind": "add", "a": {"file": keys["A.npy"]}, "b": {"file": keys["B.npy"]}, "tile": 32, "verify": True}
    doc = wait_job(client, post_job(client, spec).json_body["job_id"])
    assert doc["status"] == "SUCCEEDED", doc["error"]
    got = s3_array(stack.client("s3"), doc["result"]["output"])
    assert got.dtype == np.float32
    assert np.array_equal(got, a + b)
    assert doc["result"]["verification"] == {"method": "exact", "passed": True, "mismatches": 0}


def test_atoms_on_aws_equals_embedded(stack: Stack, client: Client, tmp_path: Path) -> None:
    spec = {"kind": "atoms", "grid": [10, 9, 8], "atoms": {"count": 40, "seed": 2}, "tile": 4, "verify": True,
            "softening": 0.1}
    doc = wait_job(client, post_job(client, spec).json_body["job_id"])
    assert doc["status"] == "SUCCEEDED", doc["error"]
    local = embedded_result(tmp_path, spec)
    for field in ("min_value", "min_index", "min_point"):
        assert doc["result"][field] == local[field]
    table = random_atoms(RandomAtoms(count=40, seed=2), (10, 9, 8), (0.0, 0.0, 0.0), 1.0)
    phi, _ = brute_force_phi(table, (10, 9, 8), softening=0.1)
    assert doc["result"]["min_index"] == argmin_index(phi)
    assert doc["result"]["min_value"] == pytest.approx(float(phi.min()), rel=1e-12)


def test_a_tile_that_fails_once_is_retried_and_counted_once(client: Client) -> None:
    failed: list[int] = []

    def flaky(name: str, event: dict[str, Any]) -> None:
        if name == "tile" and event["tile_id"] == 1 and not failed:
            failed.append(1)
            raise StoreError("injected: S3 briefly unavailable")

    with aws_stack(definition=with_short_retries(ASL.read_text())) as stack:
        stack.faults.append(flaky)
        spec = {"kind": "add", "a": {"shape": [40, 40]}, "b": {"shape": [40, 40]}, "tile": 20}
        doc = wait_job(client, post_job(client, spec).json_body["job_id"])
        assert doc["status"] == "SUCCEEDED", doc["error"]
        assert failed == [1]
        assert [e["tile_id"] for n, e in stack.calls if n == "tile"].count(1) == 2
        assert doc["progress"]["tiles_done"] == 4 and doc["progress"]["units_done"] == 1600
        report = client.http.get(f"/jobs/{doc['job_id']}/report").json_body
        assert report["summary"]["tiles_done"] == 4
        assert {t["tile_id"]: t["status"] for t in report["tiles"]} == {0: "done", 1: "done", 2: "done", 3: "done"}
        assert all(t["route"] == "lambda" and t["worker"].startswith("lambda:") for t in report["tiles"])


def test_a_tile_that_always_fails_fails_the_job_naming_the_tile(stack: Stack, client: Client) -> None:
    def broken(name: str, event: dict[str, Any]) -> None:
        if name == "tile" and event["tile_id"] == 2:
            raise TileFailedError(2, "injected: kernel crashed")

    stack.faults.append(broken)
    spec = {"kind": "matmul", "a": {"shape": [40, 30]}, "b": {"shape": [30, 40]}, "tile": 20}
    doc = wait_job(client, post_job(client, spec).json_body["job_id"])
    assert doc["status"] == "FAILED"
    assert doc["error"]["code"] == "tile_failed"
    assert doc["error"]["tile_id"] == 2
    assert "injected: kernel crashed" in doc["error"]["message"]
    assert stack.wait_execution(doc["job_id"])["status"] == "FAILED"
    keys = [o["Key"] for o in stack.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert not [k for k in keys if k.endswith("/out.npy") or "/parts/" in k]


def test_cancel_stops_the_execution(stack: Stack, client: Client) -> None:
    release = threading.Event()

    def slow(name: str, event: dict[str, Any]) -> None:
        if name == "tile":
            release.wait(20)

    stack.faults.append(slow)
    spec = {"kind": "add", "a": {"shape": [40, 40]}, "b": {"shape": [40, 40]}, "tile": 20}
    job_id = post_job(client, spec).json_body["job_id"]
    # Cancel once tiles are in flight (a stop that lands between states trips moto up).
    wait_until(lambda: any(name == "tile" for name, _ in stack.calls), "a tile call to start")
    assert client.http.get(f"/jobs/{job_id}").json_body["status"] == "RUNNING"
    response = client.http.delete(f"/jobs/{job_id}")
    assert response.status_code == 200
    assert response.json_body["status"] == "CANCELLED"
    arn = stack.execution_arn(job_id)
    release.set()
    end = stack.wait_execution(job_id)
    events = [e["type"] for e in stack.client("stepfunctions").get_execution_history(executionArn=arn)["events"]]
    # Real Step Functions reports ABORTED. moto 5.2.5 sometimes trips over its own abort
    # inside an inline Map and reports FAILED; that is accepted only when the history
    # shows the stop reached the map (aborted iterations).
    if end["status"] != "ABORTED":
        assert end["status"] == "FAILED" and "MapIterationAborted" in events, (end["status"], events)
    assert not [name for name, _ in stack.calls if name == "reduce"]
    # The tiles that were in flight at the DELETE now run to the end; none may count.
    tiles = [r for r in stack.wait_all_returned() if r.name == "tile"]
    assert tiles, "no tile call ran to the end"
    assert [(r.error, r.result["recorded"]) for r in tiles] == [(None, False)] * len(tiles)
    doc = client.http.get(f"/jobs/{job_id}").json_body
    assert doc["status"] == "CANCELLED"
    assert doc["progress"]["tiles_done"] == 0
    again = client.http.delete(f"/jobs/{job_id}")
    assert again.status_code == 409


def test_distributed_map_path_runs_and_succeeds(client: Client) -> None:
    with aws_stack(distributed_threshold=2) as stack:
        spec = {"kind": "matmul", "a": {"shape": [60, 40]}, "b": {"shape": [40, 60]}, "seed": 9, "tile": 20}
        doc = wait_job(client, post_job(client, spec).json_body["job_id"])
        assert doc["status"] == "SUCCEEDED", doc["error"]
        tiles_run = {e["tile_id"] for n, e in stack.calls if n == "tile"}
        assert tiles_run == set(range(9))
        assert doc["progress"]["tiles_done"] == 9
        got = s3_array(stack.client("s3"), doc["result"]["output"])
        a, b = random_pair(9, "float64", (60, 40), (40, 60))
        np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-12)
        # The map's results went to S3 (ResultWriter), not into the state.
        listed = stack.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="map-results/")
        keys = [o["Key"] for o in listed.get("Contents", [])]
        assert len(keys) == 1 and keys[0].endswith("/manifest.json"), keys


def test_reducer_catches_a_missing_tile_that_the_distributed_map_hides(client: Client) -> None:
    with aws_stack(distributed_threshold=2) as stack:
        def lost(name: str, event: dict[str, Any]) -> None:
            if name == "tile" and event["tile_id"] == 4:
                raise TileFailedError(4, "injected: lost")

        stack.faults.append(lost)
        spec = {"kind": "add", "a": {"shape": [60, 60]}, "b": {"shape": [60, 60]}, "tile": 20}
        doc = wait_job(client, post_job(client, spec).json_body["job_id"])
        # moto's Distributed Map reports SUCCEEDED despite the failed child,
        # so it is the reducer's own completeness check that must fail the job.
        assert [name for name, _ in stack.calls].count("reduce") >= 1
        assert doc["status"] == "FAILED"
        assert doc["error"]["code"] == "incomplete_job"
        assert doc["error"]["message"].endswith("1 tile(s) not recorded done (4)")
        assert doc["progress"]["tiles_done"] == 8
        keys = [o["Key"] for o in stack.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        assert not [k for k in keys if k.endswith("/out.npy")]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kind": "matmul", "a": {"shape": [3, 4]}, "b": {"shape": [5, 6]}}, "b.shape"),
        ({"kind": "cube"}, "kind"),
        ({"kind": "atoms", "grid": 0, "atoms": 5}, "grid"),
        ({"kind": "add", "a": {"file": "uploads/none/A.npy"}, "b": {"shape": [2, 2]}}, "a.file"),
    ],
)
def test_bad_requests_get_400_and_create_nothing(stack: Stack, client: Client, body: Any, field: str) -> None:
    response = post_job(client, body)
    assert response.status_code == 400
    assert response.json_body["error"]["field"] == field
    assert response.json_body["error"]["code"] == "invalid_input"
    assert client.http.get("/jobs").json_body["jobs"] == []
    sfn = stack.client("stepfunctions")
    assert sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"] == []


def test_malformed_and_oversized_bodies(stack: Stack, client: Client) -> None:
    assert client.http.post("/jobs", headers=JSON, body="{not json").status_code == 400
    huge = json.dumps({"kind": "add", "pad": "x" * 70_000})
    response = client.http.post("/jobs", headers=JSON, body=huge)
    assert response.status_code == 413
    assert response.json_body["error"]["code"] == "body_too_large"
    assert client.http.get("/jobs/doesnotexist").status_code == 404
    assert client.http.get("/jobs?limit=0").status_code == 400

"""Zarr through the REST API on the AWS stack (moto: API, Step Functions, Lambda handlers,
S3, DynamoDB): a Zarr result written one chunk per tile with no assembly, used as the next
job's input, and refused where it cannot be served as one file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr
from chalice.test import Client

from chalicelib import lambdas
from tests.functional.aws_stack import BUCKET, Stack
from tests.functional.rest_client import post_job, wait_job
from tests.functional.test_zarr_s3 import get_tree
from tests.helpers import random_pair


def _all_requests(client: Any) -> tuple[list[str], Any]:
    made: list[str] = []

    def note(model: Any, **_: Any) -> None:
        made.append(model.name)

    client.meta.events.register("before-call.s3", note)
    return made, note


def test_a_zarr_result_is_one_chunk_per_tile_and_feeds_the_next_job(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    s3 = lambdas.get_ports().blobs.client  # type: ignore[attr-defined]
    made, note = _all_requests(s3)
    try:
        spec = {"kind": "matmul", "a": {"shape": [150, 90]}, "b": {"shape": [90, 70]}, "seed": 5, "tile": 64,
                "verify": True, "out_format": "zarr"}
        response = post_job(client, spec)
        assert response.status_code == 202, response.json_body
        job_id = response.json_body["job_id"]
        doc = wait_job(client, job_id)
    finally:
        s3.meta.events.unregister("before-call.s3", note)
    assert doc["status"] == "SUCCEEDED", doc["error"]
    assert doc["result"]["output"] == f"s3://{BUCKET}/jobs/{job_id}/out.zarr"
    assert doc["result"]["verification"]["passed"] is True
    # No multipart upload, no server-side copy: the tiles' chunks are the output.
    assert not {"CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CopyObject"} & set(made)
    s3c = stack.client("s3")
    chunks = [o["Key"] for o in s3c.list_objects_v2(Bucket=BUCKET, Prefix=f"jobs/{job_id}/out.zarr/c/")["Contents"]]
    assert len(chunks) == doc["progress"]["tiles_total"] == 6
    got = zarr.open_array(store=str(get_tree(s3c, f"jobs/{job_id}/out.zarr", tmp_path / "out.zarr", BUCKET)), mode="r")
    a, b = random_pair(5, "float64", (150, 90), (90, 70))
    np.testing.assert_allclose(got[:], a @ b, rtol=1e-12, atol=1e-12)

    # The Zarr result cannot be downloaded as one file; it is named as the next job's input.
    refused = client.http.get(f"/jobs/{job_id}/result")
    assert refused.status_code == 404 and "Zarr" in refused.json_body["error"]["message"]
    nxt = post_job(client, {"kind": "add", "a": {"file": f"jobs/{job_id}/out.zarr"},
                            "b": {"file": f"jobs/{job_id}/out.zarr"}, "tile": [50, 70]})
    assert nxt.status_code == 202, nxt.json_body
    second = wait_job(client, nxt.json_body["job_id"])
    assert second["status"] == "SUCCEEDED", second["error"]
    body = s3c.get_object(Bucket=BUCKET, Key=f"jobs/{second['job_id']}/out.npy")["Body"].read()
    (tmp_path / "sum.npy").write_bytes(body)
    np.testing.assert_array_equal(np.load(tmp_path / "sum.npy"), 2 * got[:])


def test_an_unknown_out_format_is_refused_naming_it(stack: Stack, client: Client) -> None:
    response = post_job(client, {"kind": "add", "a": {"shape": [4, 4]}, "b": {"shape": [4, 4]},
                                 "out_format": "hdf5"})
    assert response.status_code == 400
    assert response.json_body["error"]["field"] == "out_format"
    assert stack.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="jobs/").get("KeyCount", 0) == 0

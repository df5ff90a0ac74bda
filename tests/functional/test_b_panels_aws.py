"""B staged as column panels on the AWS path end to end in moto: REST → Step Functions
running the real ASL → the plan Lambda staging B's pieces → tile Lambdas reading them →
the reducer dropping them, with the answer NumPy's and the embedded backend's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from chalice.test import Client

from tests.functional.aws_stack import BUCKET, Stack
from tests.functional.rest_client import JSON, post_job, wait_job
from tests.functional.test_aws_pipeline import embedded_result
from tests.helpers import normal_pair, npy_bytes, s3_array, wait_until


def upload(stack: Stack, client: Client, name: str, array: np.ndarray) -> str:
    """``array`` as a completed upload; its key."""
    up = client.http.post("/uploads", headers=JSON, body=json.dumps({"filename": name}))
    assert up.status_code == 201
    target = up.json_body
    stack.client("s3").put_object(Bucket=BUCKET, Key=target["key"], Body=npy_bytes(array))
    assert client.http.post(target["complete"]).json_body["status"] == "COMPLETE"
    return str(target["key"])


def test_a_matmul_of_uploads_stages_b_once_and_gives_the_embedded_answer(
    stack: Stack, client: Client, tmp_path: Path,
) -> None:
    a, b = normal_pair(3, (70, 50), (50, 60))
    s3 = stack.client("s3")
    # Local copies for the embedded run of the same spec.
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    keys = {name: upload(stack, client, f"{name}.npy", arr) for name, arr in (("A", a), ("B", b))}
    spec = {"kind": "matmul", "a": {"file": keys["A"]}, "b": {"file": keys["B"]}, "tile": 16}  # 5 × 4 tiles
    job_id = post_job(client, spec).json_body["job_id"]
    doc = wait_job(client, job_id)
    assert doc["status"] == "SUCCEEDED", doc["error"]
    got = s3_array(s3, doc["result"]["output"])
    np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-12 * 50)

    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"jobs/{job_id}/manifest.json")["Body"].read())
    assert manifest["b_panels"]["staged"] is True and manifest["b_panels"]["panels"] == 4
    assert manifest["tiles"][0]["bytes_in"] == (16 * 50 + 50 * 16) * 8  # its A and B panels, not B's rows
    def keys_left() -> list[str]:
        return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"jobs/{job_id}/").get("Contents", [])]

    # The reducer drops the pieces right after recording SUCCEEDED, so a fast poll can see
    # the job end a moment before they go.
    wait_until(lambda: not [k for k in keys_left() if "/b-panels/" in k] or None, "the pieces deleted", timeout=30)
    assert keys_left()  # the job's own objects stay

    local = embedded_result(tmp_path, {**spec, "a": {"file": str(tmp_path / "A.npy")},
                                       "b": {"file": str(tmp_path / "B.npy")}})
    assert np.array_equal(got, np.load(local["output"]))

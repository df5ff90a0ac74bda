"""Data by ID on AWS (moto): uploads are presigned POSTs with a length cap, callers cannot
name keys such as ``worker/``, and a result is a redirect to a presigned GET."""

from __future__ import annotations

import base64
import io
import json
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from chalice.test import Client

from tests.functional.aws_stack import BUCKET, Stack, aws_api, aws_stack
from tests.functional.identity import ALICE, client_as
from tests.functional.rest_client import JSON, post_job, wait_job
from tests.helpers import npy_bytes, random_pair


@pytest.fixture
def stack() -> Any:
    with aws_stack() as s:
        yield s


@pytest.fixture
def client() -> Any:
    with client_as(aws_api(), ALICE) as c:  # as API Gateway passes on a SigV4-signed request
        yield c


def test_an_upload_is_a_presigned_post_capped_in_length(stack: Stack, client: Client) -> None:
    target = client.http.post("/uploads", headers=JSON, body=json.dumps({"filename": "A.npy"})).json_body
    assert target["method"] == "POST" and target["url"].startswith("https://")
    policy = json.loads(base64.b64decode(target["fields"]["policy"]))
    assert ["content-length-range", 1, target["max_bytes"]] in policy["conditions"]
    assert target["fields"]["key"].endswith(target["key"])


@pytest.mark.parametrize("key", ["worker/tilefan.whl", "uploads/0123456789abcdef/A.npy",
                                 "jobs/0123456789abcdef/out.npy", "s3://other-bucket/A.npy"])
def test_a_caller_cannot_name_a_bucket_key(stack: Stack, client: Client, key: str) -> None:
    stack.client("s3").put_object(Bucket=BUCKET, Key=key.replace("s3://other-bucket/", ""),
                                  Body=npy_bytes(np.ones((2, 2))))
    response = post_job(client, {"kind": "add", "a": {"file": key}, "b": {"shape": [2, 2]}})
    assert response.status_code == 400, response.json_body
    assert response.json_body["error"]["field"] == "a.file"
    for name in ("out", "field_out"):
        body = {"kind": "add", "a": {"shape": [2, 2]}, "b": {"shape": [2, 2]}, name: "worker/x.npy"}
        if name == "field_out":
            body = {"kind": "atoms", "grid": 4, "atoms": 3, name: "worker/x.npy"}
        refused = post_job(client, body)
        assert refused.status_code == 400 and refused.json_body["error"]["field"] == name


def test_the_result_is_a_redirect_to_a_presigned_get(stack: Stack, client: Client) -> None:
    spec = {"kind": "add", "a": {"shape": [30, 20]}, "b": {"shape": [30, 20]}, "seed": 2, "tile": 16}
    doc = wait_job(client, post_job(client, spec).json_body["job_id"])
    assert doc["status"] == "SUCCEEDED", doc["error"]
    response = client.http.get(f"/jobs/{doc['job_id']}/result")
    assert response.status_code == 307
    url = urlparse(response.headers["Location"])
    key = f"jobs/{doc['job_id']}/out.npy"
    assert (url.scheme, url.netloc, url.path) == ("https", f"{BUCKET}.s3.amazonaws.com", f"/{key}")
    query = parse_qs(url.query)
    assert query["X-Amz-Expires"] == ["300"] and query["X-Amz-Signature"]
    # The presigned key holds the job's answer.
    a, b = random_pair(2, "float64", (30, 20), (30, 20))
    got = np.load(io.BytesIO(stack.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()))
    np.testing.assert_array_equal(got, a + b)

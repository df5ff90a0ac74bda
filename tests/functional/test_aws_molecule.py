"""A molecule on the AWS path in moto: a PQR upload in S3, the grid around it, tiles in the
Lambda handlers, and the field as .mrc and .dx maps from ``GET /jobs/{id}/field?format=``
(converted in the API function) and from the streamed .npy (converted by the client)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from chalice.test import Client

from tests.functional.aws_stack import BUCKET, Stack
from tests.functional.rest_client import JSON, post_job, wait_job
from tests.helpers import s3_array
from tests.molecule_maps import adk_path, assert_adk_map
from tilefan.adapters.maps import write_map


def test_adk_on_aws_gives_the_same_maps(stack: Stack, client: Client, tmp_path: Path) -> None:
    up = client.http.post("/uploads", headers=JSON, body=json.dumps({"filename": "adk_open.pqr"})).json_body
    # The client would POST the presigned form; here the bytes go to the same key.
    stack.client("s3").put_object(Bucket=BUCKET, Key=up["key"], Body=adk_path().read_bytes())
    assert client.http.post(up["complete"]).json_body["status"] == "COMPLETE"
    spec = {"kind": "atoms", "atoms": {"file": up["key"]}, "around": {"margin": 8}, "spacing": 1, "field": True,
            "tile": 32}
    doc = wait_job(client, post_job(client, spec).json_body["job_id"], timeout=600)
    assert doc["status"] == "SUCCEEDED", doc["error"]
    for fmt in ("mrc", "dx"):
        response = client.http.get(f"/jobs/{doc['job_id']}/field?format={fmt}",
                                   headers={"Accept": "application/octet-stream"})
        assert response.status_code == 200, response.body
        path = tmp_path / f"adk.{fmt}"
        path.write_bytes(response.body)
        assert_adk_map(path, doc["result"])
    # Without a format the .npy comes by a presigned redirect, and the client converts it.
    response = client.http.get(f"/jobs/{doc['job_id']}/field")
    assert response.status_code == 307
    field = s3_array(stack.client("s3"), doc["result"]["field"])
    spec_doc = doc["spec"]
    write_map(tmp_path / "client.mrc", field, tuple(spec_doc["origin"]), spec_doc["spacing"])
    assert_adk_map(tmp_path / "client.mrc", doc["result"])
    assert np.array_equal(field.shape, spec_doc["grid"])

"""Bad requests get 400 (or 413) naming the field and write nothing; uploads round-trip
and can be used by a job; ``/openapi.json`` describes every route that is served.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chalice.test import Client

import app as chalice_app
from tests.functional.rest_client import JSON, post_job, submit, wait_job
from tests.functional.rest_embedded.support import (
    RECORD_KEYS,
    assert_finished,
    files_under,
)
from tests.helpers import normal_pair, npy_bytes

# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kind": "matmul", "a": {"shape": [3, 4]}, "b": {"shape": [5, 6]}}, "b.shape"),
        ({"kind": "add", "a": {"shape": [3, 4]}, "b": {"shape": [4, 3]}}, "b.shape"),
        ({"kind": "cube"}, "kind"),
        ({"kind": "add", "a": {"file": "uploads/0123456789abcdef/A.npy"}, "b": {"shape": [2, 2]}}, "a.file"),
        ({"kind": "atoms", "grid": 0, "atoms": {"count": 5}}, "grid"),
        ({"kind": "matmul", "a": {"shape": [3, 4]}, "b": {"shape": [4, 5]}, "tile": 0}, "tile"),
    ],
    ids=["matmul-shapes", "add-shapes", "unknown-kind", "missing-file", "grid-zero", "tile-zero"],
)
def test_bad_bodies_get_400_naming_the_field_and_create_nothing(
    client: Client, home: Path, out_dir: Path, body: dict[str, Any], field: str
) -> None:
    response = post_job(client, body)
    assert response.status_code == 400, response.json_body
    error = response.json_body["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == field
    assert error["message"]
    assert files_under(home / "blobs") == []
    assert files_under(out_dir) == []
    assert client.http.get("/jobs").json_body == {"jobs": [], "next_cursor": None}


def test_a_body_that_is_not_json_gets_400(client: Client, home: Path) -> None:
    response = client.http.post("/jobs", headers=JSON, body="{not json")
    assert response.status_code == 400
    assert response.json_body["error"]["code"] == "invalid_input"
    assert response.json_body["error"]["field"] == "body"
    assert files_under(home / "blobs") == []
    assert client.http.get("/jobs").json_body["jobs"] == []


def test_a_body_over_64_kib_gets_413(client: Client, home: Path) -> None:
    huge = json.dumps({"kind": "add", "a": {"shape": [2, 2]}, "b": {"shape": [2, 2]}, "pad": "x" * 70_000})
    assert len(huge) > 64 * 1024
    response = client.http.post("/jobs", headers=JSON, body=huge)
    assert response.status_code == 413
    assert response.json_body["error"]["code"] == "body_too_large"
    assert files_under(home / "blobs") == []
    assert client.http.get("/jobs").json_body["jobs"] == []


# --------------------------------------------------------------------------- uploads


def upload(client: Client, filename: str, data: bytes) -> str:
    response = client.http.post("/uploads", headers=JSON, body=json.dumps({"filename": filename}))
    assert response.status_code == 201, response.json_body
    target = response.json_body
    assert target["method"] == "PUT"
    assert target["key"] == f"uploads/{target['upload_id']}/{filename}"
    assert target["url"] == f"/{target['key']}"
    assert target["use_as"] == {"file": target["key"]}
    assert target["expires_in"] > 0
    put = client.http.put(target["url"], headers={"Content-Type": "application/octet-stream"}, body=data)
    assert put.status_code == 201, put.body
    assert put.json_body == {"key": target["key"], "bytes": len(data)}
    key: str = target["key"]
    return key


def test_uploaded_files_can_be_used_by_a_job(client: Client, home: Path) -> None:
    a, b = normal_pair(4, (60, 45), (45, 50))
    key_a = upload(client, "A.npy", npy_bytes(a))
    key_b = upload(client, "B.npy", npy_bytes(b))
    assert key_a != key_b
    np.testing.assert_array_equal(np.load(home / "blobs" / key_a), a)
    spec = {"kind": "matmul", "a": {"file": key_a}, "b": {"file": key_b}, "tile": 32, "verify": True}
    doc = wait_job(client, submit(client, spec))
    assert_finished(doc)
    assert doc["spec"]["a"]["shape"] == [60, 45]
    np.testing.assert_allclose(np.load(doc["result"]["output"]), a @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "body",
    [{"filename": "../x.npy"}, {"filename": "a.txt"}, {"filename": "sub/A.npy"}, {"filename": ""}, {}],
    ids=["parent-dir", "wrong-extension", "subdirectory", "empty", "missing"],
)
def test_bad_upload_filenames_get_400(client: Client, home: Path, body: dict[str, Any]) -> None:
    response = client.http.post("/uploads", headers=JSON, body=json.dumps(body))
    assert response.status_code == 400, response.json_body
    assert response.json_body["error"]["code"] == "invalid_input"
    assert response.json_body["error"]["field"] == "filename"
    assert files_under(home) == []


# --------------------------------------------------------------------------- OpenAPI


def test_openapi_document_describes_every_served_route(client: Client) -> None:
    response = client.http.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json_body
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "tilefan"
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = {(path, method) for path, methods in chalice_app.app.routes.items() for method in methods}
    assert ("/jobs", "POST") in served and ("/openapi.json", "GET") in served
    assert documented - served == set(), "documented routes that are not served"
    assert served - documented == set(), "served routes missing from /openapi.json"
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"], f"{method.upper()} {path} documents no responses"
            for code, resp in op["responses"].items():
                if code.startswith("4"):
                    ref = resp["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error"
    assert set(schemas["Job"]["properties"]) == RECORD_KEYS

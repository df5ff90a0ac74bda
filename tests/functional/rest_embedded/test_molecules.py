"""A molecule through the REST API on the embedded backend: a PQR upload, the grid around
it, and the field downloaded as .mrc and .dx maps; bad molecules get a 400 naming the line
and the column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from tests.functional.rest_client import JSON, post_job, wait_job
from tests.molecule_maps import adk_path, assert_adk_map

OCTETS = {"Content-Type": "application/octet-stream"}


def upload(client: Client, name: str, data: bytes) -> tuple[str, Any]:
    """The upload's key, and the answer to its PUT (the embedded server checks the file there)."""
    target = client.http.post("/uploads", headers=JSON, body=json.dumps({"filename": name})).json_body
    put = client.http.put(target["url"], headers=OCTETS, body=data)
    return target["key"], put if put.status_code != 201 else client.http.post(target["complete"])


def test_adk_uploaded_as_pqr_gives_maps_viewers_open(client: Client, tmp_path: Path) -> None:
    key, done = upload(client, "adk_open.pqr", adk_path().read_bytes())
    assert done.status_code == 200, done.json_body
    spec = {"kind": "atoms", "atoms": {"file": key}, "around": {"margin": 8}, "spacing": 1, "field": True,
            "verify": True}
    doc = wait_job(client, post_job(client, spec).json_body["job_id"], timeout=300)
    assert doc["status"] == "SUCCEEDED", doc["error"]
    assert doc["result"]["verification"]["passed"] is True
    for fmt in ("mrc", "dx"):
        response = client.http.get(f"/jobs/{doc['job_id']}/field?format={fmt}",
                                   headers={"Accept": "application/octet-stream"})
        assert response.status_code == 200, response.body
        assert response.headers["Content-Disposition"].endswith(f'-field.{fmt}"')
        path = tmp_path / f"adk.{fmt}"
        path.write_bytes(response.body)
        assert_adk_map(path, doc["result"])


def test_an_unknown_map_format_is_a_400_naming_the_parameter(client: Client) -> None:
    spec = {"kind": "atoms", "grid": 4, "atoms": {"count": 3, "seed": 1}, "field": True, "softening": 0.1}
    doc = wait_job(client, post_job(client, spec).json_body["job_id"])
    response = client.http.get(f"/jobs/{doc['job_id']}/field?format=vtk")
    assert response.status_code == 400
    assert response.json_body["error"]["field"] == "format"


GOOD = b"ATOM      1  N   MET     1      27.340  24.430   2.614 -0.3000 1.8500\n"


@pytest.mark.parametrize(("data", "where"), [
    (GOOD + GOOD[:50], "line 2, column 51"),  # truncated
    (GOOD + GOOD.replace(b" -0.3000", b""), f"line 2, column {len(GOOD) - len(b' -0.3000')}"),  # no charge
    (GOOD + GOOD.replace(b"2.614", b"2.6x4"), f"line 2, column {GOOD.index(b'2.614') + 1}"),  # non-numeric
])
def test_a_bad_pqr_upload_is_a_400_naming_line_and_column(client: Client, data: bytes, where: str) -> None:
    _, done = upload(client, "bad.pqr", data)
    assert done.status_code == 400
    error = done.json_body["error"]
    assert error["field"] == "upload"
    assert error["message"].startswith(where)

"""Downloads answer the way HTTP says: no Accept header means any type, so the file comes
back; an Accept header that refuses a binary answer gets our error, in our words."""

from __future__ import annotations

import io

import numpy as np
from chalice.test import Client

from tests.functional.rest_client import submit, wait_job

ATOMS = {"kind": "atoms", "grid": [6, 5, 4], "atoms": {"count": 7, "seed": 2}, "field": True}
ADD = {"kind": "add", "a": {"shape": [6, 4]}, "b": {"shape": [6, 4]}, "seed": 3}


def test_result_field_and_report_png_download_without_an_accept_header(client: Client) -> None:
    add_id, atoms_id = submit(client, ADD), submit(client, ATOMS)
    assert wait_job(client, add_id)["status"] == "SUCCEEDED"
    doc = wait_job(client, atoms_id)
    assert doc["status"] == "SUCCEEDED"
    result = client.http.get(f"/jobs/{add_id}/result")  # no headers at all
    assert result.status_code == 200
    assert result.headers["Content-Type"] == "application/octet-stream"
    assert np.load(io.BytesIO(result.body)).shape == (6, 4)
    field = client.http.get(f"/jobs/{atoms_id}/field")
    assert field.status_code == 200
    phi = np.load(io.BytesIO(field.body))
    assert phi.shape == (6, 5, 4)
    assert float(phi.min()) == doc["result"]["min_value"]
    png = client.http.get(f"/jobs/{atoms_id}/report/runtime.png")
    assert png.status_code == 200 and png.body[:4] == b"\x89PNG"


def test_an_accept_header_that_refuses_the_file_gets_our_words(client: Client) -> None:
    job_id = submit(client, ADD)
    wait_job(client, job_id)
    refused = client.http.get(f"/jobs/{job_id}/result", headers={"Accept": "text/html"})
    assert refused.status_code == 400
    error = refused.json_body["error"]
    assert error["code"] == "not_acceptable"
    assert "Accept: */*" in error["message"]
    assert "Chalice" not in error["message"] and "Request did not specify" not in error["message"]


def test_chalice_errors_are_reworded(client: Client) -> None:
    wrong_method = client.http.request("PATCH", "/jobs")
    assert wrong_method.status_code == 405
    assert wrong_method.json_body["error"]["code"] == "method_not_allowed"
    assert "Unsupported method" not in wrong_method.json_body["error"]["message"]
    wrong_type = client.http.post("/jobs", headers={"Content-Type": "text/plain"}, body=b"{}")
    assert wrong_type.status_code == 415
    assert "Unsupported media type" not in wrong_type.json_body["error"]["message"]

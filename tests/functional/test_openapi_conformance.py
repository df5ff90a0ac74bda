"""Real answers of the REST API match what ``/openapi.json`` says they are.

Over the embedded backend, every response of a job's life (accepted, running, finished
with a verified result, failed, listed, reported, cancelled too late) and of an upload,
and the error bodies, is checked against the schema the served document gives for that
path, method and status. A generated client can therefore trust the document.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chalice.test import Client
from jsonschema import Draft202012Validator

import app as chalice_app
from tests.functional.rest_client import JSON, post_job, submit, wait_job
from tilefan import bootstrap
from tilefan.bootstrap import Config
from tilefan.entrypoints import rest


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    service = bootstrap.build_service(Config(home=tmp_path / "home", workers=2))
    rest.set_service_factory(lambda: service)
    try:
        with Client(chalice_app.app) as c:
            yield c
    finally:
        rest.set_service_factory(None)
        if service.serving is not None:
            service.serving.stop()


@pytest.fixture
def document(client: Client) -> dict[str, Any]:
    response = client.http.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json_body
    return doc


def check(document: dict[str, Any], path: str, method: str, response: Any) -> Any:
    """Assert the response's body is what the document promises for its status; the body."""
    answers = document["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in answers, f"{method.upper()} {path} answered {status}, which is not documented"
    schema = answers[status]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": document["components"]})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(response.json_body)]
    assert not errors, (method, path, status, response.json_body, errors)
    return response.json_body


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_a_jobs_life_matches_the_document(client: Client, document: dict[str, Any], tmp_path: Path) -> None:
    accepted = check(document, "/jobs", "post", post_job(client, {
        "kind": "matmul", "a": {"shape": "30x20"}, "b": {"shape": [20, 10]}, "seed": "3", "tile": 16,
        "verify": True}))
    assert accepted["status"] in ("QUEUED", "RUNNING")
    wait_job(client, accepted["job_id"])
    done = check(document, "/jobs/{job_id}", "get", client.http.get(f"/jobs/{accepted['job_id']}"))
    assert done["status"] == "SUCCEEDED" and done["result"]["verification"]["passed"] is True
    assert done["progress"]["eta_s"] == 0.0

    atoms = submit(client, {"kind": "atoms", "grid": "6x5x4", "origin": "0.25,0.25,0.25", "atoms": 7,
                            "tile": 3, "verify": True, "field": True})
    wait_job(client, atoms)
    record = check(document, "/jobs/{job_id}", "get", client.http.get(f"/jobs/{atoms}"))
    assert record["result"]["field"] and len(record["result"]["min_index"]) == 3

    report = check(document, "/jobs/{job_id}/report", "get", client.http.get(f"/jobs/{atoms}/report"))
    assert len(report["tiles"]) == report["summary"]["tiles_total"] > 1
    page = check(document, "/jobs", "get", client.http.get("/jobs?limit=1"))
    assert [j["job_id"] for j in page["jobs"]] == [atoms] and page["next_cursor"]
    late = check(document, "/jobs/{job_id}", "delete", client.http.delete(f"/jobs/{atoms}"))
    assert late["error"]["code"] == "conflict"


def test_a_failed_job_and_error_bodies_match_the_document(client: Client, document: dict[str, Any]) -> None:
    target = check(document, "/uploads", "post",
                   client.http.post("/uploads", headers=JSON, body=json.dumps({"filename": "A.npy"})))
    bad = np.ones((4, 4))
    bad[1, 2] = np.nan
    stored = check(document, "/uploads/{upload_id}/{name}", "put", client.http.put(
        target["url"], headers={"Content-Type": "application/octet-stream"}, body=npy_bytes(bad)))
    assert stored["key"] == target["key"]
    done = check(document, "/uploads/{upload_id}/complete", "post", client.http.post(target["complete"]))
    assert done["status"] == "COMPLETE" and done["use_as"] == target["use_as"]
    job = submit(client, {"kind": "add", "a": target["use_as"], "b": target["use_as"]})
    wait_job(client, job)
    failed = check(document, "/jobs/{job_id}", "get", client.http.get(f"/jobs/{job}"))
    assert failed["status"] == "FAILED" and failed["error"]["field"] == "a" and failed["result"] is None

    refused = check(document, "/jobs", "post", post_job(client, {"kind": "add", "a": {"shape": "3x4"},
                                                                 "b": {"shape": "3x4"}, "grid": 4}))
    assert refused["error"] == {"code": "invalid_input", "field": "grid", "message": refused["error"]["message"]}
    check(document, "/jobs/{job_id}", "get", client.http.get("/jobs/nosuchjob"))
    check(document, "/jobs", "get", client.http.get("/jobs?limit=0"))
    check(document, "/uploads", "post", client.http.post("/uploads", headers=JSON,
                                                         body=json.dumps({"filename": "../x.npy"})))

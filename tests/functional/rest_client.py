"""Talking to the REST API in tests, whatever backend serves it: submit, then poll."""

from __future__ import annotations

import json
import time
from typing import Any

from chalice.test import Client

JSON = {"Content-Type": "application/json"}


def post_job(client: Client, spec: Any) -> Any:
    return client.http.post("/jobs", headers=JSON, body=json.dumps(spec))


def submit(client: Client, spec: Any) -> str:
    """POST a job that must be accepted; its id."""
    response = post_job(client, spec)
    assert response.status_code == 202, response.json_body
    return str(response.json_body["job_id"])


def wait_job(client: Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll GET /jobs/{id} until the job leaves QUEUED and RUNNING."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.http.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.json_body
        doc: dict[str, Any] = response.json_body
        if doc["status"] not in ("QUEUED", "RUNNING"):
            return doc
        assert time.monotonic() < deadline, f"job still {doc['status']} after {timeout} s: {doc['progress']}"
        time.sleep(0.05)

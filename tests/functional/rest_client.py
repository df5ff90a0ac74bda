"""Talking to the REST API in tests, whatever backend serves it: build the app, submit, then poll."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chalice import Chalice
from chalice.app import Authorizer
from chalice.test import Client

from tests.helpers import wait_until
from tilefan.entrypoints.http.access import ALLOW_ALL, AccessPolicy
from tilefan.entrypoints.http.rest_app import http_app
from tilefan.service.jobs import JobService

JSON = {"Content-Type": "application/json"}


def rest_app(service: JobService | Callable[[], JobService], *, access: AccessPolicy = ALLOW_ALL,
             authorizer: Authorizer | None = None) -> Chalice:
    """A Chalice app serving every HTTP route over ``service`` (or the one a provider gives
    at each request), wired as the composition roots wire theirs. An in-process test client
    stands where the server's access policy would, so by default the policy admits all."""
    provider = (lambda: service) if isinstance(service, JobService) else service
    return http_app(Chalice(app_name="tilefan"), provider, authorizer=authorizer, access=access)


def post_job(client: Client, spec: Any) -> Any:
    return client.http.post("/jobs", headers=JSON, body=json.dumps(spec))


def submit(client: Client, spec: Any) -> str:
    """POST a job that must be accepted; its id."""
    response = post_job(client, spec)
    assert response.status_code == 202, response.json_body
    return str(response.json_body["job_id"])


def get_job(client: Client, job_id: str) -> dict[str, Any]:
    """GET /jobs/{id}, which must answer 200."""
    response = client.http.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.json_body
    doc: dict[str, Any] = response.json_body
    return doc


TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def wait_status(client: Client, job_id: str, wanted: tuple[str, ...], timeout: float = 60.0) -> dict[str, Any]:
    """Poll GET /jobs/{id} until the job's status is one of ``wanted``; the record then.

    A job that ends in any other status fails the test at once rather than at the timeout.
    """

    def reached() -> dict[str, Any] | None:
        doc = get_job(client, job_id)
        if doc["status"] in wanted:
            return doc
        assert doc["status"] not in TERMINAL, f"job {job_id} ended {doc['status']}: {doc['error']}"
        return None

    return wait_until(reached, f"job {job_id} to be {' or '.join(wanted)}", timeout)


def wait_job(client: Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll GET /jobs/{id} until the job leaves QUEUED and RUNNING."""
    return wait_status(client, job_id, TERMINAL, timeout)

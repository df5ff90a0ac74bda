"""Every status the server can send for an operation is one ``/openapi.json`` declares.

Each operation of the document is called, over the embedded backend, in the ways that
make a route (or what stands before it) refuse: without the token of a server bound off
loopback (401), for another Host (403), with a body type it does not take, on a backend
where each request's identity owns its jobs but none is given (AWS without identity:
401), and, for ``POST /jobs``, over the caller's cap on jobs at once (429). Whatever the
answer, it must be declared for that path and method, in the error shape. The statuses
the HTTP front end answers itself, before any route (``http.limits.CODES``, 413 for a
JSON body over its cap, 408 for a late request), are declared on every operation.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from tests.functional.rest_client import JSON, rest_app
from tilefan import bootstrap
from tilefan.bootstrap import Config
from tilefan.entrypoints.http import limits as http_limits
from tilefan.entrypoints.http.access import Access
from tilefan.entrypoints.http.openapi import openapi_document
from tilefan.service.jobs import JobService

DOC = openapi_document()
OPERATIONS = [(path, method) for path, ops in DOC["paths"].items() for method in ops]
# A value for each path parameter: none names anything that exists.
PARAMS = {"job_id": "j0", "upload_id": "u0", "name": "x.npy"}
SOME_JOB = {"kind": "add", "a": {"shape": "2x2"}, "b": {"shape": "2x2"}}


def concrete(path: str) -> str:
    return path.format(**PARAMS)


def call(client: Client, path: str, method: str, headers: dict[str, str] | None = None) -> Any:
    body = json.dumps(SOME_JOB) if method in ("post", "put") else None
    kind = {"Content-Type": "application/octet-stream"} if method == "put" else JSON
    return getattr(client.http, method)(concrete(path), headers={**kind, **(headers or {})}, body=body)


def assert_declared(path: str, method: str, response: Any) -> None:
    answers = DOC["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in answers, f"{method.upper()} {path} answered {status}, which is not declared"
    if status[0] in "45":
        assert set(response.json_body) == {"error"} and {"code", "message"} <= set(response.json_body["error"])


def _stop(service: JobService) -> None:
    if service.serving is not None:
        service.serving.stop()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[JobService]:
    config = Config(home=tmp_path / "home", workers=1)
    built = bootstrap.build_service(dataclasses.replace(
        config, limits=dataclasses.replace(config.limits, max_queued_jobs=1)))
    try:
        yield built
    finally:
        _stop(built)


@pytest.fixture
def client(service: JobService) -> Iterator[Client]:
    with Client(rest_app(service)) as c:
        yield c


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_a_request_without_the_token_gets_a_declared_401(service: JobService, path: str, method: str) -> None:
    with Client(rest_app(service, access=Access(hosts=frozenset({"testhost:8000"}), token="secret"))) as client:
        refused = call(client, path, method, {"Host": "testhost:8000"})
        elsewhere = call(client, path, method, {"Host": "evil.example:8000", "Authorization": "Bearer secret"})
    assert refused.status_code == 401
    assert_declared(path, method, refused)
    assert elsewhere.status_code == 403
    assert_declared(path, method, elsewhere)


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_a_body_of_the_wrong_type_gets_a_declared_answer(client: Client, path: str, method: str) -> None:
    assert_declared(path, method, call(client, path, method, {"Content-Type": "text/plain"}))


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_a_request_without_an_identity_gets_a_declared_answer(
        client: Client, service: JobService, path: str, method: str) -> None:
    service.principal = None  # as on AWS, where the authorizer's identity owns the jobs
    answer = call(client, path, method)
    assert_declared(path, method, answer)
    if path.startswith(("/jobs", "/uploads")):
        assert answer.status_code == 401, (method, path, answer.json_body)


def test_a_job_over_the_callers_cap_gets_a_declared_429(client: Client, service: JobService) -> None:
    answers = [call(client, "/jobs", "post") for _ in range(3)]
    assert answers[0].status_code == 202
    # The first may end before the next arrives; at least one of the later ones is refused
    # unless both did, which a one-worker pool cannot do before the job is recorded QUEUED.
    statuses = {a.status_code for a in answers}
    for answer in answers:
        assert_declared("/jobs", "post", answer)
    assert 429 in statuses, statuses


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_what_the_front_end_answers_itself_is_declared_everywhere(path: str, method: str) -> None:
    front = {*http_limits.CODES, 408, 413}
    assert {str(code) for code in front} <= set(DOC["paths"][path][method]["responses"])

"""The access policy is an object the composition root hands the routes, and it fails closed.

A blueprint built without naming a policy refuses every request before any route runs
(the service is never even built); ``AllowAll`` (AWS, where API Gateway authenticates)
admits them; ``Access`` (``tilefan serve``) checks the Host header and the token. Two apps
built side by side keep their own policies: nothing is left in a module.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from chalice import Chalice
from chalice.test import Client

import tilefan.entrypoints
from tilefan.entrypoints.http.access import ALLOW_ALL, REFUSE_ALL, Access, AccessPolicy, Refusal
from tilefan.entrypoints.http.openapi import openapi_document
from tilefan.entrypoints.http.rest import rest_api
from tilefan.entrypoints.http.rest_app import http_app
from tilefan.service.jobs import JobService

PARAMS = {"job_id": "0123456789abcdef", "upload_id": "0123456789abcdef", "name": "A.npy"}
API_CALLS = [(method, path.format(**PARAMS)) for path, ops in openapi_document()["paths"].items() for method in ops]
WEB_CALLS = [("get", "/"), ("get", "/ui/jobs"), ("get", "/docs"), ("get", "/static/app.js"),
             ("get", "/jobs/0123456789abcdef/slice"), ("get", "/jobs/0123456789abcdef/report/logs.csv")]


def no_service() -> JobService:
    raise AssertionError("a refused request must not reach the service")


def call(client: Client, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    kind = {"Content-Type": "application/octet-stream" if method == "put" else "application/json"}
    body = b"{}" if method in ("post", "put") else None
    return getattr(client.http, method)(path, headers={**kind, **(headers or {})}, body=body)


def test_a_blueprint_built_without_a_policy_refuses_every_request() -> None:
    app = Chalice(app_name="forgot-the-policy")  # as a server that forgot to choose one would build it
    app.register_blueprint(rest_api(no_service))
    calls = [(method.lower(), path.format(**PARAMS)) for path, methods in app.routes.items() for method in methods]
    assert len(calls) >= 11
    with Client(app) as client:
        for method, path in calls:
            refused = call(client, method, path)
            assert refused.status_code == 403, (method, path)
            assert refused.json_body == {"error": {
                "code": "forbidden", "message": "this server has no access policy, so it answers no request"}}


@pytest.mark.parametrize(("method", "path"), API_CALLS + WEB_CALLS)
def test_the_refusing_policy_guards_the_web_pages_too(method: str, path: str) -> None:
    with Client(http_app(Chalice(app_name="refusing"), no_service, authorizer=None, access=REFUSE_ALL)) as client:
        assert call(client, method, path).status_code == 403


def test_allow_all_admits_and_two_apps_keep_their_own_policies() -> None:
    token = Access(hosts=frozenset({"testhost:8000"}), token="secret")
    with Client(http_app(Chalice(app_name="aws"), no_service, authorizer=None, access=ALLOW_ALL)) as open_app, \
            Client(http_app(Chalice(app_name="serve"), no_service, authorizer=None, access=token)) as served:
        assert open_app.http.get("/openapi.json").status_code == 200
        refused = served.http.get("/openapi.json", headers={"Host": "testhost:8000"})
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        admitted = served.http.get("/openapi.json", headers={"Host": "testhost:8000", "Authorization": "Bearer secret"})
        assert admitted.status_code == 200
        assert open_app.http.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(("headers", "query", "refusal"), [
    ({"host": "testhost:8000", "authorization": "Bearer secret"}, None, None),
    ({"host": "testhost:8000"}, {"token": "secret"}, None),
    ({"host": "evil.example:8000", "authorization": "Bearer secret"}, None, 403),
    ({"host": "testhost:8000", "authorization": "Bearer wrong"}, None, 401),
    ({"host": "testhost:8000", "authorization": "Basic secret"}, None, 401),
])
def test_the_serve_policy_checks_host_then_token(headers: dict[str, str], query: dict[str, str] | None,
                                                 refusal: int | None) -> None:
    policy: AccessPolicy = Access(hosts=frozenset({"testhost:8000"}), token="secret")
    answer = policy.check(headers, query)
    assert (answer.status if isinstance(answer, Refusal) else None) == refusal


def test_a_wildcard_bind_takes_any_host_but_still_the_token() -> None:
    policy = Access(hosts=None, token="secret")
    assert policy.check({"host": "anything:1"}, {"token": "secret"}) is None
    assert policy.check({"host": "anything:1"}, None) == Refusal(
        401, "unauthorized", "send the server's token as 'Authorization: Bearer <token>'")


def test_no_door_keeps_state_a_module_global_would_share() -> None:
    """The HTTP doors get their service and policy from the composition root, never a ``global``."""
    folder = Path(tilefan.entrypoints.__file__).parent
    doors = sorted(folder.rglob("*.py"))
    assert folder / "http" / "rest.py" in doors and folder / "cli" / "main.py" in doors  # every door is read
    rebinding = [f"{path.relative_to(folder)}:{node.lineno}" for path in doors
                 for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Global)]
    assert rebinding == []

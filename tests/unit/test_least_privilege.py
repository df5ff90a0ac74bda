"""Least privilege in what is packaged: each role writes only under its own prefixes, no
role writes the worker artifacts, and the API and tile functions have reserved
concurrency (so a wide map cannot starve the API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tilefan.entrypoints.http.http_errors import RETRY_AFTER_S

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
TEMPLATE = json.loads((ROOT / "stepfunctions" / "merge-template.json").read_text())
WRITES = {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:*", "*"}
# Where each role may write: its own prefixes.
OWN_PREFIXES = {"api": ("jobs/", "uploads/"), "plan": ("jobs/",), "tile": ("jobs/",), "reduce": ("jobs/",),
                "mark_failed": ("jobs/",), "capacity": (), "worker": ("jobs/",)}


def _statements() -> dict[str, list[dict[str, Any]]]:
    roles = {name: json.loads((ROOT / ".chalice" / f"policy-{name}.json").read_text())["Statement"]
             for name in OWN_PREFIXES if name != "worker"}
    worker = TEMPLATE["Resources"]["WorkerRole"]["Properties"]["Policies"]
    roles["worker"] = [s for p in worker for s in p["PolicyDocument"]["Statement"]]
    return roles


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _bucket_paths(resource: Any) -> list[str]:
    """The object paths a resource names in the jobs bucket ("jobs/*", or "*" for all)."""
    text = resource.get("Fn::Sub", "") if isinstance(resource, dict) else str(resource)
    if text == "*":
        return ["*"]
    return [text.split("${JobsBucket.Arn}/", 1)[1]] if "${JobsBucket.Arn}/" in text else []


@pytest.mark.parametrize("role", sorted(OWN_PREFIXES))
def test_each_role_writes_only_under_its_own_prefixes(role: str) -> None:
    written = [path for st in _statements()[role] if WRITES & set(_list(st["Action"]))
               for res in _list(st["Resource"]) for path in _bucket_paths(res)]
    for path in written:
        assert path != "*" and path.startswith(OWN_PREFIXES[role]), (role, path)
    assert not any(p.startswith("worker/") for p in written)


def test_no_role_may_put_on_the_whole_bucket() -> None:
    for role, statements in _statements().items():
        for st in statements:
            if "s3:PutObject" in _list(st["Action"]):
                assert "*" not in [p for r in _list(st["Resource"]) for p in _bucket_paths(r)], role


def test_every_function_has_reserved_concurrency() -> None:
    functions = CONFIG["lambda_functions"]
    reserved = {name: f["reserved_concurrency"] for name, f in functions.items()}
    assert set(reserved) == {"api_handler", "plan", "capacity", "tile", "reduce", "mark_failed"}
    assert reserved["api_handler"] >= 10 and reserved["tile"] >= 100 and min(reserved.values()) >= 1
    # Lambda keeps 100 of the default account limit (1,000) unreserved.
    assert sum(reserved.values()) <= 900


def test_api_gateway_writes_access_logs_to_its_own_log_group() -> None:
    resources = TEMPLATE["Resources"]
    setting = resources["RestAPI"]["Properties"]["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    fields = json.loads(setting["Format"])
    assert {"requestId", "userArn", "status", "path"} <= set(fields)
    assert resources["ApiAccessLogGroup"]["Properties"]["RetentionInDays"] > 0
    # API Gateway needs the account's CloudWatch role before a stage can log.
    assert resources["RestAPI"]["DependsOn"] == ["ApiGatewayAccount"]


def test_api_gateway_answers_its_own_errors_in_the_error_shape() -> None:
    responses = {r["Properties"]["ResponseType"]: r["Properties"] for r in TEMPLATE["Resources"].values()
                 if r.get("Type") == "AWS::ApiGateway::GatewayResponse"}
    assert set(responses) == {"MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX", "THROTTLED",
                              "QUOTA_EXCEEDED"}
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"
    # API Gateway's own 429s say when to retry, as tilefan's do (http_errors.RETRY_AFTER_S).
    for kind in ("THROTTLED", "QUOTA_EXCEEDED"):
        assert responses[kind]["StatusCode"] == "429"
        assert responses[kind]["ResponseParameters"] == {"gatewayresponse.header.Retry-After": f"'{RETRY_AFTER_S}'"}
    for props in responses.values():
        template = props["ResponseTemplates"]["application/json"]
        rendered = template.replace("$context.error.responseType", "X").replace(
            "$context.error.messageString", '"a message"')
        assert json.loads(rendered) == {"error": {"code": "X", "message": "a message"}}

"""Every REST method on AWS needs a SigV4-signed caller (IAM), as packaged; a stage packaged
with a Cognito user pool uses it instead."""

from __future__ import annotations

from typing import Any

from chalice import CognitoUserPoolAuthorizer, IAMAuthorizer
from chalice.deploy.swagger import TemplatedSwaggerGenerator

import app as chalice_app
from tilefan.bootstrap import api_authorizer
from tilefan.entrypoints.http.openapi import openapi_document


def api_definition() -> dict[str, Any]:
    """The API Gateway definition ``chalice package`` puts in the template (generated the same way)."""
    doc: dict[str, Any] = TemplatedSwaggerGenerator().generate_swagger(chalice_app.app)
    return doc


def test_every_method_requires_iam() -> None:
    doc = api_definition()
    methods = [(path, verb, op) for path, ops in doc["paths"].items() for verb, op in ops.items()
               if verb != "options"]
    assert len(methods) >= 10
    for path, verb, op in methods:
        assert op.get("security") == [{"sigv4": []}], (path, verb)
    assert doc["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_the_routes_of_the_api_match_the_openapi_document() -> None:
    routes = {(path, verb) for path, ops in api_definition()["paths"].items() for verb in ops}
    documented = {(path, verb) for path, ops in openapi_document()["paths"].items() for verb in ops}
    assert routes == documented


def test_iam_is_the_default_and_cognito_a_stage_option() -> None:
    assert isinstance(api_authorizer({}), IAMAuthorizer)
    pool = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_example"
    cognito = api_authorizer({"TILEFAN_COGNITO_USER_POOL_ARN": pool})
    assert isinstance(cognito, CognitoUserPoolAuthorizer)
    assert cognito.to_swagger()["x-amazon-apigateway-authorizer"]["providerARNs"] == [pool]


def test_the_openapi_document_declares_the_security_schemes() -> None:
    doc = openapi_document()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["serverToken"] == {"type": "http", "scheme": "bearer", "description": schemes["serverToken"][
        "description"]}
    assert {"sigv4": []} in doc["security"] and {"serverToken": []} in doc["security"]

"""Chalice app: the REST API and the Lambda functions, as thin doors over chalicelib.

This is the AWS composition root. Nothing is built at import time: the service is built
by ``tilefan.bootstrap`` on the first request and kept for the container's later ones.
Chalice reads the routes and their authorizer from the module-level ``app`` when it
packages the API, so the authorizer is chosen here, at import. API Gateway's authorizer
admits every caller before a route runs, so the routes' own access policy is ``AllowAll``.
"""

from __future__ import annotations

import functools
from typing import Any

from chalice import Chalice

from tilefan.bootstrap import api_authorizer, build_service
from tilefan.entrypoints.rest_access import ALLOW_ALL
from tilefan.entrypoints.rest_app import http_app

app = http_app(Chalice(app_name="tilefan"), functools.cache(build_service), authorizer=api_authorizer(),
               access=ALLOW_ALL)


# --------------------------------------------------------------------------- state machine steps
# Each is a thin door over chalicelib.lambdas (one implementation, two backends).


@app.lambda_function(name="plan")
def plan(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib import lambdas

    return lambdas.plan_handler(event, context)


@app.lambda_function(name="capacity")
def capacity(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib import lambdas

    return lambdas.capacity_handler(event, context)


@app.lambda_function(name="tile")
def tile(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib import lambdas

    return lambdas.tile_handler(event, context)


@app.lambda_function(name="reduce")
def reduce(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib import lambdas

    return lambdas.reduce_handler(event, context)


@app.lambda_function(name="mark_failed")
def mark_failed(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from chalicelib import lambdas

    return lambdas.mark_failed_handler(event, context)

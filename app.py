"""Chalice app: the REST API and the Lambda functions, as thin doors over chalicelib.

Nothing is built at import time: the backend is wired lazily by ``tilefan.bootstrap``.
"""

from __future__ import annotations

from typing import Any

from chalice import Chalice

from tilefan.entrypoints.rest import api
from tilefan.entrypoints.web import web

app = Chalice(app_name="tilefan")
app.register_blueprint(api)
app.register_blueprint(web)  # the web page, Swagger UI and the report files


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

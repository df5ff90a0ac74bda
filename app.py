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
from tilefan.entrypoints.http.access import ALLOW_ALL
from tilefan.entrypoints.http.rest_app import http_app

app = http_app(Chalice(app_name="tilefan"), functools.cache(build_service), authorizer=api_authorizer(),
               access=ALLOW_ALL)


# --------------------------------------------------------------------------- state machine steps
# Each is a thin door over chalicelib.lambdas (one implementation, two backends).


def _step(name: str) -> Any:
    """The Lambda function ``name``, calling ``chalicelib.lambdas.HANDLERS[name]``.

    chalicelib is imported on the first call, so the REST API's cold start does not pay for
    the state machine's handlers. Chalice deploys the function as ``app.<its __name__>``, so
    that name is ``name`` and the result must be bound to ``name`` in this module.
    """

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        from chalicelib import lambdas

        return lambdas.HANDLERS[name](event, context)

    handler.__name__ = handler.__qualname__ = name
    return app.lambda_function(name=name)(handler)


plan = _step("plan")
capacity = _step("capacity")
tile = _step("tile")
reduce = _step("reduce")
mark_failed = _step("mark_failed")

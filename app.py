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

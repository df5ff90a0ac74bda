"""The one codec between our exceptions and the error bodies users see.

An error body is ``{code, message, field?, tile_id?}``: it is what a job record keeps, and
(with the field's prefix left off the message) what the REST API answers. Errors cross a
process boundary as a state-machine error ``{Error, Cause}`` whose Cause is the Lambda
runtime's JSON ``{errorType, errorMessage}``; the spot worker writes the same shape, so the
state machine's failure handler decodes both alike. ``http_status`` maps a code to HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from tilefan.errors import InvalidSpecError, ReportedError, RunnerError, TilefanError, error_types

MAX_ERROR_MESSAGE = 2000  # characters of a reported error kept on the job record

_HTTP_STATUS = {"invalid_input": 400, "unauthorized": 401, "job_not_found": 404, "not_found": 404,
                "conflict": 409, "upload_expired": 410, "body_too_large": 413, "too_many_jobs": 429,
                # The store failed or was busy: nothing was acted on, so trying again is safe.
                "store_error": 503}
_TILE_PREFIX = re.compile(r"^tile (\d+): ")
# State errors raised by the services that run our code, not by our code.
_RUNNER_PREFIXES = ("States.", "Lambda.", "Sandbox.")


def error_body(exc: BaseException) -> dict[str, Any]:
    """The error body for an exception: ours keep their code, field and tile id.

    >>> error_body(InvalidSpecError("a", "contains NaN or inf"))
    {'code': 'invalid_input', 'message': 'a: contains NaN or inf', 'field': 'a'}
    >>> error_body(KeyError("pk"))
    {'code': 'internal_error', 'message': "KeyError: 'pk'"}
    """
    if not isinstance(exc, TilefanError):
        return {"code": TilefanError.code, "message": f"{type(exc).__name__}: {exc}"}
    body: dict[str, Any] = {"code": exc.code, "message": str(exc)}
    field, tile_id = getattr(exc, "field", None), getattr(exc, "tile_id", None)
    if field is not None:
        body["field"] = field
    if tile_id is not None:
        body["tile_id"] = tile_id
    return body


def plain_message(body: Mapping[str, Any]) -> str:
    """A body's message without the ``field: `` prefix its ``field`` already says.

    >>> plain_message({"code": "invalid_input", "message": "a: contains NaN or inf", "field": "a"})
    'contains NaN or inf'
    """
    message = str(body.get("message", ""))
    field = body.get("field")
    if field and message.startswith(f"{field}: "):
        return message[len(field) + 2 :]
    return message


def http_status(code: str) -> int:
    """The HTTP status for an error code: 400, 404, 409, 503 for the store, else 500.

    >>> [http_status(c) for c in ("invalid_input", "job_not_found", "conflict", "store_error", "runner_error")]
    [400, 404, 409, 503, 500]
    """
    return _HTTP_STATUS.get(code, 500)


def http_error(exc: TilefanError) -> tuple[int, dict[str, Any]]:
    """The REST answer for one of our errors: its status and its body (message unprefixed)."""
    body = error_body(exc)
    body["message"] = plain_message(body)
    return http_status(body["code"]), body


def state_cause(error_type: str, message: str) -> str:
    """A Cause in the Lambda runtime's shape.

    >>> state_cause("JobNotFoundError", "no job with id 'j9'")
    '{"errorType": "JobNotFoundError", "errorMessage": "no job with id \\'j9\\'"}'
    """
    return json.dumps({"errorType": error_type, "errorMessage": message})


def error_cause(exc: BaseException) -> str:
    """The Cause a Lambda would report for ``exc`` (the spot worker reports failures so)."""
    return state_cause(type(exc).__name__, str(exc))


def error_from_state(error: Mapping[str, str]) -> TilefanError:
    """The exception behind a state-machine error ``{Error, Cause}``.

    Our own errors come back with their codes (and an invalid input's field, a tile's id);
    errors of Step Functions or the Lambda service are runner errors; anything else is an
    internal error named by its type.

    >>> cause = state_cause("TileFailedError", "tile 3: the potential is infinite")
    >>> error_body(error_from_state({"Error": "TileFailedError", "Cause": cause}))
    {'code': 'tile_failed', 'message': 'tile 3: the potential is infinite', 'tile_id': 3}
    >>> error_body(error_from_state({"Error": "States.Timeout", "Cause": ""}))
    {'code': 'runner_error', 'message': 'States.Timeout'}
    """
    name = error["Error"]
    cause = error.get("Cause") or ""
    error_type, message = name, cause
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error_type = str(parsed.get("errorType") or name)
        message = str(parsed.get("errorMessage") or "")
    named = f"{error_type}: {message}" if message else error_type
    ours = error_types().get(error_type)
    if ours is None:
        runner = name.startswith(_RUNNER_PREFIXES) or error_type.startswith(_RUNNER_PREFIXES)
        code = RunnerError.code if runner else TilefanError.code
        return ReportedError(code, named[:MAX_ERROR_MESSAGE], None, _tile_id(message))
    field = message.split(": ", 1)[0] if issubclass(ours, InvalidSpecError) and ": " in message else None
    return ReportedError(ours.code, (message or error_type)[:MAX_ERROR_MESSAGE], field, _tile_id(message))


def _tile_id(message: str) -> int | None:
    """The tile a message names, as tile errors start: ``tile 3: ...``."""
    match = _TILE_PREFIX.match(message)
    return int(match.group(1)) if match else None

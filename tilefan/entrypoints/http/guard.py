"""One error shape for every answer, no client input that ends in a 500, and the access check.

``guarded_by(policy)`` is a Chalice ``http`` middleware around every route of the app
(the REST blueprint registers it), so it runs whatever serves the routes (API Gateway,
``tilefan serve``). It re-shapes the
errors Chalice answers itself before a view runs (405, 415, a binary answer the client
did not accept) into ``{"error": {code, message}}`` in our own words (Chalice's speak of
its internals), and turns an exception that escaped a view into a 500 of that shape that
says nothing of its cause (which goes to the log). A request without an ``Accept`` header
takes any answer, as HTTP says (RFC 9110, 12.5.1): Chalice would refuse it a download.
Before any route it applies the access policy the composition root chose
(``http.access``). ``parse_json`` reads a body with its nesting capped, so deep JSON is a
400. ``answer`` and ``failure`` turn a route's result or one of our errors into a response.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from chalice import Response
from chalice.app import CaseInsensitiveMapping

from tilefan.entrypoints.http.access import AccessPolicy
from tilefan.entrypoints.http.http_errors import JSON_TYPE, error_document, error_headers
from tilefan.errors import InvalidSpecError, TilefanError
from tilefan.pipeline.error_codec import http_error

log = logging.getLogger(__name__)

MAX_DEPTH = 32
Middleware = Callable[[Any, Callable[[Any], Response]], Response]


# Chalice's own error codes, as ours, each with our message (theirs name Chalice's internals).
_CHALICE_CODES = {
    "MethodNotAllowedError": ("method_not_allowed", "this method is not allowed on this path"),
    "UnsupportedMediaType": ("unsupported_media_type", "this route does not take a body of this Content-Type"),
    "BadRequest": ("not_acceptable", "this answer is binary and the request's Accept header refuses it; "
                                     "send Accept: */* (or the answer's type), or no Accept header"),
    "BadRequestError": ("invalid_input", "the request is malformed"),
    "NotFoundError": ("not_found", "no such resource"),
}


def error_response(status: int, code: str, message: str, **details: Any) -> Response:
    """An error answer in the API's one shape (``http_errors.error_document``)."""
    headers: dict[str, str | list[str]] = {**error_headers(status)}
    return Response(body=error_document(code, message, **details), status_code=status, headers=headers)


def failure(exc: TilefanError) -> Response:
    """The answer to one of our errors: the error codec's status and body."""
    status, body = http_error(exc)
    return error_response(status, **body)


def answer(fn: Callable[[], Any], status: int = 200) -> Response:
    """Run a service call and answer its result as JSON, or our error as ``failure`` does."""
    try:
        return Response(body=fn(), status_code=status, headers=dict(JSON_TYPE))
    except TilefanError as exc:
        return failure(exc)


def guarded_by(access: AccessPolicy) -> Middleware:
    """The middleware that admits only what ``access`` admits and answers in one error shape."""

    def guard(request: Any, get_response: Callable[[Any], Response]) -> Response:
        try:
            refused = access.check(request.headers, request.query_params)
            if refused is not None:
                response = error_response(refused.status, refused.code, refused.message)
                if refused.status == 401:
                    response.headers["WWW-Authenticate"] = "Bearer"
                return response
            if request.headers.get("accept") is None:
                # No Accept header means any type (Chalice treats it as "not binary").
                request.headers = CaseInsensitiveMapping({**request.headers, "accept": "*/*"})
            response = get_response(request)
        except Exception:  # the last line of defence: log it, answer a plain 500
            log.exception("unhandled error in a REST route")
            return error_response(500, "internal_error", "the server failed to answer this request")
        return _reshaped(response)

    return guard


def _reshaped(response: Response) -> Response:
    if response.status_code < 400:
        return response
    body = response.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return response
    chalice_code = body.get("Code") if isinstance(body, dict) else None
    if response.status_code >= 500:
        log.error("Chalice answered %s: %r", response.status_code, body)
        return error_response(500, "internal_error", "the server failed to answer this request")
    code, message = _CHALICE_CODES.get(str(chalice_code), ("invalid_input", "the request was refused"))
    allow = {k: v for k, v in response.headers.items() if k.lower() == "allow"}
    if allow:
        message = f"{message}; allowed: {next(iter(allow.values()))}"
    reshaped = error_response(response.status_code, code, message)
    reshaped.headers.update(allow)
    return reshaped


def parse_json(raw: bytes | str) -> Any:
    """A request body (already within its ``BodyCap``) as JSON, nested at most ``MAX_DEPTH`` deep."""
    if _nesting(raw) > MAX_DEPTH:
        raise InvalidSpecError("body", f"is nested more than {MAX_DEPTH} levels deep")
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidSpecError("body", "is not valid JSON") from None


def _nesting(raw: bytes | str) -> int:
    """How deeply brackets nest, outside strings (before parsing, so depth costs no recursion)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest

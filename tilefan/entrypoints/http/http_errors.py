"""The API's one error shape, ``{"error": {"code", "message", "field"?}}``, built in one place.

Every answer that is not a success takes this shape, whoever gives it: a route
(``http.guard.error_response`` wraps it in a Chalice response), the guard around the
routes, the WSGI adapter (an unknown path, a declared body over the cap) and waitress's
own error answers (``http.limits``). Framework-free, so the HTTP front end builds the same
bytes without Chalice.
"""

from __future__ import annotations

import json
from typing import Any

# How long a client told "too many" (429) or "unavailable" (503) waits before it tries
# again (Retry-After, RFC 9110 10.2.3). Jobs take seconds to minutes, so a few seconds
# frees a slot often enough without a burst of clients spinning on the server.
RETRY_AFTER_S = 5
JSON_TYPE = {"Content-Type": "application/json"}


def error_document(code: str, message: str, **details: Any) -> dict[str, Any]:
    """The error body every status answers with; details that are None are left out.

    >>> error_document("invalid_input", "must be positive", field="tile")
    {'error': {'code': 'invalid_input', 'message': 'must be positive', 'field': 'tile'}}
    >>> error_document("not_found", "no such page", field=None)
    {'error': {'code': 'not_found', 'message': 'no such page'}}
    """
    return {"error": {"code": code, "message": message, **{k: v for k, v in details.items() if v is not None}}}


def error_bytes(code: str, message: str, **details: Any) -> bytes:
    """``error_document`` as the JSON bytes of a response body."""
    return json.dumps(error_document(code, message, **details)).encode()


def error_headers(status: int) -> dict[str, str]:
    """An error answer's headers: JSON, and Retry-After on every 429 and 503.

    >>> error_headers(429)
    {'Content-Type': 'application/json', 'Retry-After': '5'}
    """
    return {**JSON_TYPE, **({"Retry-After": str(RETRY_AFTER_S)} if status in (429, 503) else {})}

"""AWS requests with botocore's errors turned into tilefan's own.

Every AWS adapter sends its requests through ``call`` (one request), ``pages`` (a
paginated listing) or a ``translated`` block (boto3's managed transfers), so the
translation of a failed request lives in one place (what is special to a service is
passed in as ``special``); callers above the adapters only ever see our errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tilefan.errors import StoreError, StoreThrottledError

# Error codes that mean "too fast, try again later" (after botocore's own retries gave up).
THROTTLED = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "SlowDown", "RequestThrottled", "Throttling",
})

# (error code, full error response) → the exception to raise instead, or None.
Special = Callable[[str, Mapping[str, Any]], Exception | None]


@contextlib.contextmanager
def translated(failed: str, fallback: Callable[[str], Exception], special: Special | None = None) -> Iterator[None]:
    """Inside the block, botocore's errors that ``special`` does not map become
    ``fallback`` with the message "<failed>: <code> <message>"."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        mapped = special(code, exc.response) if special is not None else None
        if mapped is not None:
            raise mapped from None
        if code in THROTTLED and fallback is StoreError:
            raise StoreThrottledError(f"{failed}: {code} {message}".rstrip()) from None
        raise fallback(f"{failed}: {code} {message}".rstrip()) from None
    except BotoCoreError as exc:
        raise fallback(f"{failed}: {exc}") from None


def call(client: Any, op: str, params: Mapping[str, Any], *, failed: str, fallback: Callable[[str], Exception],
         special: Special | None = None) -> dict[str, Any]:
    """``client.op(**params)``, errors translated as ``translated`` says."""
    with translated(failed, fallback, special):
        response: dict[str, Any] = getattr(client, op)(**params)
    return response


def pages(client: Any, op: str, params: Mapping[str, Any], *, failed: str, fallback: Callable[[str], Exception],
          special: Special | None = None) -> Iterator[dict[str, Any]]:
    """Every page of ``op`` from boto's own paginator (which carries the continuation
    tokens), each request's errors translated as ``translated`` says."""
    iterator = iter(client.get_paginator(op).paginate(**params))
    while True:
        # Only fetching a page is inside the block: an error raised by the caller's
        # own loop body must reach it untouched.
        with translated(failed, fallback, special):
            page: dict[str, Any] | None = next(iterator, None)
        if page is None:
            return
        yield page

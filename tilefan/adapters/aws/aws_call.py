"""One AWS request with botocore's errors turned into tilefan's own.

Every AWS adapter sends its requests through ``call``, so the translation of a failed
request lives in one place (what is special to a service is passed in as ``special``);
callers above the adapters only ever see our errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# (error code, full error response) → the exception to raise instead, or None.
Special = Callable[[str, Mapping[str, Any]], Exception | None]


def call(
    client: Any,
    op: str,
    params: Mapping[str, Any],
    *,
    failed: str,
    fallback: Callable[[str], Exception],
    special: Special | None = None,
) -> dict[str, Any]:
    """``client.op(**params)``; errors ``special`` does not map become ``fallback``
    with the message "<failed>: <code> <message>"."""
    try:
        response: dict[str, Any] = getattr(client, op)(**params)
        return response
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        mapped = special(code, exc.response) if special is not None else None
        if mapped is not None:
            raise mapped from None
        raise fallback(f"{failed}: {code} {message}".rstrip()) from None
    except BotoCoreError as exc:
        raise fallback(f"{failed}: {exc}") from None

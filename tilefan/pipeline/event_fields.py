"""Field checks for what the runners hand a step: Lambda events and spot-queue messages.

Both come from the state machine, so both are checked alike: a field that is missing or of
the wrong type raises ``InvalidSpecError`` naming it, in one wording, and the state machine
never retries that error type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tilefan.errors import InvalidSpecError


def json_object(text: str, name: str = "body") -> Mapping[str, Any]:
    """Parse JSON text that must hold an object.

    >>> json_object('[1]')
    Traceback (most recent call last):
    ...
    tilefan.errors.InvalidSpecError: body: must be a JSON object, got list
    """
    try:
        doc = json.loads(text)
    except ValueError:
        raise InvalidSpecError(name, f"is not JSON: {text[:80]!r}") from None
    return mapping(doc, name)


def mapping(value: Any, name: str) -> Mapping[str, Any]:
    """``value`` itself, if it is a JSON object."""
    if not isinstance(value, Mapping):
        raise InvalidSpecError(name, f"must be a JSON object, got {type(value).__name__}")
    return value


def text(doc: Mapping[str, Any], name: str) -> str:
    """A required non-empty string field.

    >>> text({"job_id": ""}, "job_id")
    Traceback (most recent call last):
    ...
    tilefan.errors.InvalidSpecError: job_id: must be a non-empty string, got ''
    """
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidSpecError(name, f"must be a non-empty string, got {value!r}")
    return value


def integer(doc: Mapping[str, Any], name: str, *, minimum: int = 0, default: int | None = None) -> int:
    """An integer field of at least ``minimum`` (a bool is not one); ``default`` if absent and given.

    >>> integer({"tile_id": True}, "tile_id")
    Traceback (most recent call last):
    ...
    tilefan.errors.InvalidSpecError: tile_id: must be an integer >= 0, got True
    >>> integer({}, "heartbeat_seconds", minimum=1, default=60)
    60
    """
    if default is not None and name not in doc:
        return default
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidSpecError(name, f"must be an integer >= {minimum}, got {value!r}")
    return value


def state_error(doc: Mapping[str, Any], name: str = "error") -> dict[str, str]:
    """The ``{Error, Cause}`` the state machine caught, with Cause defaulting to ``""``."""
    error = doc.get(name)
    if not isinstance(error, Mapping):
        raise InvalidSpecError(name, f"must be an object with Error and Cause, got {error!r}")
    error_name, cause = error.get("Error"), error.get("Cause", "")
    if not isinstance(error_name, str) or not error_name:
        raise InvalidSpecError(f"{name}.Error", f"must be a non-empty string, got {error_name!r}")
    if cause is not None and not isinstance(cause, str):
        raise InvalidSpecError(f"{name}.Cause", f"must be a string, got {cause!r}")
    return {"Error": error_name, "Cause": cause or ""}

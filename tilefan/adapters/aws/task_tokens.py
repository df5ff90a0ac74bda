"""Answering Step Functions for a callback task: heartbeat, success, failure.

A token Step Functions no longer waits on (it timed out, was already answered, or never
existed) raises ``StaleTaskTokenError``; anything else that goes wrong raises
``RunnerError``, which a caller may retry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tilefan.adapters.aws.aws_call import call
from tilefan.errors import RunnerError, StaleTaskTokenError

_STALE = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})
MAX_ERROR_CHARS = 256  # SendTaskFailure's limits
MAX_CAUSE_CHARS = 32_768


def _stale(code: str, response: Mapping[str, Any]) -> Exception | None:
    if code not in _STALE:
        return None
    message = str(response.get("Error", {}).get("Message", ""))
    return StaleTaskTokenError(f"{code}: {message}".rstrip(": "))


class TaskTokens:
    def __init__(self, client: Any) -> None:
        self.client = client

    def _send(self, op: str, **params: Any) -> None:
        call(self.client, op, params, failed=f"Step Functions {op} failed", fallback=RunnerError, special=_stale)

    def heartbeat(self, token: str) -> None:
        self._send("send_task_heartbeat", taskToken=token)

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        self._send("send_task_success", taskToken=token, output=json.dumps(output))

    def fail(self, token: str, error: str, cause: str) -> None:
        self._send("send_task_failure", taskToken=token, error=error[:MAX_ERROR_CHARS],
                   cause=cause[:MAX_CAUSE_CHARS])

"""Answering Step Functions for a callback task: heartbeat, success, failure.

A token Step Functions no longer waits on (it timed out, was already answered, or never
existed) raises ``StaleTaskTokenError``; anything else that goes wrong raises
``RunnerError``, which a caller may retry.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import RunnerError, StaleTaskTokenError

_STALE = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})
MAX_ERROR_CHARS = 256  # SendTaskFailure's limits
MAX_CAUSE_CHARS = 32_768


class TaskTokens:
    def __init__(self, client: Any) -> None:
        self.client = client

    def _send(self, op: str, **params: Any) -> None:
        try:
            getattr(self.client, op)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = str(error.get("Message", ""))
            if code in _STALE:
                raise StaleTaskTokenError(f"{code}: {message}".rstrip(": ")) from None
            raise RunnerError(f"Step Functions {op} failed: {code} {message}".rstrip()) from None
        except BotoCoreError as exc:
            raise RunnerError(f"Step Functions {op} failed: {exc}") from None

    def heartbeat(self, token: str) -> None:
        self._send("send_task_heartbeat", taskToken=token)

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        self._send("send_task_success", taskToken=token, output=json.dumps(output))

    def fail(self, token: str, error: str, cause: str) -> None:
        self._send("send_task_failure", taskToken=token, error=error[:MAX_ERROR_CHARS],
                   cause=cause[:MAX_CAUSE_CHARS])

"""The spot branch's ports: the tile queue, Step Functions' task tokens, the interruption
notice and the one job read, with the two values that cross them.

The spot worker loop (``tilefan.runtimes.spot.worker``) is written against these; the AWS
adapters (SQS, Step Functions, IMDSv2) and the tests' fakes implement them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


# Keyword-only: these records' fields share a type, so a swapped positional pair would
# pass every type check.
@dataclass(frozen=True, kw_only=True)
class QueueMessage:
    """One tile message as received: ``receipt`` is the handle that extends, releases or deletes it."""

    message_id: str
    receipt: str
    body: str
    receive_count: int = 1


@dataclass(frozen=True, kw_only=True)
class SpotNotice:
    """A scheduled interruption: ``action`` is terminate, stop or hibernate."""

    action: str
    time: str


class TileQueue(Protocol):
    def receive(self, wait_s: int, visibility_s: int) -> QueueMessage | None: ...
    def extend(self, message: QueueMessage, visibility_s: int) -> None: ...
    def release(self, message: QueueMessage) -> None: ...
    def delete(self, message: QueueMessage) -> None: ...
    def dead_letter(self, message: QueueMessage, reason: str, worker: str) -> None: ...


class TokenPort(Protocol):
    def heartbeat(self, token: str) -> None: ...
    def succeed(self, token: str, output: dict[str, Any]) -> None: ...
    def fail(self, token: str, error: str, cause: str) -> None: ...


class NoticeSource(Protocol):
    def spot_notice(self) -> SpotNotice | None: ...


class JobLookup(Protocol):
    """The one job-store read the worker makes before it runs a tile."""

    def get_job(self, job_id: str) -> Any: ...

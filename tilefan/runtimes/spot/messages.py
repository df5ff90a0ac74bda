"""How the spot worker reads, answers and moves the queue's messages.

The message a tile arrives in, and the worker's moves on a message: answer its task, hand
its tile back, release it for another worker, delete it, or dead-letter it with the reason
(failing its task first when Step Functions still waits on it, so the job does not wait for
a timeout). The ports these moves go through are in ``tilefan.pipeline.spot_ports``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tilefan.errors import QueueError, RunnerError, StaleTaskTokenError, TilefanError
from tilefan.pipeline import event_fields as fields
from tilefan.pipeline.error_codec import error_cause, state_cause
from tilefan.pipeline.spot_ports import QueueMessage, SpotNotice, TileQueue, TokenPort

logger = logging.getLogger("tilefan.worker")

DEFAULT_HEARTBEAT_S = 60
INTERRUPTED_ERROR = "Spot.Interrupted"  # the state machine retries a tile failed with this
# What became of one message.
DONE, FAILED, DEAD_LETTERED, HANDED_BACK, RELEASED = "done", "failed", "dead-lettered", "handed-back", "released"
BACKED_OFF, ABANDONED = "backed-off", "abandoned"
TIMED_OUT_ERROR = "Tile.TimedOut"  # a tile past the worker's wall-clock limit

# Redelivery after an unexpected error waits 5 s, 10 s, 20 s... (up to 5 minutes) by the
# receive count: a message that trips a bug or an outage does not spin through workers.
BACKOFF_BASE_S, BACKOFF_MAX_S = 5, 300


def redelivery_delay(receive_count: int) -> int:
    """
    >>> [redelivery_delay(n) for n in (1, 2, 3, 10)]
    [5, 10, 20, 300]
    """
    return int(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, receive_count - 1)))


TileFn = Callable[[str, int], bool]
"""Runs one tile (job id, tile id); True when this call recorded it."""


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class TileTask:
    job_id: str
    tile_id: int
    execution_id: str
    token: str
    heartbeat_s: int = DEFAULT_HEARTBEAT_S


def parse_message(body: str) -> TileTask:
    """The tile a message asks for; InvalidSpecError naming the field if it is malformed.

    >>> parse_message('{"job_id": "j1", "tile_id": 3, "execution_id": "arn:x", "task_token": "t", '
    ...               '"heartbeat_seconds": 30}')
    TileTask(job_id='j1', tile_id=3, execution_id='arn:x', token='t', heartbeat_s=30)
    >>> parse_message('{"job_id": "j1", "tile_id": -1, "task_token": "t"}')
    Traceback (most recent call last):
    ...
    tilefan.errors.InvalidSpecError: tile_id: must be an integer >= 0, got -1
    """
    doc = fields.json_object(body, "body")
    token = fields.text(doc, "task_token")
    job_id = fields.text(doc, "job_id")
    tile_id = fields.integer(doc, "tile_id")
    beat = fields.integer(doc, "heartbeat_seconds", minimum=1, default=DEFAULT_HEARTBEAT_S)
    execution = doc.get("execution_id", "")
    return TileTask(job_id=job_id, tile_id=tile_id, execution_id=str(execution), token=token, heartbeat_s=beat)


def token_of(body: str) -> str | None:
    """The task token of a message that is otherwise unusable, if it has a readable one."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    token = doc.get("task_token") if isinstance(doc, Mapping) else None
    return token if isinstance(token, str) and token else None


# --------------------------------------------------------------------------- moves


class Mailbox:
    """The worker's moves on a message. None raises: a move that fails is logged, and the
    queue's own timeouts and redrive policy see the message through."""

    def __init__(self, queue: TileQueue, tokens: TokenPort, worker: str) -> None:
        self.queue = queue
        self.tokens = tokens
        self.worker = worker

    def answer(self, message: QueueMessage, task: TileTask, run: BackgroundTile, log: dict[str, Any]) -> str:
        """Tell Step Functions how the tile went, then delete the message."""
        try:
            if run.error is None:
                output = {"job_id": task.job_id, "tile_id": task.tile_id, "recorded": bool(run.result),
                          "worker": self.worker}
                self.tokens.succeed(task.token, output)
                outcome = DONE
                logger.info("tile done", extra={**log, "recorded": bool(run.result)})
            else:
                self.tokens.fail(task.token, type(run.error).__name__, error_cause(run.error))
                outcome = FAILED
                logger.warning("tile failed", extra={**log, "error": str(run.error)})
        except StaleTaskTokenError as exc:
            return self.dead_letter(message, f"task token expired before the answer: {exc}", None, None)
        except RunnerError as exc:
            # The tile is recorded (or its failure is); another worker will answer for it.
            logger.warning("could not answer Step Functions; releasing the message", extra={**log, "error": str(exc)})
            self.release(message)
            return RELEASED
        self.delete(message)
        return outcome

    def hand_back(self, message: QueueMessage, task: TileTask, notice: SpotNotice | None, log: dict[str, Any]) -> str:
        """Give the tile back to the state machine (which retries it) after an interruption."""
        notice = notice or SpotNotice(action="unknown", time="")
        cause = state_cause(INTERRUPTED_ERROR, f"{self.worker} got a spot interruption notice "
                            f"({notice.action} at {notice.time or 'unknown time'}); tile {task.tile_id} handed back")
        if self._fail_token(message, task, INTERRUPTED_ERROR, cause, log):
            logger.warning("tile handed back", extra=log)
        return HANDED_BACK

    def _fail_token(self, message: QueueMessage, task: TileTask, error: str, cause: str, log: dict[str, Any]) -> bool:
        """Fail the tile's task token and drop its message; if the token cannot be failed,
        release the message instead (Step Functions still waits on that token: let another
        worker pick it up now) and return False."""
        try:
            self.tokens.fail(task.token, error, cause)
        except TilefanError as exc:
            logger.warning("could not fail the tile's token; releasing the message",
                           extra={**log, "error": str(exc), "state_error": error})
            self.release(message)
            return False
        # The token is closed and the state machine's retry sends a fresh message; the old
        # one would only hand out a dead token.
        self.delete(message)
        return True

    def dead_letter(
        self, message: QueueMessage, reason: str, live_token: str | None, exc: BaseException | None
    ) -> str:
        logger.error("dead-lettering a message", extra={"message_id": message.message_id, "reason": reason})
        if live_token is not None and exc is not None:
            try:  # fail the waiting task now rather than after its timeout
                self.tokens.fail(live_token, type(exc).__name__, error_cause(exc))
            except TilefanError as fail_exc:
                logger.warning("could not fail the task", extra={"error": str(fail_exc)})
        try:
            self.queue.dead_letter(message, reason, self.worker)
        except QueueError as exc2:
            # Left in place, it reappears; the redrive policy moves it after a few receives.
            logger.error("could not dead-letter the message", extra={"message_id": message.message_id,
                                                                      "error": str(exc2)})
        return DEAD_LETTERED

    def back_off(self, message: QueueMessage) -> str:
        """Hide the message for a while that grows with its receive count, then it is redelivered."""
        try:
            self.queue.extend(message, redelivery_delay(message.receive_count))
        except QueueError as exc:  # it reappears when its current visibility ends
            logger.warning("could not delay the message", extra={"message_id": message.message_id,
                                                                "error": str(exc)})
        return BACKED_OFF

    def abandon(self, message: QueueMessage, task: TileTask, limit_s: float, log: dict[str, Any]) -> str:
        """Give up on a tile past its wall-clock limit: fail its token, drop its message."""
        cause = state_cause(TIMED_OUT_ERROR, f"{self.worker} abandoned tile {task.tile_id} after {limit_s:g} s")
        if self._fail_token(message, task, TIMED_OUT_ERROR, cause, log):
            logger.error("tile abandoned past its time limit", extra={**log, "limit_s": limit_s})
        return ABANDONED

    def release(self, message: QueueMessage) -> None:
        try:
            self.queue.release(message)
        except QueueError as exc:
            logger.warning("could not release the message", extra={"message_id": message.message_id,
                                                                   "error": str(exc)})

    def delete(self, message: QueueMessage) -> None:
        try:
            self.queue.delete(message)
        except QueueError as exc:
            # It reappears later with a closed token and is dead-lettered then.
            logger.warning("could not delete the message", extra={"message_id": message.message_id,
                                                                  "error": str(exc)})


class BackgroundTile(threading.Thread):
    """Runs the tile off the loop's thread, so the loop can heartbeat and watch for notices.

    A daemon: on an interruption the process exits without waiting for it.
    """

    def __init__(self, fn: Callable[[], bool]) -> None:
        super().__init__(name="tile", daemon=True)
        self._fn = fn
        self.done = threading.Event()
        self.result: bool | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._fn()
        except BaseException as exc:  # reported to Step Functions, whatever it is
            self.error = exc
        finally:
            self.done.set()

"""The spot worker loop that serves the state machine's spot branch (``tilefan worker``).

Each SQS message carries one tile and the Step Functions task token waiting for it. The
worker long-polls the queue, checks the token is still live (a heartbeat), runs the same
tile step as the Lambda (``tilefan.pipeline.tile.run_tile``, with the atoms kernel that
``TILEFAN_KERNEL`` chooses), heartbeats the token and extends the message's visibility
while it computes, then answers Step Functions and deletes the message (``spot.messages``
holds the ports and the moves on a message).

Interruption: a watcher thread polls the spot interruption notice (IMDSv2) every few
seconds. On a notice the worker stops taking work and hands its tile back: it sends
``SendTaskFailure`` with ``Spot.Interrupted`` (the state machine retries the tile, which
sends a fresh message with a fresh token) and deletes the old message, whose token is now
closed; if Step Functions cannot be told, it sets the message's visibility to 0 instead so
that another worker picks up the still-live token. A message received after the notice is
released at once (visibility 0). Then the worker exits cleanly.

Bad input never crashes the loop and is never dropped silently: a malformed message, an
unknown job or tile, or a token Step Functions no longer waits on is logged and moved to
the dead-letter queue with the reason (and the token, if live, is failed so the job does
not wait for a timeout). An unexpected error delays the message's redelivery (its
visibility grows with its receive count); the queue's redrive policy moves a message that
keeps failing to the dead-letter queue.

Nothing waits without a timeout: a tile still computing after ``tile_limit_s`` is
abandoned (its token failed with ``Tile.TimedOut``, its message deleted) and the worker
stops taking work, so its idle instance can end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tilefan.errors import (
    InvalidSpecError,
    JobNotFoundError,
    MetadataError,
    QueueError,
    RunnerError,
    StaleTaskTokenError,
    TilefanError,
)
from tilefan.pipeline.spot_ports import JobLookup, NoticeSource, QueueMessage, SpotNotice
from tilefan.runtimes.spot.messages import (
    RELEASED,
    BackgroundTile,
    Mailbox,
    TileFn,
    TileQueue,
    TileTask,
    TokenPort,
    parse_message,
    token_of,
)

logger = logging.getLogger("tilefan.worker")

MIN_BEAT_S = 0.2
# A token a message has just delivered may not be known yet where the heartbeat lands
# (moto answers InvalidToken for a moment; nothing in AWS promises otherwise): ask again
# after these pauses before calling it stale.
STALE_RECHECK_S = (0.3, 0.6)
WATCH_S = 1.0  # how often a computing worker looks for an interruption

# Why run() returned.
IDLE, INTERRUPTED, STOPPED = "idle", "interrupted", "stopped"


# --------------------------------------------------------------------------- the worker


@dataclass(frozen=True)
class WorkerOptions:
    name: str = "spot:unknown"
    wait_s: int = 20  # SQS long poll
    visibility_s: int = 120  # how long a received message stays hidden; renewed while working
    idle_s: float = 300.0  # stop after this long without a message
    interruption_poll_s: float = 5.0
    # A tile still computing after this long is abandoned: its token is failed (the state
    # machine decides what next) and the worker exits, since a thread cannot be killed.
    tile_limit_s: float = 3600.0


@dataclass
class WorkerStats:
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


@dataclass(kw_only=True, eq=False)
class Worker:
    """Serves the spot branch's queue until it is idle, interrupted or stopped (``run``)."""

    queue: TileQueue
    tokens: TokenPort
    jobs: JobLookup
    tile_fn: TileFn
    notices: NoticeSource
    options: WorkerOptions
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    mailbox: Mailbox = field(init=False)
    stats: WorkerStats = field(init=False, default_factory=WorkerStats)
    notice: SpotNotice | None = field(init=False, default=None)
    _interrupted: threading.Event = field(init=False, default_factory=threading.Event)
    _stopping: threading.Event = field(init=False, default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.mailbox = Mailbox(self.queue, self.tokens, self.options.name)

    # ------------------------------------------------------------------ control

    def interrupt(self, notice: SpotNotice) -> None:
        """Hand back the current tile and exit (a spot notice, or SIGTERM)."""
        if not self._interrupted.is_set():
            self.notice = notice
            self._interrupted.set()
            logger.warning("interruption: handing back work and exiting",
                           extra={"worker": self.options.name, "action": notice.action, "time": notice.time})

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    def stop(self) -> None:
        """Finish the current tile, then return from ``run`` (tests, or a polite shutdown)."""
        self._stopping.set()

    # ------------------------------------------------------------------ loop

    def run(self) -> str:
        """Serve the queue until idle, interrupted or stopped; returns which."""
        watcher = threading.Thread(target=self._watch, name="spot-notice-watcher", daemon=True)
        watcher.start()
        logger.info("worker started", extra={"worker": self.options.name})
        last_work = self.clock()
        try:
            while True:
                if self.interrupted:
                    return INTERRUPTED
                if self._stopping.is_set():
                    return STOPPED
                idle_left = self.options.idle_s - (self.clock() - last_work)
                if idle_left <= 0:
                    logger.info("idle: exiting", extra={"worker": self.options.name, "idle_s": self.options.idle_s})
                    return IDLE
                try:
                    message = self.queue.receive(min(self.options.wait_s, max(1, int(idle_left))),
                                                 self.options.visibility_s)
                except QueueError as exc:
                    logger.warning("receive failed; backing off", extra={"error": str(exc)})
                    self.sleep(1.0)
                    continue
                if message is None:
                    continue
                self.stats.count(self.handle(message))
                last_work = self.clock()
        finally:
            self._stopping.set()  # ends the watcher
            logger.info("worker stopped", extra={"worker": self.options.name, "outcomes": self.stats.outcomes})

    def _watch(self) -> None:
        """Poll the interruption notice until the loop ends (or a notice arrives)."""
        warned = False
        while not self._stopping.is_set() and not self.interrupted:
            try:
                notice = self.notices.spot_notice()
            except MetadataError as exc:
                if not warned:  # off EC2, or IMDS down: keep trying, say so once
                    logger.warning("cannot read the spot interruption notice", extra={"error": str(exc)})
                    warned = True
                notice = None
            if notice is not None:
                self.interrupt(notice)
                return
            self._stopping.wait(self.options.interruption_poll_s)

    # ------------------------------------------------------------------ one message

    def handle(self, message: QueueMessage) -> str:
        """Do what ``message`` asks and answer for it; returns the outcome, never raises."""
        try:
            return self._handle(message)
        except Exception:  # a bug or an outage we did not foresee: the message must survive it
            logger.exception("unexpected error; delaying the message's redelivery",
                             extra={"message_id": message.message_id, "receive_count": message.receive_count})
            return self.mailbox.back_off(message)

    def _handle(self, message: QueueMessage) -> str:
        log = {"message_id": message.message_id, "receive_count": message.receive_count}
        try:
            task = parse_message(message.body)
        except InvalidSpecError as exc:
            return self.mailbox.dead_letter(message, f"malformed message: {exc}", token_of(message.body), exc)
        log.update(job_id=task.job_id, tile_id=task.tile_id)
        if self.interrupted:  # took it just as the notice came: not ours to start
            self.mailbox.release(message)
            return RELEASED
        try:
            self._first_heartbeat(task.token)
        except StaleTaskTokenError as exc:
            return self.mailbox.dead_letter(message, f"expired task token: {exc}", None, None)
        except RunnerError as exc:
            logger.warning("cannot reach Step Functions; releasing the message", extra={**log, "error": str(exc)})
            self.mailbox.release(message)
            self.sleep(1.0)
            return RELEASED
        try:
            self._check_tile(task)
        except (JobNotFoundError, InvalidSpecError) as exc:
            return self.mailbox.dead_letter(message, f"bad tile: {exc}", task.token, exc)
        except TilefanError as exc:  # the job store is unavailable: let another try later
            logger.warning("cannot read the job; releasing the message", extra={**log, "error": str(exc)})
            self.mailbox.release(message)
            self.sleep(1.0)
            return RELEASED
        if self.interrupted:  # the notice came while we checked: hand it on untouched
            self.mailbox.release(message)
            return RELEASED
        logger.info("tile started", extra=log)
        return self._compute(message, task, log)

    def _first_heartbeat(self, token: str) -> None:
        """Is Step Functions still waiting on this token? StaleTaskTokenError if not."""
        for pause in (*STALE_RECHECK_S, None):
            try:
                self.tokens.heartbeat(token)
                return
            except StaleTaskTokenError:
                if pause is None:
                    raise
                self.sleep(pause)

    def _check_tile(self, task: TileTask) -> None:
        record = self.jobs.get_job(task.job_id)
        total = int(getattr(record, "tiles_total", 0))
        if task.tile_id >= total:
            raise InvalidSpecError("tile_id", f"job {task.job_id} has {total} tiles; there is no tile {task.tile_id}")

    def _compute(self, message: QueueMessage, task: TileTask, log: dict[str, Any]) -> str:
        run = BackgroundTile(lambda: self.tile_fn(task.job_id, task.tile_id))
        run.start()
        beat = max(MIN_BEAT_S, min(task.heartbeat_s, self.options.visibility_s) / 3)
        started = self.clock()
        limit = self.options.tile_limit_s
        next_beat = started + beat
        # Wake often enough to act on a notice within a second, beat every third of the
        # heartbeat timeout (or of the visibility timeout, if that is shorter).
        while not run.done.wait(min(beat, WATCH_S)):
            if self.interrupted:
                return self.mailbox.hand_back(message, task, self.notice, log)
            if self.clock() - started > limit:
                self.stop()  # the tile's thread may never end: take no more work, let the process exit
                return self.mailbox.abandon(message, task, limit, log)
            if self.clock() < next_beat:
                continue
            next_beat = self.clock() + beat
            try:
                self.tokens.heartbeat(task.token)
            except StaleTaskTokenError as exc:
                # Step Functions gave up on this attempt (and retried the tile elsewhere).
                # Never two tiles in memory at once: wait for this one, up to its limit.
                if not run.done.wait(max(0.0, limit - (self.clock() - started))):
                    self.stop()
                return self.mailbox.dead_letter(message, f"task token expired while computing: {exc}", None, None)
            except RunnerError as exc:
                logger.warning("heartbeat failed; will retry", extra={**log, "error": str(exc)})
            try:
                self.queue.extend(message, self.options.visibility_s)
            except QueueError as exc:
                logger.warning("could not extend the message's visibility", extra={**log, "error": str(exc)})
        if self.interrupted and run.error is not None:
            # It may have failed because the machine is going down: let another worker try.
            return self.mailbox.hand_back(message, task, self.notice, log)
        return self.mailbox.answer(message, task, run, log)

"""``tilefan worker``: the spot worker loop that serves the state machine's spot branch.

Each SQS message carries one tile and the Step Functions task token waiting for it. The
worker long-polls the queue, checks the token is still live (a heartbeat), runs the same
tile step as the Lambda (``steps.run_tile``, with the compiled atoms kernel when numba is
installed), heartbeats the token and extends the message's visibility while it computes,
then answers Step Functions and deletes the message.

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
not wait for a timeout). An unexpected error releases the message; the queue's redrive
policy moves a message that keeps failing to the dead-letter queue.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tilefan.adapters.aws.imds import SpotNotice
from tilefan.adapters.aws.sqs_queue import QueueMessage
from tilefan.errors import (
    InvalidSpecError,
    JobNotFoundError,
    MetadataError,
    QueueError,
    RunnerError,
    StaleTaskTokenError,
    TilefanError,
)

logger = logging.getLogger("tilefan.worker")

INTERRUPTED_ERROR = "Spot.Interrupted"
DEFAULT_HEARTBEAT_S = 60
MIN_BEAT_S = 0.2
# A token a message has just delivered may not be known yet where the heartbeat lands
# (moto answers InvalidToken for a moment; nothing in AWS promises otherwise): ask again
# after these pauses before calling it stale.
STALE_RECHECK_S = (0.3, 0.6)
WATCH_S = 1.0  # how often a computing worker looks for an interruption

# Why run() returned.
IDLE, INTERRUPTED, STOPPED = "idle", "interrupted", "stopped"
# What became of one message.
DONE, FAILED, DEAD_LETTERED, HANDED_BACK, RELEASED = "done", "failed", "dead-lettered", "handed-back", "released"


# --------------------------------------------------------------------------- ports


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
    try:
        doc = json.loads(body)
    except ValueError:
        raise InvalidSpecError("body", f"is not JSON: {body[:80]!r}") from None
    if not isinstance(doc, Mapping):
        raise InvalidSpecError("body", f"must be a JSON object, got {type(doc).__name__}")
    token = _text(doc, "task_token")
    job_id = _text(doc, "job_id")
    tile_id = doc.get("tile_id")
    if isinstance(tile_id, bool) or not isinstance(tile_id, int) or tile_id < 0:
        raise InvalidSpecError("tile_id", f"must be an integer >= 0, got {tile_id!r}")
    beat = doc.get("heartbeat_seconds", DEFAULT_HEARTBEAT_S)
    if isinstance(beat, bool) or not isinstance(beat, int) or beat < 1:
        raise InvalidSpecError("heartbeat_seconds", f"must be an integer >= 1, got {beat!r}")
    execution = doc.get("execution_id", "")
    return TileTask(job_id=job_id, tile_id=tile_id, execution_id=str(execution), token=token, heartbeat_s=beat)


def _text(doc: Mapping[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidSpecError(name, f"must be a non-empty string, got {value!r}")
    return value


def token_of(body: str) -> str | None:
    """The task token of a message that is otherwise unusable, if it has a readable one."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    token = doc.get("task_token") if isinstance(doc, Mapping) else None
    return token if isinstance(token, str) and token else None


def error_cause(exc: BaseException) -> str:
    """A Cause in the Lambda runtime's shape, so ``lambdas.error_from_state`` reads both alike.

    >>> error_cause(JobNotFoundError("j9"))
    '{"errorType": "JobNotFoundError", "errorMessage": "no job with id \\'j9\\'"}'
    """
    return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)})


# --------------------------------------------------------------------------- the worker


@dataclass(frozen=True)
class WorkerOptions:
    name: str = "spot:unknown"
    wait_s: int = 20  # SQS long poll
    visibility_s: int = 120  # how long a received message stays hidden; renewed while working
    idle_s: float = 300.0  # stop after this long without a message
    interruption_poll_s: float = 5.0


@dataclass
class WorkerStats:
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class Worker:
    def __init__(
        self, *, queue: TileQueue, tokens: TokenPort, jobs: JobLookup, tile_fn: TileFn, notices: NoticeSource,
        options: WorkerOptions, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.queue = queue
        self.tokens = tokens
        self.jobs = jobs
        self.tile_fn = tile_fn
        self.notices = notices
        self.options = options
        self.clock = clock
        self.sleep = sleep
        self.stats = WorkerStats()
        self.notice: SpotNotice | None = None
        self._interrupted = threading.Event()
        self._stopping = threading.Event()

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
            logger.exception("unexpected error; releasing the message", extra={"message_id": message.message_id})
            self._release(message)
            return RELEASED

    def _handle(self, message: QueueMessage) -> str:
        log = {"message_id": message.message_id, "receive_count": message.receive_count}
        try:
            task = parse_message(message.body)
        except InvalidSpecError as exc:
            return self._dead_letter(message, f"malformed message: {exc}", token_of(message.body), exc)
        log.update(job_id=task.job_id, tile_id=task.tile_id)
        if self.interrupted:  # took it just as the notice came: not ours to start
            self._release(message)
            return RELEASED
        try:
            self._first_heartbeat(task.token)
        except StaleTaskTokenError as exc:
            return self._dead_letter(message, f"expired task token: {exc}", None, None)
        except RunnerError as exc:
            logger.warning("cannot reach Step Functions; releasing the message", extra={**log, "error": str(exc)})
            self._release(message)
            self.sleep(1.0)
            return RELEASED
        try:
            self._check_tile(task)
        except (JobNotFoundError, InvalidSpecError) as exc:
            return self._dead_letter(message, f"bad tile: {exc}", task.token, exc)
        except TilefanError as exc:  # the job store is unavailable: let another try later
            logger.warning("cannot read the job; releasing the message", extra={**log, "error": str(exc)})
            self._release(message)
            self.sleep(1.0)
            return RELEASED
        if self.interrupted:  # the notice came while we checked: hand it on untouched
            self._release(message)
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
        run = _Background(lambda: self.tile_fn(task.job_id, task.tile_id))
        run.start()
        beat = max(MIN_BEAT_S, min(task.heartbeat_s, self.options.visibility_s) / 3)
        next_beat = self.clock() + beat
        # Wake often enough to act on a notice within a second, beat every third of the
        # heartbeat timeout (or of the visibility timeout, if that is shorter).
        while not run.done.wait(min(beat, WATCH_S)):
            if self.interrupted:
                return self._hand_back(message, task, log)
            if self.clock() < next_beat:
                continue
            next_beat = self.clock() + beat
            try:
                self.tokens.heartbeat(task.token)
            except StaleTaskTokenError as exc:
                # Step Functions gave up on this attempt (and retried the tile elsewhere).
                run.done.wait()  # never two tiles in memory at once
                return self._dead_letter(message, f"task token expired while computing: {exc}", None, None)
            except RunnerError as exc:
                logger.warning("heartbeat failed; will retry", extra={**log, "error": str(exc)})
            try:
                self.queue.extend(message, self.options.visibility_s)
            except QueueError as exc:
                logger.warning("could not extend the message's visibility", extra={**log, "error": str(exc)})
        if self.interrupted and run.error is not None:
            # It may have failed because the machine is going down: let another worker try.
            return self._hand_back(message, task, log)
        return self._report(message, task, run, log)

    def _report(self, message: QueueMessage, task: TileTask, run: _Background, log: dict[str, Any]) -> str:
        try:
            if run.error is None:
                output = {"job_id": task.job_id, "tile_id": task.tile_id, "recorded": bool(run.result),
                          "worker": self.options.name}
                self.tokens.succeed(task.token, output)
                outcome = DONE
                logger.info("tile done", extra={**log, "recorded": bool(run.result)})
            else:
                self.tokens.fail(task.token, type(run.error).__name__, error_cause(run.error))
                outcome = FAILED
                logger.warning("tile failed", extra={**log, "error": str(run.error)})
        except StaleTaskTokenError as exc:
            return self._dead_letter(message, f"task token expired before the answer: {exc}", None, None)
        except RunnerError as exc:
            # The tile is recorded (or its failure is); another worker will answer for it.
            logger.warning("could not answer Step Functions; releasing the message", extra={**log, "error": str(exc)})
            self._release(message)
            return RELEASED
        self._delete(message)
        return outcome

    def _hand_back(self, message: QueueMessage, task: TileTask, log: dict[str, Any]) -> str:
        notice = self.notice or SpotNotice("unknown", "")
        cause = json.dumps({"errorType": INTERRUPTED_ERROR, "errorMessage":
                            f"{self.options.name} got a spot interruption notice ({notice.action} at "
                            f"{notice.time or 'unknown time'}); tile {task.tile_id} handed back"})
        try:
            self.tokens.fail(task.token, INTERRUPTED_ERROR, cause)
        except TilefanError as exc:
            # Step Functions still waits on this token: let another worker pick it up now.
            logger.warning("could not hand the tile back; releasing the message", extra={**log, "error": str(exc)})
            self._release(message)
            return HANDED_BACK
        # The token is closed and the state machine's retry sends a fresh message; the old
        # one would only hand out a dead token.
        self._delete(message)
        logger.warning("tile handed back", extra=log)
        return HANDED_BACK

    # ------------------------------------------------------------------ queue moves

    def _dead_letter(
        self, message: QueueMessage, reason: str, live_token: str | None, exc: BaseException | None
    ) -> str:
        logger.error("dead-lettering a message", extra={"message_id": message.message_id, "reason": reason})
        if live_token is not None and exc is not None:
            try:  # fail the waiting task now rather than after its timeout
                self.tokens.fail(live_token, type(exc).__name__, error_cause(exc))
            except TilefanError as fail_exc:
                logger.warning("could not fail the task", extra={"error": str(fail_exc)})
        try:
            self.queue.dead_letter(message, reason, self.options.name)
        except QueueError as exc2:
            # Left in place, it reappears; the redrive policy moves it after a few receives.
            logger.error("could not dead-letter the message", extra={"message_id": message.message_id,
                                                                      "error": str(exc2)})
        return DEAD_LETTERED

    def _release(self, message: QueueMessage) -> None:
        try:
            self.queue.release(message)
        except QueueError as exc:
            logger.warning("could not release the message", extra={"message_id": message.message_id,
                                                                   "error": str(exc)})

    def _delete(self, message: QueueMessage) -> None:
        try:
            self.queue.delete(message)
        except QueueError as exc:
            # It reappears later with a closed token and is dead-lettered then.
            logger.warning("could not delete the message", extra={"message_id": message.message_id,
                                                                  "error": str(exc)})


class _Background(threading.Thread):
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


# --------------------------------------------------------------------------- the command

_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line, with the ``extra`` fields (job, tile, reason...) kept.

    >>> record = logging.LogRecord("tilefan.worker", logging.INFO, "", 0, "tile done", None, None)
    >>> record.tile_id = 3
    >>> JsonLogFormatter().format(record).endswith('"message": "tile done", "tile_id": 3}')
    True
    """

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"time": self.formatTime(record), "level": record.levelname,
                               "logger": record.name, "message": record.getMessage()}
        doc.update((k, v) for k, v in vars(record).items() if k not in _RECORD_FIELDS)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)



def cli_main(args: Any) -> int:
    """``tilefan worker``: build the worker from configuration and serve until idle or interrupted.

    SIGTERM (systemd stopping the service, the instance shutting down) is treated like an
    interruption notice: the current tile is handed back and the worker exits 0.
    """
    import signal
    import sys
    from dataclasses import replace

    from tilefan import bootstrap

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        settings = bootstrap.aws_settings()
        if args.idle_seconds is not None:
            if args.idle_seconds < 1:
                raise InvalidSpecError("--idle-seconds", f"must be at least 1, got {args.idle_seconds}")
            settings = replace(settings, spot=replace(settings.spot, idle_s=args.idle_seconds))
        worker = bootstrap.build_worker(settings, kernel=bootstrap.load_config().kernel, name=args.name)
    except InvalidSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda signum, frame: worker.interrupt(SpotNotice("sigterm", "")))
    reason = worker.run()
    print(f"tilefan worker {worker.options.name}: {reason}; {worker.stats.outcomes}", file=sys.stderr)
    return 0

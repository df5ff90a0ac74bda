"""The spot worker's decisions, over in-memory fakes of the queue, the task tokens, the job
store and the metadata service (no I/O, no AWS): what it answers, when it heartbeats, what
it dead-letters, and how it hands a tile back on an interruption."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.helpers import wait_until
from tilefan import errors
from tilefan.pipeline.spot_ports import QueueMessage, SpotNotice
from tilefan.runtimes.spot.messages import (
    ABANDONED,
    BACKED_OFF,
    DEAD_LETTERED,
    DONE,
    FAILED,
    HANDED_BACK,
    RELEASED,
    TIMED_OUT_ERROR,
    parse_message,
)
from tilefan.runtimes.spot.worker import IDLE, INTERRUPTED, Worker, WorkerOptions

DEADLINE_S = 10.0


def body(**changes: Any) -> str:
    doc = {"job_id": "job1", "tile_id": 1, "execution_id": "arn:x", "heartbeat_seconds": 1, "task_token": "tok",
           **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not None})


def message(text: str, n: int = 1) -> QueueMessage:
    return QueueMessage(message_id=f"m{n}", receipt=f"r{n}", body=text)


# --------------------------------------------------------------------------- fakes


@dataclass
class FakeQueue:
    inbox: list[QueueMessage] = field(default_factory=list)
    moves: list[tuple[str, str]] = field(default_factory=list)  # (move, message id)
    reasons: list[str] = field(default_factory=list)
    fail_on: set[str] = field(default_factory=set)
    visibilities: list[int] = field(default_factory=list)  # what each extend asked for

    def _do(self, move: str, m: QueueMessage) -> None:
        if move in self.fail_on:
            raise errors.QueueError(f"injected: {move} failed")
        self.moves.append((move, m.message_id))

    def receive(self, wait_s: int, visibility_s: int) -> QueueMessage | None:
        if "receive" in self.fail_on:
            raise errors.QueueError("injected: receive failed")
        return self.inbox.pop(0) if self.inbox else None

    def extend(self, m: QueueMessage, visibility_s: int) -> None:
        self._do("extend", m)
        self.visibilities.append(visibility_s)

    def release(self, m: QueueMessage) -> None:
        self._do("release", m)

    def delete(self, m: QueueMessage) -> None:
        self._do("delete", m)

    def dead_letter(self, m: QueueMessage, reason: str, worker: str) -> None:
        self._do("dead_letter", m)
        self.reasons.append(reason)


@dataclass
class FakeTokens:
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    stale: set[str] = field(default_factory=set)  # tokens Step Functions no longer waits on
    down: bool = False
    refused: int = 0  # calls refused for a stale token

    def _call(self, op: str, token: str, detail: Any = None) -> None:
        if self.down:
            raise errors.RunnerError("injected: Step Functions unreachable")
        if token in self.stale:
            self.refused += 1
            raise errors.StaleTaskTokenError("TaskTimedOut: injected")
        self.calls.append((op, token, detail))

    def heartbeat(self, token: str) -> None:
        self._call("heartbeat", token)

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        self._call("succeed", token, output)

    def fail(self, token: str, error: str, cause: str) -> None:
        self._call("fail", token, (error, json.loads(cause)))

    def ops(self) -> list[str]:
        return [c[0] for c in self.calls]


@dataclass
class Job:
    tiles_total: int = 4


class FakeJobs:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def get_job(self, job_id: str) -> Job:
        if self.error is not None:
            raise self.error
        if job_id != "job1":
            raise errors.JobNotFoundError(job_id)
        return Job()


class Notices:
    def __init__(self) -> None:
        self.notice: SpotNotice | None = None
        self.error: Exception | None = None

    def spot_notice(self) -> SpotNotice | None:
        if self.error is not None:
            raise self.error
        return self.notice


def make(
    tile_fn: Callable[[str, int], bool] = lambda job, tile: True, *, queue: FakeQueue | None = None,
    tokens: FakeTokens | None = None, jobs: Any = None, notices: Notices | None = None,
    clock: Callable[[], float] = time.monotonic, idle_s: float = 60.0, tile_limit_s: float = 3600.0,
) -> Worker:
    return Worker(
        queue=queue or FakeQueue(), tokens=tokens or FakeTokens(), jobs=jobs or FakeJobs(), tile_fn=tile_fn,
        notices=notices or Notices(), options=WorkerOptions(name="spot:test", wait_s=1, visibility_s=30,
                                                            idle_s=idle_s, interruption_poll_s=0.01,
                                                            tile_limit_s=tile_limit_s),
        clock=clock, sleep=lambda s: None,
    )


# --------------------------------------------------------------------------- messages


@pytest.mark.parametrize(("text", "field"), [
    ("not json", "body"),
    ("[1, 2]", "body"),
    (body(task_token=None), "task_token"),
    (body(task_token=""), "task_token"),
    (body(job_id=7), "job_id"),
    (body(tile_id="3"), "tile_id"),
    (body(tile_id=True), "tile_id"),
    (body(heartbeat_seconds=0), "heartbeat_seconds"),
])
def test_a_malformed_message_names_its_field(text: str, field: str) -> None:
    with pytest.raises(errors.InvalidSpecError) as info:
        parse_message(text)
    assert info.value.field == field


# --------------------------------------------------------------------------- one message


def test_a_tile_is_run_answered_and_deleted() -> None:
    tokens, queue, ran = FakeTokens(), FakeQueue(), []
    worker = make(lambda job, tile: ran.append((job, tile)) or True, tokens=tokens, queue=queue)
    assert worker.handle(message(body())) == DONE
    assert ran == [("job1", 1)]
    # A heartbeat first (is the token live?), then the answer, then the message goes.
    assert tokens.ops() == ["heartbeat", "succeed"]
    assert tokens.calls[1][2] == {"job_id": "job1", "tile_id": 1, "recorded": True, "worker": "spot:test"}
    assert queue.moves == [("delete", "m1")]


def test_a_slow_tile_heartbeats_and_keeps_its_message_hidden() -> None:
    tokens, queue = FakeTokens(), FakeQueue()
    # Heartbeat timeout 1 s: the worker beats every third of it while the tile computes.
    worker = make(lambda job, tile: wait_until(lambda: tokens.ops().count("heartbeat") >= 3, "three heartbeats",
                                               DEADLINE_S), tokens=tokens, queue=queue)
    assert worker.handle(message(body())) == DONE
    assert tokens.ops()[-1] == "succeed"
    assert ("extend", "m1") in queue.moves and queue.moves[-1] == ("delete", "m1")


def test_a_failing_tile_is_reported_with_its_error_type_like_a_lambda() -> None:
    tokens, queue = FakeTokens(), FakeQueue()

    def broken(job: str, tile: int) -> bool:
        raise errors.TileFailedError(tile, "the potential is infinite")

    assert make(broken, tokens=tokens, queue=queue).handle(message(body())) == FAILED
    op, _, (error, cause) = tokens.calls[-1]
    assert (op, error) == ("fail", "TileFailedError")
    assert cause == {"errorType": "TileFailedError", "errorMessage": "tile 1: the potential is infinite"}
    assert queue.moves == [("delete", "m1")]


@pytest.mark.parametrize("text", ["{", body(tile_id=-2), body(task_token=None)])
def test_a_malformed_message_is_dead_lettered_not_run(text: str) -> None:
    queue, ran = FakeQueue(), []
    worker = make(lambda job, tile: ran.append(tile) or True, queue=queue)
    assert worker.handle(message(text)) == DEAD_LETTERED
    assert not ran and queue.moves == [("dead_letter", "m1")]
    assert queue.reasons[0].startswith("malformed message: ")


def test_a_malformed_message_with_a_live_token_fails_that_task_too() -> None:
    tokens, queue = FakeTokens(), FakeQueue()
    assert make(tokens=tokens, queue=queue).handle(message(body(tile_id="x"))) == DEAD_LETTERED
    assert tokens.calls == [("fail", "tok", ("InvalidSpecError", {
        "errorType": "InvalidSpecError", "errorMessage": "tile_id: must be an integer >= 0, got 'x'"}))]


def test_an_expired_token_is_dead_lettered_before_any_work() -> None:
    tokens, queue, ran = FakeTokens(stale={"tok"}), FakeQueue(), []
    worker = make(lambda job, tile: ran.append(tile) or True, tokens=tokens, queue=queue)
    assert worker.handle(message(body())) == DEAD_LETTERED
    assert not ran and queue.moves == [("dead_letter", "m1")]
    assert queue.reasons == ["expired task token: TaskTimedOut: injected"]
    assert tokens.refused == 3  # asked three times, in case the token was not known yet


def test_a_token_not_known_at_the_first_heartbeat_gets_another_chance() -> None:
    tokens, queue = FakeTokens(stale={"tok"}), FakeQueue()
    pauses: list[float] = []
    worker = make(tokens=tokens, queue=queue)

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        tokens.stale.clear()  # Step Functions catches up

    worker.sleep = sleep
    assert worker.handle(message(body())) == DONE
    assert pauses == [0.3] and queue.moves == [("delete", "m1")]


@pytest.mark.parametrize(("text", "reason"), [
    (body(job_id="nosuchjob"), "bad tile: no job with id 'nosuchjob'"),
    (body(tile_id=4), "bad tile: tile_id: job job1 has 4 tiles; there is no tile 4"),
])
def test_an_unknown_job_or_tile_fails_the_task_and_is_dead_lettered(text: str, reason: str) -> None:
    tokens, queue, ran = FakeTokens(), FakeQueue(), []
    worker = make(lambda job, tile: ran.append(tile) or True, tokens=tokens, queue=queue)
    assert worker.handle(message(text)) == DEAD_LETTERED
    assert not ran and queue.reasons == [reason]
    assert tokens.ops() == ["heartbeat", "fail"]  # the execution fails now, not at its timeout


def test_an_unreachable_step_functions_or_job_store_releases_the_message_for_later() -> None:
    queue = FakeQueue()
    assert make(tokens=FakeTokens(down=True), queue=queue).handle(message(body())) == RELEASED
    assert make(jobs=FakeJobs(errors.StoreError("throttled")), queue=queue).handle(message(body(), 2)) == RELEASED
    assert queue.moves == [("release", "m1"), ("release", "m2")]


def test_a_token_that_expires_mid_tile_is_dead_lettered_once_the_tile_ends() -> None:
    tokens, queue = FakeTokens(), FakeQueue()
    done = threading.Event()

    def slow(job: str, tile: int) -> bool:
        tokens.stale.add("tok")  # Step Functions gives up on this attempt meanwhile
        wait_until(lambda: tokens.refused == 1, "a refused heartbeat", DEADLINE_S)  # the worker's next one learns it
        done.set()
        return True

    assert make(slow, tokens=tokens, queue=queue).handle(message(body())) == DEAD_LETTERED
    assert done.is_set()  # it waited for the computation: never two tiles in memory
    assert "succeed" not in tokens.ops()
    assert queue.reasons[0].startswith("task token expired while computing")


def test_an_unexpected_error_delays_redelivery_more_each_time_and_the_worker_carries_on() -> None:
    queue = FakeQueue()
    worker = make(jobs=FakeJobs(RuntimeError("a bug")), queue=queue)
    for count in (1, 2, 3, 20):
        m = QueueMessage(message_id="m1", receipt="r1", body=body(), receive_count=count)
        assert worker.handle(m) == BACKED_OFF
    assert queue.moves == [("extend", "m1")] * 4
    assert queue.visibilities == [5, 10, 20, 300]


def test_a_tile_past_its_time_limit_is_abandoned_its_token_failed_and_the_worker_stops() -> None:
    tokens, queue = FakeTokens(), FakeQueue()
    gate = threading.Event()
    worker = make(lambda job, tile: gate.wait(DEADLINE_S), tokens=tokens, queue=queue, tile_limit_s=0.2)
    try:
        assert worker.handle(message(body())) == ABANDONED
    finally:
        gate.set()
    fails = [c for c in tokens.calls if c[0] == "fail"]
    assert [f[2][0] for f in fails] == [TIMED_OUT_ERROR]
    assert queue.moves[-1] == ("delete", "m1")
    queue.inbox.append(message(body(), 2))
    assert worker.run() == "stopped" and queue.inbox, "it took more work after abandoning a tile"


def test_if_the_dead_letter_queue_refuses_the_message_stays_for_the_redrive_policy() -> None:
    queue = FakeQueue(fail_on={"dead_letter"})
    assert make(queue=queue).handle(message("{")) == DEAD_LETTERED
    assert queue.moves == []  # neither moved nor deleted: it reappears, and SQS redrives it


# --------------------------------------------------------------------------- interruption


def test_an_interruption_mid_tile_hands_the_tile_back_and_deletes_the_closed_message() -> None:
    tokens, queue = FakeTokens(), FakeQueue()
    gate = threading.Event()
    late = make(tokens=tokens, queue=queue)
    late.interrupt(SpotNotice(action="terminate", time="2026-01-01T00:00:00Z"))
    assert late.handle(message(body())) == RELEASED  # received after the notice: not started
    assert tokens.calls == []
    worker = make(lambda job, tile: gate.wait(DEADLINE_S), tokens=tokens, queue=queue)
    try:
        result: list[str] = []
        thread = threading.Thread(target=lambda: result.append(worker.handle(message(body(), 2))))
        thread.start()
        wait_until(lambda: "heartbeat" in tokens.ops(), "a heartbeat", DEADLINE_S)
        worker.interrupt(SpotNotice(action="terminate", time="2026-01-01T00:00:00Z"))
        thread.join(DEADLINE_S)
        assert result == [HANDED_BACK]  # without waiting for the computation
    finally:
        gate.set()
    op, _, (error, cause) = tokens.calls[-1]
    assert (op, error) == ("fail", "Spot.Interrupted")
    assert "terminate at 2026-01-01T00:00:00Z" in cause["errorMessage"]
    assert queue.moves == [("release", "m1"), ("delete", "m2")]


def test_if_the_hand_back_cannot_reach_step_functions_the_message_is_released() -> None:
    tokens, queue = FakeTokens(), FakeQueue()
    gate = threading.Event()
    worker = make(lambda job, tile: gate.wait(DEADLINE_S), tokens=tokens, queue=queue)
    try:
        result: list[str] = []
        thread = threading.Thread(target=lambda: result.append(worker.handle(message(body()))))
        thread.start()
        wait_until(lambda: "heartbeat" in tokens.ops(), "a heartbeat", DEADLINE_S)
        tokens.down = True
        worker.interrupt(SpotNotice(action="terminate", time=""))
        thread.join(DEADLINE_S)
    finally:
        gate.set()
    # Its token is still live: visibility 0 lets another worker pick it up at once.
    assert result == [HANDED_BACK] and queue.moves == [("release", "m1")]


# --------------------------------------------------------------------------- the loop


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.5  # every look at the clock is half a second later
        return self.now


def test_the_loop_serves_messages_then_stops_when_idle() -> None:
    queue = FakeQueue(inbox=[message(body(), 1), message("{", 2), message(body(tile_id=2), 3)])
    worker = make(queue=queue, clock=FakeClock(), idle_s=5.0)
    assert worker.run() == IDLE
    assert worker.stats.outcomes == {DONE: 2, DEAD_LETTERED: 1}


def test_the_loop_survives_queue_and_metadata_errors() -> None:
    queue, notices = FakeQueue(fail_on={"receive"}), Notices()
    notices.error = errors.MetadataError("not on EC2")
    worker = make(queue=queue, notices=notices, clock=FakeClock(), idle_s=3.0)
    assert worker.run() == IDLE


def test_a_notice_stops_the_loop() -> None:
    notices = Notices()
    notices.notice = SpotNotice(action="terminate", time="soon")
    worker = make(notices=notices, idle_s=DEADLINE_S)
    assert worker.run() == INTERRUPTED
    assert worker.notice == SpotNotice(action="terminate", time="soon")

"""The embedded scheduler's decisions, fed events by hand: no store, no clock, no process."""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pytest

from tilefan.errors import InvalidSpecError, StoreError
from tilefan.runtimes.embedded import scheduler_state as machine
from tilefan.runtimes.embedded.scheduler_decide import decide, queue_limit, wait_timeout
from tilefan.runtimes.embedded.scheduler_parts import RetryPolicy

OPEN, PLAN, REDUCE, FAIL = machine.Act.OPEN, machine.Act.PLAN, machine.Act.REDUCE, machine.Act.FAIL
QUEUED, ENDED, UNREADABLE = machine.Found.QUEUED, machine.Found.ENDED, machine.Found.UNREADABLE


def kernel(*_: Any) -> None:
    """Stands for an atoms kernel: the decisions only carry it to the tiles."""


def state(workers: int = 2, max_jobs: int = 2, *, in_pool: bool = False, only: set[str] | None = None) -> machine.State:
    return machine.State(workers, max_jobs, RetryPolicy(max_attempts=3, backoff_s=0.2), in_pool,
                 None if only is None else frozenset(only))


def running(s: machine.State, job_id: str, tiles: int, *,
            done: set[int] | frozenset[int] = frozenset()) -> list[machine.Action]:
    """Admit ``job_id`` as a RUNNING job of ``tiles`` tiles, ``done`` of them recorded."""
    assert decide(s, machine.Admit((job_id,))) == [machine.JobAction(OPEN, job_id)]
    todo = tuple((t, "local") for t in range(tiles) if t not in done)
    return decide(s, machine.FoundRunning(job_id, todo, kernel))


def tile_ended(job_id: str, tile_id: int, error: BaseException | None, now: float) -> machine.Ended:
    """A tile of ``running``'s (routed "local") ended."""
    return machine.Ended(machine.RunTile(job_id, tile_id, "local", kernel, False), error, now)


def step_ended(step: machine.Act, job_id: str, error: BaseException | None, *,
               job_ended: bool = False) -> machine.Ended:
    return machine.Ended(machine.JobAction(step, job_id), error, job_ended=job_ended)


def tiles_of(actions: list[machine.Action]) -> list[tuple[str, int]]:
    return [(a.job_id, a.tile_id) for a in actions if isinstance(a, machine.RunTile)]


def test_a_queued_job_is_opened_then_planned_and_its_plan_takes_a_pool_slot() -> None:
    s = state(workers=2, in_pool=True)
    assert decide(s, machine.Admit(("a",))) == [machine.JobAction(OPEN, "a")]
    assert decide(s, machine.JobFound("a", QUEUED)) == []
    assert decide(s, machine.Fill(0.0)) == [machine.JobAction(PLAN, "a")]
    assert s.used_slots() == 1 and s.holds("a")
    # Planned: the job is read again, now RUNNING, and its tiles start.
    assert decide(s, step_ended(PLAN, "a", None)) == [machine.JobAction(OPEN, "a")]
    decide(s, machine.FoundRunning("a", ((0, "local"), (1, "lambda")), kernel))
    assert decide(s, machine.Fill(0.0)) == [
        machine.RunTile("a", 0, "local", kernel, False), machine.RunTile("a", 1, "lambda", kernel, False)]


def test_tiles_are_dispatched_one_per_worker_round_robin_over_the_jobs() -> None:
    s = state(workers=3, max_jobs=2)
    running(s, "big", 10)
    running(s, "small", 2)
    assert tiles_of(decide(s, machine.Fill(0.0))) == [("big", 0), ("small", 0), ("big", 1)]
    assert decide(s, machine.Fill(0.0)) == [], "every worker is busy"
    assert tiles_of(decide(s, tile_ended("big", 0, None, 0.0)) + decide(s, machine.Fill(0.0))) == [("small", 1)]


def test_one_worker_runs_tiles_inline_and_so_does_a_job_marked_inline() -> None:
    s = state(workers=1)
    running(s, "a", 2)
    assert [a.inline for a in decide(s, machine.Fill(0.0)) if isinstance(a, machine.RunTile)] == [True]
    s = state(workers=2, only={"b"})
    decide(s, machine.Admit(("b",)))
    decide(s, machine.FoundRunning("b", ((0, "local"), (1, "local")), kernel, inline=True))
    assert [a.inline for a in decide(s, machine.Fill(0.0)) if isinstance(a, machine.RunTile)] == [True, True]


def test_the_reduce_starts_once_when_every_tile_is_recorded_and_never_with_one_missing() -> None:
    s = state(workers=2)
    running(s, "a", 3)
    decide(s, machine.Fill(0.0))
    assert decide(s, tile_ended("a", 0, None, 0.0)) == []
    assert decide(s, machine.Fill(0.0)) == [machine.RunTile("a", 2, "local", kernel, False)]
    decide(s, tile_ended("a", 2, None, 0.0))
    assert decide(s, machine.Fill(0.0)) == [], "tile 1 is still out: no reduce"
    decide(s, tile_ended("a", 1, None, 0.0))
    assert decide(s, machine.Fill(0.0)) == [machine.JobAction(REDUCE, "a")]
    assert decide(s, machine.Fill(0.0)) == [], "reduced once"
    assert decide(s, step_ended(REDUCE, "a", None)) == []
    assert not s.holds("a")


def test_a_retryable_error_runs_the_tile_again_after_a_backoff_within_the_attempts() -> None:
    s = state(workers=2)
    running(s, "a", 1)
    decide(s, machine.Fill(10.0))
    # A store error is recorded by the tile itself; nothing to record here.
    assert decide(s, tile_ended("a", 0, StoreError("busy"), 10.0)) == []
    assert decide(s, machine.Fill(10.1)) == [], "not before its backoff (0.2 s)"
    assert wait_timeout(s, 10.1) == pytest.approx(0.1)
    assert decide(s, machine.Fill(10.2)) == [machine.RunTile("a", 0, "local", kernel, False)]
    # A dead worker cannot record its attempt: the scheduler does.
    assert decide(s, tile_ended("a", 0, BrokenProcessPool("gone"), 10.2)) == [
        machine.RecordTileFailed("a", 0, "its worker died")]
    assert decide(s, machine.Fill(10.5)) == [], "the second backoff is 0.4 s"
    assert tiles_of(decide(s, machine.Fill(10.6))) == [("a", 0)]
    actions = decide(s, tile_ended("a", 0, OSError("disk"), 11.0))
    assert actions == [machine.RecordTileFailed("a", 0, "OSError: disk"), machine.JobAction(FAIL, "a", {
        "code": "tile_failed", "message": "tile 0 failed 3 times; last: OSError: disk"})]
    assert not s.holds("a") and decide(s, machine.Fill(20.0)) == []


def test_a_retried_tile_runs_again_on_the_route_it_was_given() -> None:
    s = state(workers=2)
    decide(s, machine.Admit(("a",)))
    decide(s, machine.FoundRunning("a", ((0, "spot"),), kernel))
    [run] = decide(s, machine.Fill(0.0))
    assert decide(s, machine.Ended(run, OSError("disk"), 0.0)) == [machine.RecordTileFailed("a", 0, "OSError: disk")]
    assert decide(s, machine.Fill(1.0)) == [run] == [machine.RunTile("a", 0, "spot", kernel, False)]


def test_a_permanent_error_fails_the_job_at_once_and_its_late_tiles_are_ignored() -> None:
    s = state(workers=2)
    running(s, "a", 4)
    decide(s, machine.Fill(0.0))
    bad = InvalidSpecError("a", "contains NaN or inf")
    assert decide(s, tile_ended("a", 0, bad, 0.0)) == [machine.JobAction(FAIL, "a", {
        "code": "invalid_input", "message": "a: contains NaN or inf", "field": "a"})]
    assert s.holds("a"), "tile 1 is still in a worker's hands"
    assert decide(s, tile_ended("a", 1, None, 0.0)) == []
    assert not s.holds("a") and decide(s, machine.Fill(0.0)) == []


def test_at_most_max_jobs_are_admitted_and_a_freed_place_admits_the_next() -> None:
    s = state(workers=2, max_jobs=2)
    assert decide(s, machine.Admit(("a", "b", "c"))) == [machine.JobAction(OPEN, "a"), machine.JobAction(OPEN, "b")]
    assert queue_limit(s) is None, "no place: the queue is not even read"
    decide(s, machine.JobFound("a", QUEUED))
    decide(s, machine.JobFound("b", ENDED))  # cancelled since the queue was read
    assert queue_limit(s) == 3
    assert decide(s, machine.Admit(("a", "c"))) == [machine.JobAction(OPEN, "c")], "a is being planned already"
    assert decide(s, machine.Admit(("d",))) == []


def test_only_the_jobs_asked_for_are_admitted() -> None:
    s = state(only={"mine"})
    assert decide(s, machine.Admit(("other", "mine"))) == [machine.JobAction(OPEN, "mine")]


def test_a_running_job_resumes_from_its_recorded_tiles_or_reduces_if_all_are_done() -> None:
    s = state(workers=4)
    running(s, "a", 4, done={0, 2})
    assert tiles_of(decide(s, machine.Fill(0.0))) == [("a", 1), ("a", 3)]
    running(s, "b", 2, done={0, 1})
    assert decide(s, machine.Fill(0.0)) == [machine.JobAction(REDUCE, "b")]


def test_a_job_that_cannot_be_opened_is_failed() -> None:
    s = state()
    decide(s, machine.Admit(("a",)))
    assert decide(s, machine.JobFound("a", UNREADABLE, KeyError("pk"))) == [
        machine.JobAction(FAIL, "a", {"code": "internal_error", "message": "KeyError: 'pk'"})]
    assert not s.holds("a")


def test_a_job_ended_elsewhere_is_dropped_unless_it_is_reducing() -> None:
    s = state(workers=2)
    running(s, "a", 2)
    running(s, "b", 0)  # all tiles done: reducing
    assert decide(s, machine.JobsEnded(("a", "b"))) == []
    assert "a" not in s.active and "b" in s.active
    assert decide(s, machine.Fill(0.0)) == [machine.JobAction(REDUCE, "b")]


def test_a_step_that_fails_transiently_runs_again_and_a_plan_is_readmitted() -> None:
    s = state(workers=2)
    running(s, "r", 0)
    decide(s, machine.Fill(0.0))
    assert decide(s, step_ended(REDUCE, "r", OSError("hiccup"))) == []
    assert decide(s, machine.Fill(0.0)) == [machine.JobAction(REDUCE, "r")]
    decide(s, machine.Admit(("p",)))
    decide(s, machine.JobFound("p", QUEUED))
    decide(s, machine.Fill(0.0))
    assert decide(s, step_ended(PLAN, "p", OSError("hiccup"))) == []
    assert not s.holds("p") and decide(s, machine.Admit(("p",))) == [machine.JobAction(OPEN, "p")]


def test_a_step_that_keeps_failing_or_fails_for_good_fails_the_job() -> None:
    s = state(workers=2)
    decide(s, machine.Admit(("p",)))
    for attempt in range(3):
        decide(s, machine.JobFound("p", QUEUED))
        assert decide(s, machine.Fill(0.0)) == [machine.JobAction(PLAN, "p")]
        actions = decide(s, step_ended(PLAN, "p", OSError("always")))
        if attempt < 2:
            assert actions == [] and decide(s, machine.Admit(("p",))) == [machine.JobAction(OPEN, "p")]
    assert actions == [machine.JobAction(FAIL, "p", {"code": "internal_error", "message": "OSError: always"})]
    running(s, "r", 0)
    decide(s, machine.Fill(0.0))
    bad = InvalidSpecError("out", "exists")
    assert decide(s, step_ended(REDUCE, "r", bad)) == [machine.JobAction(FAIL, "r", {
        "code": "invalid_input", "message": "out: exists", "field": "out"})]
    # A step of a job cancelled meanwhile fails nothing more.
    running(s, "c", 0)
    decide(s, machine.Fill(0.0))
    assert decide(s, step_ended(REDUCE, "c", OSError("late"), job_ended=True)) == []
    assert not s.holds("c")


def test_actions_and_events_of_different_kinds_never_compare_equal() -> None:
    # The executor and the tests tell actions apart by value: an OPEN is not a PLAN of the
    # same job, and a job found QUEUED is not one found ENDED.
    assert machine.JobAction(OPEN, "a") != machine.JobAction(PLAN, "a")
    assert machine.JobAction(PLAN, "a") != machine.JobAction(REDUCE, "a")
    assert machine.JobFound("a", QUEUED) != machine.JobFound("a", ENDED)
    assert step_ended(PLAN, "a", None) != step_ended(REDUCE, "a", None)
    assert machine.JobsEnded(("a",)) != machine.Admit(("a",)), "same fields, different kinds"
    assert len({machine.JobAction(act, "a") for act in machine.Act}) == len(machine.Act)


def test_the_decisions_read_no_clock_and_touch_no_store_thread_or_process() -> None:
    import ast
    from pathlib import Path

    import tilefan.runtimes.embedded.scheduler_decide as decide_module

    allowed = {"__future__", "collections", "collections.abc", "concurrent.futures", "dataclasses", "enum", "typing",
               "tilefan.errors", "tilefan.pipeline.error_codec", "tilefan.runtimes.embedded.scheduler_parts",
               "tilefan.runtimes.embedded.scheduler_state"}
    for module in (decide_module, machine):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {str(n.module) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert imported <= allowed, f"{module.__name__} imports {sorted(imported - allowed)}"

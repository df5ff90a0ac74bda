"""The embedded scheduler's decisions: ``decide(state, event) -> actions``.

Chalice's deployer is the model: a planner decides from the current state, an executor
performs. Here ``decide`` takes what just happened (the queue read, a job's record, a
tile or a step that ended, free workers), updates the scheduler's state and says what to
do next: open a job, start a plan or a reduce, run a tile, record a dead worker's
attempt, fail a job. It does no I/O and reads no clock (times come in the events), so
every rule is tested by feeding events (tests/unit/test_scheduler_decide.py):

- at most ``max_jobs`` jobs are admitted at once; a QUEUED job is planned, a RUNNING one
  resumed from the tiles not recorded done;
- tiles go round-robin over the admitted jobs, a worker each, so a big job cannot starve
  a small one; plans and reduces go first, since each starts or ends a whole job;
- a tile that met a retryable error (or whose worker died) runs again after a backoff, up
  to ``RetryPolicy.max_attempts`` in all; a permanent error fails the job at once;
- a job is reduced once, and only when every tile has ended well;
- a plan or a reduce that met a retryable error runs again, within the same attempts.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import deque

from tilefan.errors import TilefanError
from tilefan.pipeline.error_codec import error_body
from tilefan.runtimes.embedded.scheduler_parts import is_permanent
from tilefan.runtimes.embedded.scheduler_state import (
    Act,
    Action,
    Admit,
    Ended,
    Event,
    Fill,
    Found,
    FoundRunning,
    JobAction,
    JobFound,
    JobsEnded,
    JobState,
    RecordTileFailed,
    RunTile,
    State,
)

IDLE_WAIT_S = 0.5  # the longest the dispatcher waits without news: it reads the queue again


def decide(state: State, event: Event) -> list[Action]:
    """Update ``state`` with ``event`` and return the actions to perform, in order."""
    if isinstance(event, Admit):
        return _admit(state, event)
    if isinstance(event, Fill):
        return _fill(state, event.now)
    if isinstance(event, Ended):
        if isinstance(event.work, RunTile):
            return _tile_ended(state, event.work, event.error, event.now)
        return _step_ended(state, event.work.act, event.work.job_id, event.error, event.job_ended)
    if isinstance(event, JobsEnded):
        for job_id in event.job_ids:
            job = state.active.get(job_id)
            if job is not None and not job.reducing:
                _forget(state, job_id)  # cancelled or failed elsewhere; late tiles are ignored
        return []
    return _opened(state, event)


def queue_limit(state: State) -> int | None:
    """How many of the queue's jobs to read for ``Admit``; None when none could be admitted."""
    if state.admitted() >= state.max_jobs:
        return None
    return state.max_jobs + state.admitted()


def wait_timeout(state: State, now: float) -> float:
    """How long the dispatcher may wait for news before a retry's backoff ends.

    A tile waiting for its retry time bounds the wait only if a worker is free to take
    it: with every worker busy only a finished tile (or a wake) can change anything, and
    a zero timeout would spin, taking the GIL from the HTTP threads.
    """
    if state.used_slots() >= state.workers:
        return IDLE_WAIT_S
    ready = min((j.not_before for j in state.active.values() if j.todo), default=None)
    return IDLE_WAIT_S if ready is None else max(0.0, min(IDLE_WAIT_S, ready - now))


def why(exc: BaseException) -> str:
    """A failed attempt's error, as the report shows it."""
    # BrokenExecutor, not concurrent.futures.process's BrokenProcessPool: naming that would
    # import the process pool's machinery into every run, even one whose tile runs inline.
    return "its worker died" if isinstance(exc, cf.BrokenExecutor) else f"{type(exc).__name__}: {exc}"


def _admit(state: State, event: Admit) -> list[Action]:
    actions: list[Action] = []
    for job_id in event.candidates:
        if state.admitted() >= state.max_jobs:
            break
        if (job_id in state.active or job_id in state.planning or job_id in state.opening
                or (state.only is not None and job_id not in state.only)):
            continue
        state.opening.add(job_id)
        actions.append(JobAction(Act.OPEN, job_id))
    return actions


def _opened(state: State, event: JobFound | FoundRunning) -> list[Action]:
    """An admitted job's record was read: plan it, resume it, fail it, or (ended) let it go."""
    state.opening.discard(event.job_id)
    if isinstance(event, FoundRunning):
        job = JobState(event.job_id, deque(event.todo), event.kernel, inline=event.inline)
        state.active[job.job_id] = job
        state.turns.append(job.job_id)
        _finish_if_complete(state, job)
    elif event.found is Found.QUEUED:
        state.planning.add(event.job_id)
        state.steps_waiting.append(JobAction(Act.PLAN, event.job_id))
    elif event.found is Found.UNREADABLE:
        assert event.error is not None, "an unreadable record comes with its error"
        return [_fail(event.job_id, event.error)]
    return []  # Found.ENDED: nothing to do


def _fill(state: State, now: float) -> list[Action]:
    """Waiting plans and reduces first, then tiles round-robin over the admitted jobs,
    until every worker has one."""
    actions: list[Action] = []
    while state.steps_waiting and (not state.steps_in_pool or state.used_slots() < state.workers):
        step = state.steps_waiting.popleft()
        state.steps_running[step.job_id] = step.act
        actions.append(step)
    while state.used_slots() < state.workers and state.turns:
        for _ in range(len(state.turns)):
            job = state.active[state.turns[0]]
            state.turns.rotate(-1)
            if job.todo and job.not_before <= now:
                tile_id, route = job.todo.popleft()
                job.in_flight.add(tile_id)
                state.tiles_running[job.job_id] = state.tiles_running.get(job.job_id, 0) + 1
                # One worker: run it right here, through this process's stores, with no
                # process to start or to lose.
                actions.append(RunTile(job.job_id, tile_id, route, job.kernel, job.inline or state.workers == 1))
                break
        else:
            break  # nothing is ready to run
    return actions


def _tile_ended(state: State, tile: RunTile, exc: BaseException | None, now: float) -> list[Action]:
    left = state.tiles_running.get(tile.job_id, 0) - 1
    if left > 0:
        state.tiles_running[tile.job_id] = left
    else:
        state.tiles_running.pop(tile.job_id, None)
    job = state.active.get(tile.job_id)
    if job is None:
        return []  # the job ended meanwhile
    job.in_flight.discard(tile.tile_id)
    if exc is None:
        _finish_if_complete(state, job)
        return []
    # run_tile records its own errors; a dead worker cannot, so its attempt ends here.
    actions: list[Action] = [] if isinstance(exc, TilefanError) else [
        RecordTileFailed(job.job_id, tile.tile_id, why(exc))]
    attempts = job.attempts.get(tile.tile_id, 1)
    if is_permanent(exc):
        actions.append(_fail(job.job_id, exc))
    elif attempts >= state.retry.max_attempts:
        actions.append(JobAction(Act.FAIL, job.job_id, {
            "code": "tile_failed", "message": f"tile {tile.tile_id} failed {attempts} times; last: {why(exc)}"}))
    else:
        job.attempts[tile.tile_id] = attempts + 1
        job.todo.appendleft((tile.tile_id, tile.route))
        job.not_before = now + state.retry.delay(attempts)
        return actions
    _forget(state, job.job_id)
    return actions


def _step_ended(state: State, step: Act, job_id: str, exc: BaseException | None, job_ended: bool) -> list[Action]:
    """A plan or a reduce ended: open the planned job (now RUNNING, its tiles start as a
    resumed job's would), or run the step again, or record why not (unless ``job_ended``:
    the store says the job ended meanwhile)."""
    state.steps_running.pop(job_id, None)
    attempts = state.step_attempts.pop((step, job_id), 1)
    retry = exc is not None and not is_permanent(exc) and attempts < state.retry.max_attempts and not job_ended
    if retry:
        state.step_attempts[(step, job_id)] = attempts + 1
        if step is Act.REDUCE:
            state.steps_waiting.append(JobAction(step, job_id))
    if step is Act.PLAN:
        # Planned, failed, or to be planned again: a retried plan is admitted afresh, and
        # reads the job's record as a restarted scheduler would (a plan that got as far
        # as RUNNING is then resumed).
        state.planning.discard(job_id)
        if exc is None:
            state.opening.add(job_id)
            return [JobAction(Act.OPEN, job_id)]
    if retry:
        return []
    actions: list[Action] = [_fail(job_id, exc)] if exc is not None and not job_ended else []
    _forget(state, job_id)  # only now: waiting for a job means "its reduce is over" too
    return actions


def _finish_if_complete(state: State, job: JobState) -> None:
    """Hand the job to the reduce step once every tile has ended well, and only once."""
    if not job.todo and not job.in_flight and not job.reducing:
        job.reducing = True
        state.steps_waiting.append(JobAction(Act.REDUCE, job.job_id))


def _fail(job_id: str, exc: BaseException) -> JobAction:
    """Fail the job with the error body of ``exc``."""
    return JobAction(Act.FAIL, job_id, error_body(exc))


def _forget(state: State, job_id: str) -> None:
    state.active.pop(job_id, None)
    if job_id in state.turns:
        state.turns.remove(job_id)

"""The embedded scheduler's state, its events and its actions: plain values, no I/O.

``scheduler_decide.decide`` turns the state and one event into actions; the scheduler
(``scheduler.py``) performs them against the ports and the pool, and reports what came
of them as events. Everything the decisions need is here, so they can be tested by
feeding events, with no store, clock or process.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from tilefan.runtimes.embedded.scheduler_parts import RetryPolicy


class Act(Enum):
    """What the scheduler does to a whole job (``JobAction``)."""

    OPEN = "open"  # read its record: answer JobFound or FoundRunning
    PLAN = "plan"  # run its plan step (in the pool, a helper thread or inline): answer Ended
    REDUCE = "reduce"  # run its reduce step, likewise
    FAIL = "fail"  # record it FAILED with the action's error body


class Found(Enum):
    """What an admitted job's record says, unless it is RUNNING (``FoundRunning``)."""

    QUEUED = "queued"  # to plan
    ENDED = "ended"  # cancelled since the queue was read
    UNREADABLE = "unreadable"  # the record could not be read: the job fails


@dataclass
class JobState:
    """An admitted job whose tiles run (a RUNNING job)."""

    job_id: str
    todo: deque[tuple[int, str]]  # (tile id, route), next first
    kernel: Callable[..., Any]  # opaque here: carried to each tile of the job
    inline: bool = False  # its tiles run in the dispatcher's thread (no pool to start for them)
    in_flight: set[int] = field(default_factory=set)
    attempts: dict[int, int] = field(default_factory=dict)  # tile id -> attempts begun (1 if absent)
    not_before: float = 0.0  # no tile before this (monotonic) time: a retry's backoff
    reducing: bool = False  # handed to the reduce step: never twice


@dataclass
class State:
    """What the scheduler holds: its limits, admitted jobs, plans and reduces, tiles out."""

    workers: int
    max_jobs: int
    retry: RetryPolicy
    steps_in_pool: bool  # plans and reduces take a pool worker, like a tile
    only: frozenset[str] | None = None  # the one job of a CLI run; None: every job of the home
    active: dict[str, JobState] = field(default_factory=dict)
    turns: deque[str] = field(default_factory=deque)  # round-robin order of the active jobs
    opening: set[str] = field(default_factory=set)  # being read from the store
    planning: set[str] = field(default_factory=set)  # admitted, plan not ended
    steps_waiting: deque[JobAction] = field(default_factory=deque)  # plans and reduces to start
    steps_running: dict[str, Act] = field(default_factory=dict)  # job id -> step (one at a time)
    step_attempts: dict[tuple[Act, str], int] = field(default_factory=dict)
    tiles_running: dict[str, int] = field(default_factory=dict)  # job id -> tiles out, ended jobs' too

    def admitted(self) -> int:
        """Jobs counted against ``max_jobs``."""
        return len(self.active) + len(self.planning) + len(self.opening)

    def used_slots(self) -> int:
        """Workers busy: every tile out, and the steps when they run in the pool."""
        return sum(self.tiles_running.values()) + (len(self.steps_running) if self.steps_in_pool else 0)

    def holds(self, job_id: str) -> bool:
        """Whether the job is still in this scheduler's hands (membership tests only: another
        thread asks while the dispatcher changes the state)."""
        return (job_id in self.active or job_id in self.opening or job_id in self.planning
                or job_id in self.steps_running or job_id in self.tiles_running)


# ------------------------------------------------------------------ events: what happened


@dataclass(frozen=True)
class Admit:
    """The queue's unfinished jobs, RUNNING then QUEUED, each oldest first."""

    candidates: tuple[str, ...]


@dataclass(frozen=True)
class JobFound:
    """An admitted job's record, read for ``Act.OPEN``; ``error`` is why it was UNREADABLE."""

    job_id: str
    found: Found
    error: BaseException | None = None


@dataclass(frozen=True)
class FoundRunning:
    """A RUNNING job: the tiles not recorded done, and how they run."""

    job_id: str
    todo: tuple[tuple[int, str], ...]
    kernel: Callable[..., Any]
    inline: bool = False


@dataclass(frozen=True)
class JobsEnded:
    """Active jobs the store says have ended (cancelled or failed elsewhere)."""

    job_ids: tuple[str, ...]


@dataclass(frozen=True)
class Fill:
    """Workers may be free: hand out what is ready at ``now`` (monotonic seconds)."""

    now: float


# ------------------------------------------------------------------ actions: what to do


@dataclass(frozen=True)
class JobAction:
    """Do ``act`` to the whole job; ``error`` is the error body a FAIL records."""

    act: Act
    job_id: str
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunTile:
    """Run one tile (here if ``inline``, else in the pool); answer Ended."""

    job_id: str
    tile_id: int
    route: str
    kernel: Callable[..., Any]
    inline: bool


@dataclass(frozen=True)
class RecordTileFailed:
    """Record a tile's failed attempt that its worker could not record (it died)."""

    job_id: str
    tile_id: int
    why: str


Action = JobAction | RunTile | RecordTileFailed


# ------------------------------------------------------------------ events: what ended


@dataclass(frozen=True)
class Ended:
    """A tile (``RunTile``) or a plan or reduce (``JobAction``) ended, well if ``error`` is None."""

    work: RunTile | JobAction
    error: BaseException | None
    now: float = 0.0  # monotonic: a failed tile's backoff starts here
    job_ended: bool = False  # the store's word, read when a step failed


Event = Admit | JobFound | FoundRunning | JobsEnded | Fill | Ended

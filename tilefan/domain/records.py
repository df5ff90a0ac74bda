"""Job and tile records: what the job store keeps and what users see."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tilefan.domain.spec.parse import JobSpec, spec_to_dict

# The owner of every job on the embedded backend: a home has one principal (whoever may
# use it: the CLI, the Python API, and ``tilefan serve``'s loopback or token holders).
LOCAL_OWNER = "local"


class Status(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


class TileState(StrEnum):
    """A tile's state, as the job stores keep it."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"  # its job ended (cancelled or failed) while it ran


class AttemptState(StrEnum):
    """One attempt at a tile: its outcome is written once; only a running attempt changes."""

    RUNNING = "running"
    DONE = "done"  # the one attempt that counted
    FAILED = "failed"
    CANCELLED = "cancelled"
    DUPLICATE = "duplicate"  # finished after another attempt had counted: not counted again
    LOST = "lost"  # reported, never stored: a running attempt whose worker never reported back


# Which transitions a conditional status write allows (the key is the new status).
ALLOWED_FROM: dict[Status, tuple[Status, ...]] = {
    Status.QUEUED: (),
    Status.RUNNING: (Status.QUEUED,),
    Status.SUCCEEDED: (Status.RUNNING,),
    Status.FAILED: (Status.QUEUED, Status.RUNNING),
    Status.CANCELLED: (Status.QUEUED, Status.RUNNING),
}


@dataclass(frozen=True)
class TileResult:
    """One tile's completion: the partial statistics the reducer combines."""

    tile_id: int
    units: int
    stats: dict[str, Any]
    started_at: float
    finished_at: float
    worker: str
    route: str = "local"
    bytes_read: int = 0
    bytes_written: int = 0


@dataclass
class JobRecord:
    """A job as the store keeps it: its spec, status, progress, timings, result or error, links
    and owner."""

    job_id: str
    kind: str
    status: Status
    spec: JobSpec  # decoded once, by the store that read the record
    created_at: float
    tiles_total: int = 0
    units_total: int = 0
    tiles_done: int = 0
    units_done: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    links: dict[str, str] = field(default_factory=dict)
    # Who submitted it: LOCAL_OWNER on the embedded backend, the caller's authenticated
    # identity on AWS ("" for a record older than ownership: nobody's).
    owner: str = LOCAL_OWNER

    def to_dict(self) -> dict[str, Any]:
        """The public shape of a job, as the REST API and ``--json`` show it."""
        percent = 100.0 * self.units_done / self.units_total if self.units_total else 0.0
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "status": self.status.value,
            "spec": spec_to_dict(self.spec),
            "progress": {
                "tiles_done": self.tiles_done,
                "tiles_total": self.tiles_total,
                "units_done": self.units_done,
                "units_total": self.units_total,
                "percent": round(percent, 2),
            },
            # When it was submitted, with the times its steps recorded.
            "timings": {"submitted_at": self.created_at, **self.timings},
            "result": self.result,
            "error": self.error,
            "links": self.links,
            "owner": self.owner,
        }

"""What every job store decides, once; each backend supplies only conditional I/O.

``BaseJobStore`` implements the ``JobStore`` port: which status changes ALLOWED_FROM
permits, how timings and links merge, how a page of jobs and its cursor work, and what
each tile report writes. Its subclasses (SQLite, DynamoDB, in memory) implement a few
primitives, each one atomic on its backend: insert a job if new (and if its owner has
room under a cap), read one, update one if its status is still the one read, write a tile
row unless it is done, write an attempt row unless it has an outcome, and complete a tile
exactly once (its counted attempt's row in the same transaction). Records cross that
boundary as plain stored dicts (``records_codec``).

Ownership: every job has an owner. ``get_job(id, owner=...)`` and ``list_jobs(...,
owner=...)`` show a job only to its owner; anyone else finds no such job (never "not
yours", which would say it exists). Without ``owner`` they see every job: that is the
pipeline's own view, and the CLI's on its own home.

Every accepted start of a tile is an attempt, numbered by the tile row's ``attempts``
count, with a row of its own: the tile row keeps the last attempt, the attempt rows the
history. Exactly one attempt row of a done tile says "done"; a run that finished after
another had counted says "duplicate", so a repeat never adds a second success.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from enum import Enum
from typing import Any

from tilefan.adapters.records_codec import (
    AttemptState,
    StoredAttempt,
    StoredJob,
    StoredTile,
    TileState,
    attempt_done_fields,
    attempt_row_from_stored,
    decode_cursor,
    encode_cursor,
    job_from_stored,
    job_to_stored,
    tile_done_fields,
    tile_result_from_stored,
    tile_row_from_stored,
)
from tilefan.domain.records import ALLOWED_FROM, JobRecord, Status, TileResult
from tilefan.errors import ConflictError, InvalidSpecError, JobNotFoundError, TooManyJobsError

# The statuses that hold one of their owner's slots under the concurrent-job cap.
ACTIVE = (Status.QUEUED.value, Status.RUNNING.value)


class Completion(Enum):
    """What an attempt to record a tile done found (the exactly-once write's outcomes)."""

    COUNTED = "counted"  # the tile moved to done and the job's counters moved with it
    ALREADY_DONE = "already done"  # a retry or duplicate delivery: nothing changed
    JOB_NOT_RUNNING = "job not running"  # cancelled or failed meanwhile: not counted
    NO_JOB = "no job"


class Admission(Enum):
    """What an attempt to insert a new job found."""

    ADMITTED = "admitted"
    EXISTS = "exists"  # a job with this id is already stored: nothing changed
    OVER_CAP = "over cap"  # its owner already has ``cap`` active jobs: nothing changed


class BaseJobStore(ABC):
    """The JobStore port over a backend's conditional reads and writes."""

    # ------------------------------------------------------------------ primitives

    @abstractmethod
    def _put_job_if_new(self, stored: StoredJob, cap: int | None) -> Admission:
        """Insert the job unless its id exists or (when ``cap`` is given) its owner
        already has ``cap`` jobs in an ACTIVE status; the check and the insert are one
        atomic step, so two submissions racing for the last slot cannot both win."""

    @abstractmethod
    def _get_stored_job(self, job_id: str) -> StoredJob | None:
        """The job as stored (strongly consistent), or None."""

    @abstractmethod
    def _stored_jobs_page(self, count: int, after: tuple[float, str] | None,
                          owner: str | None = None) -> list[StoredJob]:
        """Up to ``count`` jobs (only ``owner``'s when given) in descending
        ``(created_at, job_id)`` order, starting strictly after ``after`` in that order."""

    @abstractmethod
    def _set_totals(self, job_id: str, tiles_total: int, units_total: int) -> bool:
        """Set the plan's totals; False if the job does not exist."""

    @abstractmethod
    def _update_job_if_status(self, job_id: str, seen: str, changes: StoredJob,
                              frees_slot_of: str | None = None) -> bool:
        """Write ``changes`` only if the job's status is still ``seen``; False if not.
        ``frees_slot_of`` names the owner whose active job this write ends: a store that
        keeps a count of active jobs per owner lowers it in the same atomic write."""

    @abstractmethod
    def _write_tile_unless_done(
        self, job_id: str, tile_id: int, fields: StoredTile, *, new_attempt: bool
    ) -> int | None:
        """Create or update the tile row with ``fields`` (None clears a field) unless it
        is done; a new row has one attempt, an existing one gains one if ``new_attempt``.
        Returns the row's attempt count after the write, None if it was refused."""

    @abstractmethod
    def _complete_tile_once(
        self, job_id: str, tile_id: int, fields: StoredTile, units: int, attempt: int | None, tried: StoredAttempt
    ) -> Completion:
        """Move the tile row to done with ``fields`` and add one tile and ``units`` to the
        job's counters, both or neither, only while the job runs and the tile is not done.
        In the same transaction, attempt row ``attempt`` (None: the tile's attempt count,
        at least 1) takes ``tried``, created if absent."""

    @abstractmethod
    def _write_attempt(self, job_id: str, tile_id: int, attempt: int, fields: StoredAttempt) -> bool:
        """Create attempt row ``attempt`` with ``fields``, or update it only while it is
        running (an outcome is written once); False if refused."""

    @abstractmethod
    def _stored_attempts(self, job_id: str) -> list[StoredAttempt]:
        """Every attempt row of the job as stored, in any order."""

    @abstractmethod
    def _stored_tiles(self, job_id: str) -> list[StoredTile]:
        """Every tile row of the job as stored, in any order."""

    # ------------------------------------------------------------------ jobs

    def create_job(self, record: JobRecord, max_active: int | None = None) -> None:
        """Insert a new QUEUED job; with ``max_active``, only while its owner has fewer
        active (QUEUED or RUNNING) jobs than that, else TooManyJobsError."""
        if max_active is not None and max_active < 1:
            raise InvalidSpecError("max_active", f"must be at least 1, got {max_active}")
        outcome = self._put_job_if_new(job_to_stored(record), max_active)
        if outcome is Admission.EXISTS:
            raise ConflictError(f"job {record.job_id} already exists")
        if outcome is Admission.OVER_CAP:
            assert max_active is not None
            raise TooManyJobsError(max_active)

    def _stored_job(self, job_id: str, owner: str | None = None) -> StoredJob:
        stored = self._get_stored_job(job_id)
        # Someone else's job is answered exactly as a missing one.
        if stored is None or (owner is not None and (stored.get("owner") or "") != owner):
            raise JobNotFoundError(job_id)
        return stored

    def get_job(self, job_id: str, owner: str | None = None) -> JobRecord:
        return job_from_stored(self._stored_job(job_id, owner))

    def list_jobs(self, limit: int, cursor: str | None = None,
                  owner: str | None = None) -> tuple[list[JobRecord], str | None]:
        if limit < 1:
            raise InvalidSpecError("limit", f"must be at least 1, got {limit}")
        after = decode_cursor(cursor) if cursor else None
        # One more than asked: a next cursor is given only when a next page exists.
        stored = self._stored_jobs_page(limit + 1, after, owner)
        records = [job_from_stored(s) for s in stored[:limit]]
        next_cursor = None
        if len(stored) > limit:
            next_cursor = encode_cursor(records[-1].created_at, records[-1].job_id)
        return records, next_cursor

    def set_plan(self, job_id: str, tiles_total: int, units_total: int) -> None:
        if not self._set_totals(job_id, int(tiles_total), int(units_total)):
            raise JobNotFoundError(job_id)

    def transition(
        self, job_id: str, new: Status, *, timings: dict[str, float] | None = None,
        result: dict[str, Any] | None = None, error: dict[str, Any] | None = None,
        links: dict[str, str] | None = None,
    ) -> bool:
        allowed = {s.value for s in ALLOWED_FROM[new]}
        while True:
            stored = self._stored_job(job_id)
            seen = stored["status"]
            if seen not in allowed:
                return False
            # timings and links merge with what was read, so the write must find the
            # status it read. Every transition changes the status (nothing is allowed
            # from itself), so an unchanged status means nobody wrote them in between.
            #   QUEUED          --RUNNING-->          RUNNING
            #   RUNNING         --SUCCEEDED-->        SUCCEEDED
            #   QUEUED|RUNNING  --FAILED|CANCELLED--> FAILED|CANCELLED
            #   terminal        --anything-->         refused
            changes: StoredJob = {
                "status": new.value,
                "timings": json.dumps({**json.loads(stored["timings"]), **(timings or {})}),
                "links": json.dumps({**json.loads(stored["links"]), **(links or {})}),
            }
            if result is not None:
                changes["result"] = json.dumps(result)
            if error is not None:
                changes["error"] = json.dumps(error)
            # Every terminal status is reached from an ACTIVE one, exactly once (the write
            # below is conditional on ``seen``): the owner's slot is freed exactly once.
            frees = (stored.get("owner") or None) if new.terminal and seen in ACTIVE else None
            if self._update_job_if_status(job_id, seen, changes, frees):
                return True
            # Another transition won; read again and judge from there. Each retry needs
            # the status to have moved on, and it moves at most twice (QUEUED, RUNNING,
            # terminal), so this retries at most twice.

    # ------------------------------------------------------------------ tiles

    def tile_started(self, job_id: str, tile_id: int, worker: str, route: str, at: float) -> int | None:
        # Refused for a done tile: a late duplicate must not rewrite the report of the
        # run that counted (its start, worker and route), nor add an attempt.
        fields = {"status": TileState.RUNNING.value, "started_at": float(at), "worker": worker, "route": route}
        attempt = self._write_tile_unless_done(job_id, int(tile_id), fields, new_attempt=True)
        if attempt is not None:
            self._write_attempt(job_id, int(tile_id), attempt, {**fields, "status": AttemptState.RUNNING.value})
        return attempt

    def record_tile_done(self, job_id: str, result: TileResult, attempt: int | None = None) -> bool:
        outcome = self._complete_tile_once(job_id, int(result.tile_id), tile_done_fields(result), int(result.units),
                                           attempt, attempt_done_fields(result))
        if outcome is Completion.NO_JOB:
            raise JobNotFoundError(job_id)
        if attempt is not None and outcome is not Completion.COUNTED:
            # Computed but not counted: say why on this attempt's row (never the counted one).
            state = AttemptState.DUPLICATE if outcome is Completion.ALREADY_DONE else AttemptState.CANCELLED
            self._write_attempt(job_id, int(result.tile_id), attempt, attempt_done_fields(result, state))
        return outcome is Completion.COUNTED

    def record_tile_failed(
        self, job_id: str, tile_id: int, message: str, at: float, attempt: int | None = None
    ) -> None:
        # A refused write is the point: a tile recorded done stays done.
        fields = {"status": TileState.FAILED.value, "finished_at": float(at), "error": message}
        self._end_attempt(job_id, int(tile_id), fields, attempt)

    def tile_cancelled(self, job_id: str, tile_id: int, at: float, attempt: int | None = None) -> None:
        """Mark a tile that was running when its job ended (never a done one)."""
        fields = {"status": TileState.CANCELLED.value, "finished_at": float(at)}
        self._end_attempt(job_id, int(tile_id), fields, attempt)

    def _end_attempt(self, job_id: str, tile_id: int, fields: StoredTile, attempt: int | None) -> None:
        """The tile row (unless done) and the attempt's row (unless it has an outcome):
        ``attempt``, or without one the tile's latest, which a done tile has closed."""
        latest = self._write_tile_unless_done(job_id, tile_id, fields, new_attempt=False)
        number = attempt if attempt is not None else latest
        if number is not None:
            self._write_attempt(job_id, tile_id, number, dict(fields))

    def tile_results(self, job_id: str) -> list[TileResult]:
        done = [t for t in self._stored_tiles(job_id) if t.get("status") == TileState.DONE.value]
        return sorted((tile_result_from_stored(t) for t in done), key=lambda r: r.tile_id)

    def tile_rows(self, job_id: str) -> list[dict[str, Any]]:
        return sorted((tile_row_from_stored(t) for t in self._stored_tiles(job_id)), key=lambda r: r["tile_id"])

    def tile_attempts(self, job_id: str) -> list[dict[str, Any]]:
        rows = (attempt_row_from_stored(a) for a in self._stored_attempts(job_id))
        return sorted(rows, key=lambda r: (r["tile_id"], r["attempt"]))

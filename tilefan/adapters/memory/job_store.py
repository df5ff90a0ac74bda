"""Job store in a dict (the in-memory backend): BaseJobStore's primitives under one lock.

Holding the lock for a whole primitive makes each one atomic, as a SQLite transaction or
a DynamoDB conditional write is; the decisions are all BaseJobStore's.
"""

from __future__ import annotations

import threading

from tilefan.adapters.job_store import ACTIVE, Admission, BaseJobStore, Completion
from tilefan.adapters.records_codec import AttemptState, StoredAttempt, StoredJob, StoredTile, TileState
from tilefan.domain.records import Status


class MemoryJobStore(BaseJobStore):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, StoredJob] = {}
        self._tiles: dict[tuple[str, int], StoredTile] = {}
        self._attempts: dict[tuple[str, int, int], StoredAttempt] = {}

    # Stored dicts hold only immutable values, so a shallow copy in or out is enough to
    # keep callers from changing what is stored.

    def _put_job_if_new(self, stored: StoredJob, cap: int | None) -> Admission:
        with self._lock:  # the count and the insert under one lock: no two can take the last slot
            if stored["job_id"] in self._jobs:
                return Admission.EXISTS
            if cap is not None and sum(1 for s in self._jobs.values()
                                       if s["owner"] == stored["owner"] and s["status"] in ACTIVE) >= cap:
                return Admission.OVER_CAP
            self._jobs[stored["job_id"]] = dict(stored)
            return Admission.ADMITTED

    def _get_stored_job(self, job_id: str) -> StoredJob | None:
        with self._lock:
            stored = self._jobs.get(job_id)
            return None if stored is None else dict(stored)

    def _stored_jobs_page(self, count: int, after: tuple[float, str] | None,
                          owner: str | None = None) -> list[StoredJob]:
        with self._lock:
            jobs = [dict(s) for s in self._jobs.values() if owner is None or s["owner"] == owner]
        jobs.sort(key=lambda s: (s["created_at"], s["job_id"]), reverse=True)
        if after is not None:
            jobs = [s for s in jobs if (s["created_at"], s["job_id"]) < after]
        return jobs[:count]

    def _set_totals(self, job_id: str, tiles_total: int, units_total: int) -> bool:
        with self._lock:
            stored = self._jobs.get(job_id)
            if stored is None:
                return False
            stored.update(tiles_total=tiles_total, units_total=units_total)
            return True

    def _update_job_if_status(self, job_id: str, seen: str, changes: StoredJob,
                              frees_slot_of: str | None = None) -> bool:
        # Active jobs are counted from their statuses: there is no count to lower.
        with self._lock:
            stored = self._jobs.get(job_id)
            if stored is None or stored["status"] != seen:
                return False
            stored.update(changes)
            return True

    def _write_tile_locked(self, job_id: str, tile_id: int, fields: StoredTile, *, new_attempt: bool) -> int | None:
        """The tile write shared by both tile primitives; the caller holds the lock.
        Refused (None) when the tile is done; else the row's attempt count."""
        row = self._tiles.get((job_id, tile_id))
        if row is None:
            self._tiles[(job_id, tile_id)] = {"job_id": job_id, "tile_id": tile_id, "attempts": 1, **fields}
            return 1
        if row["status"] == TileState.DONE.value:
            return None
        row.update(fields)
        if new_attempt:
            row["attempts"] += 1
        return int(row["attempts"])

    def _write_tile_unless_done(
        self, job_id: str, tile_id: int, fields: StoredTile, *, new_attempt: bool
    ) -> int | None:
        with self._lock:
            return self._write_tile_locked(job_id, tile_id, fields, new_attempt=new_attempt)

    def _write_attempt_locked(self, job_id: str, tile_id: int, attempt: int, fields: StoredAttempt) -> bool:
        row = self._attempts.get((job_id, tile_id, attempt))
        if row is None:
            self._attempts[(job_id, tile_id, attempt)] = {
                "job_id": job_id, "tile_id": tile_id, "attempt": attempt, **fields}
            return True
        if row["status"] != AttemptState.RUNNING.value:
            return False  # its outcome is already written
        row.update(fields)
        return True

    def _write_attempt(self, job_id: str, tile_id: int, attempt: int, fields: StoredAttempt) -> bool:
        with self._lock:
            return self._write_attempt_locked(job_id, tile_id, attempt, fields)

    def _complete_tile_once(
        self, job_id: str, tile_id: int, fields: StoredTile, units: int, attempt: int | None, tried: StoredAttempt
    ) -> Completion:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return Completion.NO_JOB
            if job["status"] != Status.RUNNING.value:
                return Completion.JOB_NOT_RUNNING  # finished after a cancel or failure
            # Exactly once, under the lock: the row moves to done only from a state that
            # is not done (absent, running or failed), and the counters move only when it did.
            #   absent/running/failed --(this write)--> done       counters += 1
            #   done                  --(this write)--> unchanged  counters unchanged
            count = self._write_tile_locked(job_id, tile_id, fields, new_attempt=False)
            if count is None:
                return Completion.ALREADY_DONE
            # The tile was not done, so no attempt of it is: this row may take "done".
            number = attempt if attempt is not None else count
            self._attempts.setdefault((job_id, tile_id, number), {
                "job_id": job_id, "tile_id": tile_id, "attempt": number}).update(tried)
            job["tiles_done"] += 1
            job["units_done"] += units
            return Completion.COUNTED

    def _stored_tiles(self, job_id: str) -> list[StoredTile]:
        with self._lock:
            return [dict(row) for (job, _), row in self._tiles.items() if job == job_id]

    def _stored_attempts(self, job_id: str) -> list[StoredAttempt]:
        with self._lock:
            return [dict(row) for (job, _, _), row in self._attempts.items() if job == job_id]

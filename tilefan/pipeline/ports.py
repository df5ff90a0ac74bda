"""The ports the pipeline talks to. Embedded and AWS adapters implement them.

Keys are strings. A key that is an absolute path or a URI names a user's file; any other
key is inside the store's own space (``jobs/<id>/...``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tilefan.domain.records import JobRecord, Status, TileResult

# Seconds since the epoch; steps take one so tests can pin time.
Clock = Callable[[], float]


class BlobStore(Protocol):
    def put_json(self, key: str, value: Any) -> None: ...

    def get_json(self, key: str) -> Any: ...

    def array_info(self, key: str) -> tuple[tuple[int, ...], str]:
        """Shape and dtype from the header only. Raises BlobNotFoundError."""
        ...

    def read_rows(self, key: str, rows: tuple[int, int], cols: tuple[int, int] | None = None) -> np.ndarray:
        """A row range (and optionally a column range) of a 2-D array, without reading
        the rest where the backend allows it."""
        ...

    def read_array(self, key: str) -> np.ndarray: ...

    def read_bytes(self, key: str) -> bytes: ...

    def write_array(self, key: str, array: np.ndarray) -> None: ...

    def create_array(self, key: str, shape: tuple[int, ...], dtype: str, job_id: str) -> None:
        """Start job ``job_id``'s output at ``key``, which tiles fill region by region; it
        stays invisible at ``key`` until committed."""
        ...

    def write_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]], block: np.ndarray) -> None:
        """Idempotent: writing the same region twice leaves the same bytes."""
        ...

    def read_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]]) -> np.ndarray:
        """Read back a region of an output (committed or not)."""
        ...

    def commit_array(self, key: str, job_id: str) -> str:
        """Make the output visible at ``key`` atomically; returns where it now is."""
        ...

    def discard_array(self, key: str, job_id: str) -> None:
        """Drop an uncommitted output, leaving nothing half-written behind."""
        ...

    def delete(self, key: str) -> None:
        """Remove one object; no error if it is absent."""
        ...

    def delete_prefix(self, prefix: str) -> None: ...


class JobStore(Protocol):
    def create_job(self, record: JobRecord) -> None:
        """Insert a new job; ConflictError if the id exists."""
        ...

    def get_job(self, job_id: str) -> JobRecord:
        """Raises JobNotFoundError."""
        ...

    def list_jobs(self, limit: int, cursor: str | None = None) -> tuple[list[JobRecord], str | None]: ...

    def set_plan(self, job_id: str, tiles_total: int, units_total: int) -> None: ...

    def transition(
        self, job_id: str, new: Status, *, timings: dict[str, float] | None = None,
        result: dict[str, Any] | None = None, error: dict[str, Any] | None = None,
        links: dict[str, str] | None = None,
    ) -> bool:
        """Move to ``new`` if ALLOWED_FROM permits it from the current status; False if not."""
        ...

    def tile_started(self, job_id: str, tile_id: int, worker: str, route: str, at: float) -> int | None:
        """Start a new attempt at the tile; its number (1, 2...), or None if the tile is done."""
        ...

    def record_tile_done(self, job_id: str, result: TileResult, attempt: int | None = None) -> bool:
        """Record completion exactly once and bump the job's counters in the same
        transaction. True the first time while the job is RUNNING; False for any repeat,
        and for a tile finishing after its job was cancelled or failed (not counted).
        ``attempt`` (from ``tile_started``; None: the latest) gets the outcome."""
        ...

    def record_tile_failed(
        self, job_id: str, tile_id: int, message: str, at: float, attempt: int | None = None
    ) -> None: ...

    def tile_cancelled(self, job_id: str, tile_id: int, at: float, attempt: int | None = None) -> None:
        """Mark a tile that was running when its job ended cancelled (a done tile stays done)."""
        ...

    def tile_results(self, job_id: str) -> list[TileResult]:
        """Every tile recorded done, in tile order."""
        ...

    def tile_rows(self, job_id: str) -> list[dict[str, Any]]:
        """Every tile row (running, done or failed), for reports."""
        ...

    def tile_attempts(self, job_id: str) -> list[dict[str, Any]]:
        """Every attempt at every tile, in (tile, attempt) order, for reports."""
        ...


@dataclass(frozen=True)
class Ports:
    blobs: BlobStore
    jobs: JobStore


class JobRunner(Protocol):
    """Starts and stops jobs: the embedded process pool or Step Functions."""

    def start(self, job_id: str) -> None: ...

    def cancel(self, job_id: str) -> bool:
        """Mark the job CANCELLED and stop its work; False if it had already finished."""
        ...

    def links(self, job_id: str) -> dict[str, str]:
        """Backend-specific links for the job record (execution ARN, console URL...)."""
        ...

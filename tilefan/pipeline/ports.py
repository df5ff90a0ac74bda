"""The ports the pipeline talks to. Embedded and AWS adapters implement them.

Keys are strings. A key that is an absolute path or a URI names a user's file; any other
key is inside the store's own space (``jobs/<id>/...``).

Every store offers ``BlobStore`` and ``JobStore``. What only some backends can do is a
named capability: a store's (``PartAssembly``, ``InPlaceOutputs``, ``OutputClaims``,
``DirectPut``, ``Presigning``, ``SentUploads``, ``LocalFiles``) in
``tilefan.pipeline.store_capabilities``, a runner's (``QueuePlace``, ``Serving``) here. The
composition root wires each one into ``Ports`` (or the service) or leaves it None. Code
asks the field, never the object: a new backend learns what it may offer from these
modules, not by failing at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Protocol

import numpy as np

from tilefan.domain.plan import Plan
from tilefan.domain.records import JobRecord, Status, TileResult
from tilefan.pipeline.store_capabilities import (
    DirectPut,
    InPlaceOutputs,
    LocalFiles,
    MemoryOutputs,
    OutputClaims,
    PartAssembly,
    Presigning,
    SentUploads,
    ZarrRegions,
)

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

    def create_array(self, key: str, shape: tuple[int, ...], dtype: str, job_id: str,
                     chunks: tuple[int, ...] | None = None) -> None:
        """Start job ``job_id``'s output at ``key``, which tiles fill region by region; it
        stays invisible at ``key`` until committed. ``chunks`` (the tile shape) is the
        chunk shape of a chunked (Zarr) output, so each tile writes its own chunk."""
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
    def create_job(self, record: JobRecord, max_active: int | None = None) -> None:
        """Insert a new job; ConflictError if the id exists; TooManyJobsError if its owner
        already has ``max_active`` QUEUED or RUNNING jobs (checked and inserted atomically)."""
        ...

    def get_job(self, job_id: str, owner: str | None = None) -> JobRecord:
        """Raises JobNotFoundError, also for a job that is not ``owner``'s when one is given."""
        ...

    def list_jobs(self, limit: int, cursor: str | None = None,
                  owner: str | None = None) -> tuple[list[JobRecord], str | None]:
        """A page of jobs newest first (only ``owner``'s when given) and the next cursor."""
        ...

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
    """The two stores, and the optional capabilities of this adapter set: each is the store
    that offers it (usually ``blobs`` itself), or None where the backend lacks it; and
    ``mapped_reads``, a fact about the blob store that changes what the pipeline does."""

    blobs: BlobStore
    jobs: JobStore
    _: KW_ONLY
    assembly: PartAssembly | None = None
    in_place: InPlaceOutputs | None = None
    claims: OutputClaims | None = None
    direct_put: DirectPut | None = None
    presign: Presigning | None = None
    sent_uploads: SentUploads | None = None
    local_files: LocalFiles | None = None
    memory_outputs: MemoryOutputs | None = None
    zarr_regions: ZarrRegions | None = None
    # Whether the blob store reads stored ``.npy`` arrays through memory maps (the embedded
    # file store): a tile's column block of B is then a view of its file, so staging B's
    # panels, which spares S3 reads of whole rows, would only copy B (``pipeline.bpanels``).
    mapped_reads: bool = False


class JobRunner(Protocol):
    """Starts and stops jobs: the embedded process pool or Step Functions."""

    def start(self, job_id: str, plan: Plan | None = None) -> None:
        """Start a QUEUED job; ``plan``, the one its submission cut, spares a runner that
        plans in this process from cutting it again (one that plans elsewhere ignores it)."""
        ...

    def cancel(self, job_id: str) -> bool:
        """Mark the job CANCELLED and stop its work; False if it had already finished."""
        ...

    def links(self, job_id: str) -> dict[str, str]:
        """Backend-specific links for the job record (execution ARN, console URL...)."""
        ...


class QueuePlace(Protocol):
    """A runner that queues jobs (the embedded scheduler) says where a QUEUED job waits."""

    def queue_place(self, job_id: str) -> int | None:
        """1 for the next job to run, 2 for the one after...; None if the job is not QUEUED."""
        ...


class Serving(Protocol):
    """A runner that dispatches in the serving process (the embedded scheduler): the server
    starts it before answering requests and stops it on shutdown."""

    def serve_in_thread(self) -> None: ...

    def stop(self) -> None: ...

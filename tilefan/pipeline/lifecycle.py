"""Ending a job early: fail it with an error body, or cancel it; either drops its uncommitted output."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from tilefan.domain.records import Status, TileState
from tilefan.pipeline.inputs import output_key
from tilefan.pipeline.ports import Clock, Ports

log = logging.getLogger(__name__)


def fail_job(ports: Ports, job_id: str, error: Mapping[str, Any], *, clock: Clock = time.time) -> bool:
    """Mark the job FAILED with ``error``, then drop any uncommitted output.

    In that order, as ``cancel_job`` does: a tile recorded before the transition wrote its
    block before it too, so the discard drops it; a tile that records after finds its job
    ended and drops its own block (``run_tile``). A cleanup that fails in turn is logged:
    the job still ends FAILED with its own cause.
    """
    changed = ports.jobs.transition(job_id, Status.FAILED, error=dict(error), timings={"finished_at": clock()})
    if changed:
        discard_outputs(ports, job_id)
    return changed


def cancel_job(ports: Ports, job_id: str, *, clock: Clock = time.time) -> bool:
    """Mark the job CANCELLED (tiles still running see it and stop recording)."""
    at = clock()
    changed = ports.jobs.transition(job_id, Status.CANCELLED, timings={"finished_at": at})
    if changed:
        discard_outputs(ports, job_id)
        # Tiles in flight finish unrecorded; the report says so rather than "running" forever.
        for row in ports.jobs.tile_rows(job_id):
            if row["status"] == TileState.RUNNING:
                ports.jobs.tile_cancelled(job_id, row["tile_id"], at)
    return changed


def discard_outputs(ports: Ports, job_id: str) -> None:
    """Drop the job's uncommitted output; never raises (this runs on failure paths)."""
    try:
        record = ports.jobs.get_job(job_id)
        key = output_key(job_id, record.spec)
        if key is not None:
            ports.blobs.discard_array(key, job_id)
    except Exception:  # a leftover partial file must not hide why the job ended
        log.exception("could not discard the partial output of job %s", job_id)

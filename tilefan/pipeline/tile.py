"""Tile: compute one tile, write its partial result, and record it done exactly once.

The Lambda, the process pool and the spot worker all run tiles through ``run_tile``; its
``TileRun`` says whether this call recorded the tile or why it did not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from tilefan.compute import threads
from tilefan.domain import kernels
from tilefan.domain.atoms import find_atom_on_grid
from tilefan.domain.plan import tile_of
from tilefan.domain.records import Status, TileResult
from tilefan.domain.spec.parse import AtomsSpec, Kind, MatrixSpec
from tilefan.domain.tiling import Region, region_size
from tilefan.errors import InvalidSpecError, TileFailedError, TilefanError
from tilefan.pipeline.bpanels import read_panel, staged_layout
from tilefan.pipeline.inputs import atoms_key, matrix_block, output_key
from tilefan.pipeline.lifecycle import discard_outputs
from tilefan.pipeline.ports import Clock, Ports

AtomsKernel = Callable[..., np.ndarray]


class TileOutcome(StrEnum):
    """What one ``run_tile`` call did."""

    RECORDED = "recorded"  # this call computed the tile and recorded it done
    ALREADY_RECORDED = "already_recorded"  # a retry or duplicate delivery: computed, not counted again
    JOB_NOT_RUNNING = "job_not_running"  # cancelled or failed, before or while the tile ran


@dataclass(frozen=True)
class TileRun:
    """The outcome of one ``run_tile`` call and the result it computed (None if it computed nothing)."""

    outcome: TileOutcome
    result: TileResult | None

    @property
    def recorded(self) -> bool:
        return self.outcome is TileOutcome.RECORDED


def run_tile(
    ports: Ports,
    job_id: str,
    tile_id: int,
    *,
    worker: str = "local",
    route: str = "local",
    clock: Clock = time.time,
    atoms_kernel: AtomsKernel = kernels.atoms_potential,
) -> TileRun:
    """Compute one tile, write its partial result, and record completion exactly once.

    The returned ``TileRun`` says whether this call recorded the tile, found it already
    recorded (a retry or a duplicate delivery), or found the job no longer running.
    """
    record = ports.jobs.get_job(job_id)
    if record.status is not Status.RUNNING:
        return TileRun(TileOutcome.JOB_NOT_RUNNING, None)
    spec = record.spec
    region = tile_of(spec, tile_id)
    started = clock()
    # None for a tile already done (a duplicate delivery): it is computed, not recorded.
    attempt = ports.jobs.tile_started(job_id, tile_id, worker, route, started)
    try:
        if isinstance(spec, MatrixSpec):
            stats, nread, nwritten = _compute_matrix_tile(ports, job_id, spec, tile_id, region)
        else:
            stats, nread, nwritten = _compute_atoms_tile(ports, job_id, spec, tile_id, region, atoms_kernel)
    except TilefanError as exc:
        ports.jobs.record_tile_failed(job_id, tile_id, str(exc), clock(), attempt=attempt)
        raise
    result = TileResult(
        tile_id=tile_id, units=region_size(region), stats=stats, started_at=started,
        finished_at=clock(), worker=worker, route=route, bytes_read=nread, bytes_written=nwritten,
    )
    if ports.jobs.record_tile_done(job_id, result, attempt=attempt):
        return TileRun(TileOutcome.RECORDED, result)
    # The store refuses repeats and tiles of an ended job alike; the status tells them apart.
    status = ports.jobs.get_job(job_id).status
    running = status is Status.RUNNING
    if not running:
        ports.jobs.tile_cancelled(job_id, tile_id, clock(), attempt=attempt)  # it outlived its job's cancel
    if status in (Status.FAILED, Status.CANCELLED):
        # Its block may have landed after the job's cleanup dropped the uncommitted output.
        discard_outputs(ports, job_id)
    return TileRun(TileOutcome.ALREADY_RECORDED if running else TileOutcome.JOB_NOT_RUNNING, result)


def _compute_matrix_tile(
    ports: Ports, job_id: str, spec: MatrixSpec, tile_id: int, region: Region
) -> tuple[dict[str, float], int, int]:
    (r0, r1), (c0, c1) = region
    key = output_key(job_id, spec)
    assert key is not None
    written = False
    # A pool worker's BLAS keeps to one thread (the product, and the checksums' dot), set
    # at its first matrix tile: atoms tiles never pay for finding the BLAS libraries.
    threads.limit_blas()
    if spec.kind is Kind.MATMUL:
        a = matrix_block(ports.blobs, spec.a, (r0, r1), (0, spec.a.shape[1]))
        staged = staged_layout(ports, spec)  # the plan step staged B's panels: read this tile's alone
        if staged is not None:
            b = read_panel(ports.blobs, job_id, staged, (c0, c1))
        else:
            b = matrix_block(ports.blobs, spec.b, (0, spec.b.shape[0]), (c0, c1))
        # An output in this process's memory takes BLAS's stores itself (a rerun of the tile
        # overwrites the same region alike); any other gets the block through write_region.
        view = ports.in_place.output_region(key, job_id, region) if ports.in_place is not None else None
        written = view is not None
        block = kernels.matmul_block(a, b, spec.dtype, out=view)
    else:
        a = matrix_block(ports.blobs, spec.a, (r0, r1), (c0, c1))
        b = matrix_block(ports.blobs, spec.b, (r0, r1), (c0, c1))
        block = kernels.add_block(a, b, spec.dtype)
    stats = kernels.block_checksums(block)
    # NaN and inf in an input always reach the output block, so a finite block sum proves
    # the inputs this tile used were finite; only otherwise is it worth scanning them.
    if not (math.isfinite(stats["sum"]) and math.isfinite(stats["sumsq"])):
        _explain_nonfinite(spec, tile_id, region, a, b)
    if not written:
        ports.blobs.write_region(key, job_id, region, block)
    return stats, a.nbytes + b.nbytes, block.nbytes


def _explain_nonfinite(spec: MatrixSpec, tile_id: int, region: Region, a: np.ndarray, b: np.ndarray) -> None:
    (r0, _), (c0, _) = region
    for role, block, (dr, dc) in (("a", a, (r0, 0 if spec.kind is Kind.MATMUL else c0)),
                                  ("b", b, (0 if spec.kind is Kind.MATMUL else r0, c0))):
        bad = ~np.isfinite(block)
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            raise InvalidSpecError(role, f"contains NaN or inf (first at row {i + dr}, column {j + dc})")
    if spec.kind is Kind.MATMUL:
        # sumsq can overflow while the block itself is finite; that is not an error.
        return
    raise TileFailedError(tile_id, "the result overflowed to inf; use float64 or rescale the inputs")


def _compute_atoms_tile(
    ports: Ports, job_id: str, spec: AtomsSpec, tile_id: int, region: Region, kernel: AtomsKernel
) -> tuple[dict[str, Any], int, int]:
    table = ports.blobs.read_array(atoms_key(job_id))
    phi = kernel(table, spec.origin, spec.spacing, spec.softening, region, spec.precision)
    found = kernels.finite_block_min(phi, region, spec.grid)
    if found is None:
        hit = find_atom_on_grid(table, spec)
        where = f"atom {hit[0]} sits on grid point {hit[1]}" if hit else "a distance rounded to zero"
        raise TileFailedError(tile_id, f"the potential is infinite: {where}; set a softening length > 0")
    value, flat = found
    written = 0
    if spec.field_out:
        ports.blobs.write_region(spec.field_out, job_id, region, phi)
        written = phi.nbytes
    return {"min": value, "flat": flat}, table.nbytes, written

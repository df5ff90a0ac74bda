"""Reduce: once every tile is recorded done, combine, verify if asked, commit, finish."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from tilefan.domain.bpanels import panel_layout
from tilefan.domain.chunks import is_zarr
from tilefan.domain.combine import combine_all
from tilefan.domain.plan import tile_of, tiles_total
from tilefan.domain.records import JobRecord, Status
from tilefan.domain.spec.parse import AtomsSpec, JobSpec, MatrixSpec
from tilefan.domain.tiling import Region
from tilefan.errors import ConflictError, IncompleteJobError, VerificationFailedError
from tilefan.pipeline import verify
from tilefan.pipeline.assemble import assemble_output
from tilefan.pipeline.bpanels import panels_prefix
from tilefan.pipeline.inputs import atoms_key, output_key
from tilefan.pipeline.ports import Clock, Ports


def reduce_job(
    ports: Ports, job_id: str, *, clock: Clock = time.time, verify_seed: int | None = None
) -> JobRecord:
    """Check every tile is recorded done, combine, verify if asked, commit, finish.

    Refuses (IncompleteJobError) while any tile is missing, whatever the runner claims.
    """
    started = clock()
    record = ports.jobs.get_job(job_id)
    if record.status is not Status.RUNNING:
        raise ConflictError(f"job {job_id} is {record.status.value}, not RUNNING; nothing to reduce")
    spec = record.spec
    results = ports.jobs.tile_results(job_id)
    done = {r.tile_id for r in results}
    missing = [t for t in range(record.tiles_total) if t not in done]
    if missing or record.tiles_total == 0:
        raise IncompleteJobError(job_id, missing)
    combined = combine_all(spec.kind.value, (r.stats for r in results))
    seed = verify_seed if verify_seed is not None else int(job_id[:8], 16) if _is_hex(job_id[:8]) else 0
    if isinstance(spec, MatrixSpec):
        result = _finish_matrix(ports, job_id, spec, combined, seed)
    else:
        result = _finish_atoms(ports, job_id, spec, combined, seed)
    tile_seconds = sum(r.finished_at - r.started_at for r in results)
    finished = clock()
    timings = {"tiles_s_sum": tile_seconds, "reduce_s": finished - started, "finished_at": finished}
    if "started_at" in record.timings:
        timings["wall_s"] = finished - record.timings["started_at"]
    if not ports.jobs.transition(job_id, Status.SUCCEEDED, timings=timings, result=result):
        # Cancelled between our commit and this write: take the published output back, so
        # a CANCELLED job never leaves one behind.
        for location in (result.get("output"), result.get("field")):
            if location:
                ports.blobs.delete(location)
        raise ConflictError(f"job {job_id} was {ports.jobs.get_job(job_id).status.value} before it could finish")
    if panel_layout(spec) is not None:
        # A copy of B, needed by no one now. Asked of the spec alone, not of these ports
        # (``staged_layout``): a job an earlier version staged on a store that now reads B
        # in place leaves no pieces behind either; where nothing was staged, nothing to drop.
        ports.blobs.delete_prefix(panels_prefix(job_id))
    return ports.jobs.get_job(job_id)


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdef" for c in text.lower())


def _finish_matrix(
    ports: Ports, job_id: str, spec: MatrixSpec, combined: Mapping[str, float], seed: int
) -> dict[str, Any]:
    key = output_key(job_id, spec)
    assert key is not None
    result: dict[str, Any] = {
        "shape": list(spec.out_shape),
        "dtype": spec.dtype,
        "checksums": {"sum": combined["sum"], "frobenius": math.sqrt(combined["sumsq"])},
    }
    if spec.verify:
        # Verify before committing: a result that fails is never published.
        check = verify.verify_matrix(ports.blobs, job_id, spec, key, seed)
        result["verification"] = check
        if not check["passed"]:
            ports.blobs.discard_array(key, job_id)
            raise VerificationFailedError(check)
    result["output"] = _publish(ports, key, job_id, _tiles(spec))
    return result


def _finish_atoms(
    ports: Ports, job_id: str, spec: AtomsSpec, combined: Mapping[str, Any], seed: int
) -> dict[str, Any]:
    flat = int(combined["flat"])
    index = [int(v) for v in np.unravel_index(flat, spec.grid)]
    point = [spec.origin[a] + spec.spacing * index[a] for a in range(3)]
    result: dict[str, Any] = {
        "min_value": float(combined["min"]),
        "min_index": index,
        "min_point": point,
        "grid": list(spec.grid),
        "precision": spec.precision,
    }
    if spec.verify:
        table = ports.blobs.read_array(atoms_key(job_id))
        check = verify.verify_atoms(ports.blobs, job_id, spec, table, result, seed, _field_reader(ports, job_id, spec))
        result["verification"] = check
        if not check["passed"]:
            if spec.field_out:
                ports.blobs.discard_array(spec.field_out, job_id)
            raise VerificationFailedError(check)
    if spec.field_out:
        result["field"] = _publish(ports, spec.field_out, job_id, _tiles(spec))
    return result


def _field_reader(ports: Ports, job_id: str, spec: AtomsSpec) -> verify.FieldReader | None:
    """How the check reads the field at its sampled points. From a store that keeps tiles'
    blocks apart (S3), where each read is a round trip, its streams at once: from the parts
    (a ranged GET a point) or, for a Zarr field, its layout read once and then a chunk's
    (ranged) read a point. Elsewhere (files, memory: ``None``) one by one. Only when the
    store the points come from is that store itself, not a wrapper around it."""
    key, assembly = spec.field_out, ports.assembly
    if key is None or assembly is None or assembly is not ports.blobs:
        return None
    if is_zarr(key):
        zarr, streams = ports.zarr_regions, assembly.io_streams()
        if zarr is None or zarr is not ports.blobs:
            return None
        # Its metadata read once, each point's cell a ranged GET of its chunk.
        return lambda at: verify.field_at(zarr.zarr_region_reader(key, job_id), at, streams)
    return functools.partial(verify.field_at_parts, assembly, key, job_id, tile=spec.tile)


def _tiles(spec: JobSpec) -> dict[int, Region]:
    """Every tile of the job and the region of the output it writes."""
    return {t: tile_of(spec, t) for t in range(tiles_total(spec))}


def _publish(ports: Ports, key: str, job_id: str, tiles: Mapping[int, Region]) -> str:
    """Commit the output. A store that keeps tiles' blocks apart (S3) assembles it here,
    refusing (IncompleteJobError) if any tile's block is missing; a store that wrote the
    tiles in place (files, memory) has it whole already and only publishes it. A Zarr
    output's chunks are the tiles, so every store only checks them and publishes it."""
    if ports.assembly is not None and not is_zarr(key):
        return assemble_output(ports.assembly, key, job_id, tiles)
    return ports.blobs.commit_array(key, job_id)

"""The pipeline steps, as functions over ports: submit, plan, tile, reduce, fail, cancel.

Both runners call exactly these: the embedded process pool directly, and the AWS state
machine through thin Lambda handlers. Nothing here knows which backend it is on.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tilefan.domain import kernels
from tilefan.domain.atoms import check_no_atom_on_grid, find_atom_on_grid
from tilefan.domain.combine import combine_all
from tilefan.domain.plan import Plan, fit_to_lambda, plan, tile_of, tiles_total
from tilefan.domain.randgen import random_atoms
from tilefan.domain.records import JobRecord, Status, TileResult
from tilefan.domain.routing import RoutePolicy
from tilefan.domain.spec import (
    AtomsSpec,
    JobSpec,
    Kind,
    Limits,
    MatrixSpec,
    RandomAtoms,
    parse_spec,
)
from tilefan.domain.tiling import Region, region_size
from tilefan.errors import (
    BlobNotFoundError,
    ConflictError,
    IncompleteJobError,
    InvalidSpecError,
    TileFailedError,
    TilefanError,
)
from tilefan.pipeline import verify
from tilefan.pipeline.inputs import (
    atoms_key,
    items_key,
    load_atoms_file,
    manifest_key,
    matrix_block,
    output_key,
)
from tilefan.pipeline.ports import Ports

Clock = Callable[[], float]
AtomsKernel = Callable[..., np.ndarray]


# --------------------------------------------------------------------------- submit


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


def admit(ports: Ports, raw: Any, limits: Limits, policy: RoutePolicy | None = None) -> JobSpec:
    """Validate a raw spec at the door, reading file headers through the blob store.

    When the user left the tile size to us, pick one that keeps the job on Lambda if that
    is no dearer than sending its big tiles to spot (``plan.fit_to_lambda``).
    """
    spec = parse_spec(
        raw,
        limits=limits,
        inspect=ports.blobs.array_info,
        load_atoms=lambda uri: load_atoms_file(ports.blobs, uri),
    )
    if raw.get("tile") is None:
        spec = fit_to_lambda(spec, policy)
    return spec


def submit_job(
    ports: Ports, raw: Any, *, limits: Limits | None = None, clock: Clock = time.time,
    job_id: str | None = None, links: Mapping[str, str] | None = None, policy: RoutePolicy | None = None,
) -> JobRecord:
    """Validate and record a new job as QUEUED. Raises InvalidSpecError, writing nothing."""
    spec = admit(ports, raw, limits or Limits(), policy)
    record = JobRecord(
        job_id=job_id or new_job_id(),
        kind=spec.kind.value,
        status=Status.QUEUED,
        spec=spec,
        created_at=clock(),
        tiles_total=tiles_total(spec),
        units_total=spec.units_total,
        links=dict(links or {}),
    )
    ports.jobs.create_job(record)
    return record


# --------------------------------------------------------------------------- plan


def plan_job(ports: Ports, job_id: str, *, clock: Clock = time.time, policy: RoutePolicy | None = None) -> Plan:
    """Plan a QUEUED job, stage what its tiles share, and mark it RUNNING."""
    record = ports.jobs.get_job(job_id)
    spec = record.spec
    started = clock()
    the_plan = plan(job_id, spec, policy)
    if isinstance(spec, AtomsSpec):
        # Tiles all need the whole table: stage it once, in one format, in the job's space.
        table = _atoms_table(ports, spec)
        check_no_atom_on_grid(table, spec)
        ports.blobs.write_array(atoms_key(job_id), table)
    ports.blobs.put_json(manifest_key(job_id), the_plan.manifest())
    ports.blobs.put_json(items_key(job_id), tile_items(the_plan))
    out = output_key(job_id, spec)
    if out is not None:
        ports.blobs.create_array(out, tuple(the_plan.shape), spec.dtype, job_id)
    ports.jobs.set_plan(job_id, len(the_plan.tiles), the_plan.units_total)
    ports.jobs.transition(job_id, Status.RUNNING, timings={"started_at": started, "plan_s": clock() - started})
    return the_plan


def tile_items(the_plan: Plan) -> list[dict[str, Any]]:
    """One item per tile, as the state machine's Maps take them (the route picks the branch)."""
    return [{"job_id": the_plan.job_id, "tile_id": t.tile_id, "route": t.route} for t in the_plan.tiles]


def _atoms_table(ports: Ports, spec: AtomsSpec) -> np.ndarray:
    if isinstance(spec.atoms, RandomAtoms):
        return random_atoms(spec.atoms, spec.grid, spec.origin, spec.spacing)
    return load_atoms_file(ports.blobs, spec.atoms.uri)


# --------------------------------------------------------------------------- tile


def run_tile(
    ports: Ports,
    job_id: str,
    tile_id: int,
    *,
    worker: str = "local",
    route: str = "local",
    clock: Clock = time.time,
    atoms_kernel: AtomsKernel = kernels.atoms_potential,
) -> bool:
    """Compute one tile, write its partial result, and record completion exactly once.

    Returns True when this call recorded the tile, False when it was already recorded
    (a retry or a duplicate delivery) or the job is no longer running.
    """
    record = ports.jobs.get_job(job_id)
    if record.status is not Status.RUNNING:
        return False
    spec = record.spec
    region = tile_of(spec, tile_id)
    started = clock()
    ports.jobs.tile_started(job_id, tile_id, worker, route, started)
    try:
        if isinstance(spec, MatrixSpec):
            stats, nread, nwritten = _matrix_tile(ports, job_id, spec, tile_id, region)
        else:
            stats, nread, nwritten = _atoms_tile(ports, job_id, spec, tile_id, region, atoms_kernel)
    except TilefanError as exc:
        ports.jobs.record_tile_failed(job_id, tile_id, str(exc), clock())
        raise
    result = TileResult(
        tile_id=tile_id, units=region_size(region), stats=stats, started_at=started,
        finished_at=clock(), worker=worker, route=route, bytes_read=nread, bytes_written=nwritten,
    )
    return ports.jobs.record_tile_done(job_id, result)


def _matrix_tile(
    ports: Ports, job_id: str, spec: MatrixSpec, tile_id: int, region: Region
) -> tuple[dict[str, float], int, int]:
    (r0, r1), (c0, c1) = region
    if spec.kind is Kind.MATMUL:
        a = matrix_block(ports.blobs, spec.a, (r0, r1), (0, spec.a.shape[1]))
        b = matrix_block(ports.blobs, spec.b, (0, spec.b.shape[0]), (c0, c1))
        block = kernels.matmul_block(a, b, spec.dtype)
    else:
        a = matrix_block(ports.blobs, spec.a, (r0, r1), (c0, c1))
        b = matrix_block(ports.blobs, spec.b, (r0, r1), (c0, c1))
        block = kernels.add_block(a, b, spec.dtype)
    flat = block.reshape(-1)
    # Checksums accumulate in float64 whatever the output dtype.
    flat64 = flat if flat.dtype == np.float64 else flat.astype(np.float64)
    stats = {"sum": float(flat64.sum()), "sumsq": float(np.dot(flat64, flat64))}
    # NaN and inf in an input always reach the output block, so a finite block sum proves
    # the inputs this tile used were finite; only otherwise is it worth scanning them.
    if not (math.isfinite(stats["sum"]) and math.isfinite(stats["sumsq"])):
        _explain_nonfinite(spec, tile_id, region, a, b)
    key = output_key(job_id, spec)
    assert key is not None
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


def _atoms_tile(
    ports: Ports, job_id: str, spec: AtomsSpec, tile_id: int, region: Region, kernel: AtomsKernel
) -> tuple[dict[str, Any], int, int]:
    table = ports.blobs.read_array(atoms_key(job_id))
    phi = kernel(table, spec.origin, spec.spacing, spec.softening, region, spec.precision)
    if not np.isfinite(phi).all():
        hit = find_atom_on_grid(table, spec)
        where = f"atom {hit[0]} sits on grid point {hit[1]}" if hit else "a distance rounded to zero"
        raise TileFailedError(tile_id, f"the potential is infinite: {where}; set a softening length > 0")
    value, flat = kernels.block_min(phi, region, spec.grid)
    written = 0
    if spec.field_out:
        ports.blobs.write_region(spec.field_out, job_id, region, phi)
        written = phi.nbytes
    return {"min": value, "flat": flat}, table.nbytes, written


# --------------------------------------------------------------------------- reduce


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
            raise verify.VerificationFailedError(check)
    result["output"] = ports.blobs.commit_array(key, job_id)
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
        check = verify.verify_atoms(ports.blobs, job_id, spec, table, result, seed)
        result["verification"] = check
        if not check["passed"]:
            if spec.field_out:
                ports.blobs.discard_array(spec.field_out, job_id)
            raise verify.VerificationFailedError(check)
    if spec.field_out:
        result["field"] = ports.blobs.commit_array(spec.field_out, job_id)
    return result


# --------------------------------------------------------------------------- fail / cancel


def error_body(exc: BaseException) -> dict[str, Any]:
    """The ``error`` object of a job record for an exception."""
    if isinstance(exc, TilefanError):
        body: dict[str, Any] = {"code": exc.code, "message": str(exc)}
        if isinstance(exc, InvalidSpecError):
            body["field"] = exc.field
        if isinstance(exc, TileFailedError):
            body["tile_id"] = exc.tile_id
        return body
    return {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}


def fail_job(ports: Ports, job_id: str, error: Mapping[str, Any], *, clock: Clock = time.time) -> bool:
    """Mark the job FAILED with ``error`` and drop any uncommitted output."""
    _discard_outputs(ports, job_id)
    return ports.jobs.transition(job_id, Status.FAILED, error=dict(error), timings={"finished_at": clock()})


def cancel_job(ports: Ports, job_id: str, *, clock: Clock = time.time) -> bool:
    """Mark the job CANCELLED (tiles still running see it and stop recording)."""
    changed = ports.jobs.transition(job_id, Status.CANCELLED, timings={"finished_at": clock()})
    if changed:
        _discard_outputs(ports, job_id)
    return changed


def _discard_outputs(ports: Ports, job_id: str) -> None:
    record = ports.jobs.get_job(job_id)
    key = output_key(job_id, record.spec)
    if key is not None:
        ports.blobs.discard_array(key, job_id)


def route_counts(tiles: list[dict[str, Any]]) -> dict[str, int]:
    """How many tiles went each way, e.g. ``{"lambda": 12, "spot": 4}``.

    >>> route_counts([{"route": "spot"}, {"route": "lambda"}, {"route": "spot"}, {"route": None}])
    {'lambda': 1, 'spot': 2}
    """
    counts: dict[str, int] = {}
    for t in tiles:
        if t.get("route"):
            counts[t["route"]] = counts.get(t["route"], 0) + 1
    return dict(sorted(counts.items()))


def tile_report(ports: Ports, job_id: str) -> dict[str, Any]:
    """Per-tile start, end, duration, route and worker, plus a summary."""
    record = ports.jobs.get_job(job_id)
    rows = ports.jobs.tile_rows(job_id)
    tiles = []
    for r in rows:
        duration = None
        if r.get("started_at") is not None and r.get("finished_at") is not None:
            duration = r["finished_at"] - r["started_at"]
        tiles.append({
            "tile_id": r["tile_id"], "status": r["status"], "started_at": r.get("started_at"),
            "finished_at": r.get("finished_at"), "duration_s": duration, "route": r.get("route"),
            "worker": r.get("worker"), "attempts": r.get("attempts"), "error": r.get("error"),
        })
    durations = [t["duration_s"] for t in tiles if t["status"] == "done" and t["duration_s"] is not None]
    summary = {
        "status": record.status.value,
        "tiles_total": record.tiles_total,
        "tiles_done": sum(1 for t in tiles if t["status"] == "done"),
        "tiles_failed": sum(1 for t in tiles if t["status"] == "failed"),
        "tile_seconds_total": sum(durations),
        "tile_seconds_max": max(durations, default=0.0),
        "tile_seconds_mean": (sum(durations) / len(durations)) if durations else 0.0,
        "routes": sorted({t["route"] for t in tiles if t["route"]}),
        "route_counts": route_counts(tiles),
    }
    summary.update(_planned(ports, job_id))
    return {"job_id": job_id, "summary": summary, "tiles": tiles}


def _planned(ports: Ports, job_id: str) -> dict[str, Any]:
    """The routes the planner chose for every tile (started or not) and its cost estimate."""
    try:
        manifest = ports.blobs.get_json(manifest_key(job_id))
    except BlobNotFoundError:  # not planned yet
        return {}
    out: dict[str, Any] = {"planned_routes": route_counts(manifest.get("tiles", []))}
    if "cost_estimate" in manifest:
        out["cost_estimate"] = manifest["cost_estimate"]
    return out

"""The plan step: a pure function from a resolved spec to a list of tiles with estimates.

No I/O happens here. The embedded pool, the Lambda handlers and ``--dry-run`` all consume
the same ``Plan``; ``Plan.manifest()`` is what gets stored next to the job. Each tile gets
a route (``lambda`` or ``spot``, see ``routing``); ``tile_fit.fit_to_lambda`` picks smaller
tiles when that keeps a job on Lambda for no more money.

A plan remembers the spec and the policy it was cut from (``Plan.is_plan_of``), so a
submission plans its job once and hands that plan on: the size fit returns the plan it
chose, and the guardrails and the plan step use a plan they are handed when it is theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tilefan.domain.bpanels import PanelLayout, StagingReport, a_bytes, input_read, staging_report
from tilefan.domain.routing import (
    LAMBDA,
    SPOT,
    CostEstimate,
    RoutePolicy,
    TileCost,
    choose_route,
    estimate_cost,
    lambda_seconds,
    spot_seconds,
)
from tilefan.domain.spec.parse import AtomsSpec, JobSpec, Kind, MatrixSpec
from tilefan.domain.tiling import Region, num_tiles, region_size, tile_region

# Flops charged per atom–point pair: two subtractions, three multiply-adds, a reciprocal
# square root and the energy multiply-add.
FLOPS_PER_PAIR = 10


@dataclass(frozen=True)
class TilePlan:
    """One tile of a plan: its region, its work and bytes, its route and estimated times."""

    tile_id: int
    region: Region
    units: int
    flops: int
    bytes_in: int
    bytes_out: int
    mem_bytes: int
    route: str
    lambda_s: float = 0.0  # estimated run time on a Lambda, and on a spot worker
    spot_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tile_id": self.tile_id,
            "region": [list(r) for r in self.region],
            "units": self.units,
            "flops": self.flops,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "mem_bytes": self.mem_bytes,
            "route": self.route,
            "est_lambda_s": round(self.lambda_s, 3),
            "est_spot_s": round(self.spot_s, 3),
        }


@dataclass(frozen=True)
class Plan:
    """A job cut into tiles, with their routes and the job's totals."""

    job_id: str
    kind: str
    shape: tuple[int, ...]
    tile: tuple[int, ...]
    tiles: tuple[TilePlan, ...]
    cost: CostEstimate | None = None
    b_panels: StagingReport | None = None  # a matmul whose stored B could be staged as panels
    # What it was cut from, so a step handed a plan can tell it is the one it would cut;
    # neither is part of the plan's value (nor of its manifest).
    spec: JobSpec | None = field(default=None, compare=False, repr=False)
    policy: RoutePolicy | None = field(default=None, compare=False, repr=False)

    def is_plan_of(self, spec: JobSpec, policy: RoutePolicy) -> bool:
        """Whether this is ``plan(…, spec, policy)``: planning is pure, so it may stand in for planning again."""
        return self.spec == spec and self.policy == policy

    def for_job(self, job_id: str) -> Plan:
        """The same plan under the job's id (a submission plans before it names the job)."""
        return self if job_id == self.job_id else replace(self, job_id=job_id)

    @property
    def units_total(self) -> int:
        return sum(t.units for t in self.tiles)

    def tiles_per_route(self) -> dict[str, int]:
        """
        >>> from tilefan.domain.routing import Prices
        >>> from tilefan.domain.spec.parse import RandomMatrix
        >>> m = RandomMatrix(shape=(4, 4), dtype="float64", seed=0, stream=0)
        >>> policy = RoutePolicy(prices=Prices.unpriced())
        >>> plan("j", MatrixSpec(Kind.ADD, m, m, None, (2, 4), False, route="spot"), policy).tiles_per_route()
        {'lambda': 0, 'spot': 2}
        """
        return {LAMBDA: sum(1 for t in self.tiles if t.route == LAMBDA),
                SPOT: sum(1 for t in self.tiles if t.route == SPOT)}

    def totals(self) -> dict[str, Any]:
        return {
            "tiles": len(self.tiles),
            "units": self.units_total,
            "flops": sum(t.flops for t in self.tiles),
            "bytes_in": sum(t.bytes_in for t in self.tiles),
            "bytes_out": sum(t.bytes_out for t in self.tiles),
            "max_tile_mem_bytes": max(t.mem_bytes for t in self.tiles),
            "routes": self.tiles_per_route(),
        }

    def manifest(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "job_id": self.job_id,
            "kind": self.kind,
            "shape": list(self.shape),
            "tile": list(self.tile),
            "totals": self.totals(),
            "tiles": [t.to_dict() for t in self.tiles],
        }
        if self.cost is not None:
            doc["cost_estimate"] = self.cost.to_dict()
        if self.b_panels is not None:
            doc["b_panels"] = self.b_panels.to_dict()
        return doc


def output_shape(spec: JobSpec) -> tuple[int, ...]:
    return spec.grid if isinstance(spec, AtomsSpec) else spec.out_shape


def tile_of(spec: JobSpec, tile_id: int) -> Region:
    return tile_region(output_shape(spec), spec.tile, tile_id)


def tiles_total(spec: JobSpec) -> int:
    return num_tiles(output_shape(spec), spec.tile)


def _plan_matrix_tile(
    spec: MatrixSpec, tile_id: int, region: Region, policy: RoutePolicy, staged: PanelLayout | None
) -> TilePlan:
    item = np.dtype(spec.dtype).itemsize
    (r0, r1), (c0, c1) = region
    rows, cols = r1 - r0, c1 - c0
    units = rows * cols
    if spec.kind is Kind.MATMUL:
        k = spec.a.shape[1]
        flops = 2 * rows * cols * k
        a_read, a_chunk = input_read(spec.a, rows, k, item)
        b_read, b_chunk = input_read(spec.b, k, cols, item, staged)
        bytes_in = a_read + b_read
        # The input panels, the output block, a contiguous copy of the B panel BLAS may
        # take, and one chunk of whole rows while a stored panel is read.
        mem = (rows * k + k * cols) * item + units * item + k * cols * item + max(a_chunk, b_chunk)
    else:
        flops = units
        (a_read, a_chunk) = input_read(spec.a, rows, cols, item)
        (b_read, b_chunk) = input_read(spec.b, rows, cols, item)
        bytes_in = a_read + b_read
        mem = 3 * units * item + max(a_chunk, b_chunk)
    bytes_out = units * item
    return _tile(spec, tile_id, region, units, flops, bytes_in, bytes_out, mem, policy)


def block_bytes_in(spec: JobSpec, tile: TilePlan) -> int:
    """The input bytes a tile's blocks hold: what a memory-mapped local read touches. On S3
    a stored input's block narrower than its matrix costs its whole rows (``bytes_in``)."""
    if isinstance(spec, AtomsSpec):
        return tile.bytes_in
    item = np.dtype(spec.dtype).itemsize
    (r0, r1), (c0, c1) = tile.region
    rows, cols = r1 - r0, c1 - c0
    if spec.kind is Kind.MATMUL:
        k = spec.a.shape[1]
        return (rows * k + k * cols) * item
    return 2 * rows * cols * item


def _plan_atoms_tile(spec: AtomsSpec, tile_id: int, region: Region, policy: RoutePolicy) -> TilePlan:
    item = np.dtype(spec.precision).itemsize
    units = region_size(region)
    flops = FLOPS_PER_PAIR * units * spec.atoms.count
    bytes_in = 32 * spec.atoms.count
    bytes_out = units * item if spec.field_out else 0
    mem = bytes_in + 2 * units * item
    return _tile(spec, tile_id, region, units, flops, bytes_in, bytes_out, mem, policy)


def _tile(
    spec: JobSpec, tile_id: int, region: Region, units: int, flops: int, bytes_in: int, bytes_out: int, mem: int,
    policy: RoutePolicy,
) -> TilePlan:
    atoms = isinstance(spec, AtomsSpec)
    precision = spec.precision if isinstance(spec, AtomsSpec) else "float64"
    io = bytes_in + bytes_out
    route = choose_route(mem, flops, policy, io_bytes=io, atoms=atoms, precision=precision, force=spec.route)
    return TilePlan(
        tile_id, region, units, flops, bytes_in, bytes_out, mem, route,
        lambda_s=lambda_seconds(flops, io, policy, atoms=atoms, precision=precision),
        spot_s=spot_seconds(flops, io, policy, atoms=atoms, precision=precision),
    )


def plan(job_id: str, spec: JobSpec, policy: RoutePolicy) -> Plan:
    """Cut ``spec`` into tiles. Deterministic: the same spec always gives the same plan."""
    shape = output_shape(spec)
    tiles = []
    staging = None
    if isinstance(spec, MatrixSpec):
        staging = staging_report(spec, a_bytes(spec), policy.lambda_io_mb_s)
    staged = staging.layout if staging is not None and staging.staged else None
    for tile_id in range(tiles_total(spec)):
        region = tile_region(shape, spec.tile, tile_id)
        if isinstance(spec, AtomsSpec):
            tiles.append(_plan_atoms_tile(spec, tile_id, region, policy))
        else:
            tiles.append(_plan_matrix_tile(spec, tile_id, region, policy, staged))
    cost = estimate_cost((TileCost(t.route, t.lambda_s, t.spot_s) for t in tiles), policy,
                         plan_s=staging.est_s if staging is not None else 0.0)
    return Plan(job_id=job_id, kind=spec.kind.value, shape=tuple(shape), tile=tuple(spec.tile), tiles=tuple(tiles),
                cost=cost, b_panels=staging, spec=spec, policy=policy)


def plan_unless_planned(job_id: str, spec: JobSpec, policy: RoutePolicy, planned: Plan | None) -> Plan:
    """``planned`` (under ``job_id``) when it is ``spec``'s plan under ``policy``, else the plan cut now."""
    if planned is not None and planned.is_plan_of(spec, policy):
        return planned.for_job(job_id)
    return plan(job_id, spec, policy)

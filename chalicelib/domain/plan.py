"""The plan step: a pure function from a resolved spec to a list of tiles with estimates.

No I/O happens here. The embedded pool, the Lambda handlers and ``--dry-run`` all consume
the same ``Plan``; ``Plan.manifest()`` is what gets stored next to the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from chalicelib.domain.routing import RoutePolicy, choose_route
from chalicelib.domain.spec import AtomsSpec, JobSpec, Kind, MatrixSpec
from chalicelib.domain.tiling import Region, num_tiles, region_size, tile_region

# Flops charged per atom–point pair: two subtractions, three multiply-adds, a reciprocal
# square root and the energy multiply-add.
FLOPS_PER_PAIR = 10


@dataclass(frozen=True)
class TilePlan:
    tile_id: int
    region: Region
    units: int
    flops: int
    bytes_in: int
    bytes_out: int
    mem_bytes: int
    route: str

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
        }


@dataclass(frozen=True)
class Plan:
    job_id: str
    kind: str
    shape: tuple[int, ...]
    tile: tuple[int, ...]
    tiles: tuple[TilePlan, ...]

    @property
    def units_total(self) -> int:
        return sum(t.units for t in self.tiles)

    def totals(self) -> dict[str, int]:
        return {
            "tiles": len(self.tiles),
            "units": self.units_total,
            "flops": sum(t.flops for t in self.tiles),
            "bytes_in": sum(t.bytes_in for t in self.tiles),
            "bytes_out": sum(t.bytes_out for t in self.tiles),
            "max_tile_mem_bytes": max(t.mem_bytes for t in self.tiles),
        }

    def manifest(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "shape": list(self.shape),
            "tile": list(self.tile),
            "totals": self.totals(),
            "tiles": [t.to_dict() for t in self.tiles],
        }


def output_shape(spec: JobSpec) -> tuple[int, ...]:
    return spec.grid if isinstance(spec, AtomsSpec) else spec.out_shape


def tile_of(spec: JobSpec, tile_id: int) -> Region:
    return tile_region(output_shape(spec), spec.tile, tile_id)


def tiles_total(spec: JobSpec) -> int:
    return num_tiles(output_shape(spec), spec.tile)


def _matrix_tile(spec: MatrixSpec, tile_id: int, region: Region, policy: RoutePolicy) -> TilePlan:
    item = np.dtype(spec.dtype).itemsize
    (r0, r1), (c0, c1) = region
    rows, cols = r1 - r0, c1 - c0
    units = rows * cols
    if spec.kind is Kind.MATMUL:
        k = spec.a.shape[1]
        flops = 2 * rows * cols * k
        bytes_in = (rows * k + k * cols) * item
        # Inputs, the output block, and a contiguous copy of the B panel BLAS may take.
        mem = bytes_in + units * item + k * cols * item
    else:
        flops = units
        bytes_in = 2 * units * item
        mem = 3 * units * item
    bytes_out = units * item
    route = choose_route(mem, flops, policy)
    return TilePlan(tile_id, region, units, flops, bytes_in, bytes_out, mem, route)


def _atoms_tile(spec: AtomsSpec, tile_id: int, region: Region, policy: RoutePolicy) -> TilePlan:
    item = np.dtype(spec.precision).itemsize
    units = region_size(region)
    flops = FLOPS_PER_PAIR * units * spec.atoms.count
    bytes_in = 32 * spec.atoms.count
    bytes_out = units * item if spec.field_out else 0
    mem = bytes_in + 2 * units * item
    route = choose_route(mem, flops, policy)
    return TilePlan(tile_id, region, units, flops, bytes_in, bytes_out, mem, route)


def plan(job_id: str, spec: JobSpec, policy: RoutePolicy | None = None) -> Plan:
    """Cut ``spec`` into tiles. Deterministic: the same spec always gives the same plan."""
    policy = policy or RoutePolicy()
    shape = output_shape(spec)
    tiles = []
    for tile_id in range(tiles_total(spec)):
        region = tile_region(shape, spec.tile, tile_id)
        if isinstance(spec, AtomsSpec):
            tiles.append(_atoms_tile(spec, tile_id, region, policy))
        else:
            tiles.append(_matrix_tile(spec, tile_id, region, policy))
    return Plan(job_id=job_id, kind=spec.kind.value, shape=tuple(shape), tile=tuple(spec.tile), tiles=tuple(tiles))

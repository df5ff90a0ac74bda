"""Plan: cut a QUEUED job into routed tiles, stage what its tiles share, mark it RUNNING.

The tiles are cut once per job: a step handed the submission's plan uses it, and a runner
resuming a RUNNING job reads the tile list this step stored (``planned_tiles``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tilefan.domain.atoms import check_no_atom_on_grid
from tilefan.domain.chunks import is_zarr
from tilefan.domain.plan import Plan, plan, plan_unless_planned
from tilefan.domain.randgen import random_atoms
from tilefan.domain.records import Status
from tilefan.domain.routing import RoutePolicy
from tilefan.domain.spec.parse import AtomsSpec, JobSpec, RandomAtoms
from tilefan.domain.units import factor
from tilefan.errors import BlobNotFoundError
from tilefan.pipeline.bpanels import stage_panels
from tilefan.pipeline.inputs import atoms_key, items_key, load_atoms_file, manifest_key, output_key
from tilefan.pipeline.ports import Clock, Ports
from tilefan.settings import list_policy


def plan_job(
    ports: Ports, job_id: str, *, clock: Clock = time.time, policy: RoutePolicy | None = None,
    planned: Plan | None = None,
) -> Plan:
    """Plan a QUEUED job, stage what its tiles share, and mark it RUNNING. ``planned``, the
    plan its submission cut (``submit(...).plan``), is used when it is this job's plan.
    Without a ``policy`` the job is planned at the planner's defaults and the list prices."""
    record = ports.jobs.get_job(job_id)
    spec = record.spec
    started = clock()
    the_plan = plan_unless_planned(job_id, spec, policy or list_policy(), planned)
    if isinstance(spec, AtomsSpec):
        # Tiles all need the whole table: stage it once, in one format, in the job's space.
        table = _atoms_table(ports, spec)
        check_no_atom_on_grid(table, spec)
        ports.blobs.write_array(atoms_key(job_id), table)
    # A stored B that tiles would each read whole rows of: cut it into panels once.
    stage_panels(ports, job_id, spec)
    ports.blobs.put_json(manifest_key(job_id), the_plan.manifest())
    ports.blobs.put_json(items_key(job_id), tile_items(the_plan))
    out = output_key(job_id, spec)
    if out is not None:
        if is_zarr(out):
            # Its chunks are the tiles: each tile writes one chunk, and nothing is assembled.
            chunks = tuple(min(t, n) for t, n in zip(the_plan.tile, the_plan.shape, strict=True))
            ports.blobs.create_array(out, tuple(the_plan.shape), spec.dtype, job_id, chunks=chunks)
        else:
            ports.blobs.create_array(out, tuple(the_plan.shape), spec.dtype, job_id)
    ports.jobs.set_plan(job_id, len(the_plan.tiles), the_plan.units_total)
    ports.jobs.transition(job_id, Status.RUNNING, timings={"started_at": started, "plan_s": clock() - started})
    return the_plan


def tile_items(the_plan: Plan) -> list[dict[str, Any]]:
    """One item per tile, as the state machine's Maps take them (the route picks the branch)."""
    return [{"job_id": the_plan.job_id, "tile_id": t.tile_id, "route": t.route} for t in the_plan.tiles]


def planned_tiles(ports: Ports, job_id: str, spec: JobSpec, policy: RoutePolicy | None = None) -> list[tuple[int, str]]:
    """A planned job's tiles as ``(tile id, route)`` in tile order: the list ``plan_job``
    stored, so a runner picking the job up (after its plan step, or resuming it) need not
    plan it again. Without a stored list (a record made RUNNING by hand) the job is planned
    here: planning is pure, so that gives the same tiles."""
    try:
        items = ports.blobs.get_json(items_key(job_id))
    except BlobNotFoundError:
        return [(t.tile_id, t.route) for t in plan(job_id, spec, policy or list_policy()).tiles]
    return [(int(item["tile_id"]), str(item["route"])) for item in items]


def _atoms_table(ports: Ports, spec: AtomsSpec) -> np.ndarray:
    if isinstance(spec.atoms, RandomAtoms):
        table = random_atoms(spec.atoms, spec.grid, spec.origin, spec.spacing)
    else:
        table = load_atoms_file(ports.blobs, spec.atoms.file)
    if spec.units != "e/A":
        # φ is linear in the energies: scaled once here, every tile, the minimum and the
        # verification come out in the job's unit.
        table = table.copy()
        table[:, 3] *= factor(spec.units)
    return table

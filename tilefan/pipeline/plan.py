"""Plan: cut a QUEUED job into routed tiles, stage what its tiles share, mark it RUNNING."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tilefan.domain.atoms import check_no_atom_on_grid
from tilefan.domain.plan import Plan, plan
from tilefan.domain.randgen import random_atoms
from tilefan.domain.records import Status
from tilefan.domain.routing import RoutePolicy
from tilefan.domain.spec import AtomsSpec, RandomAtoms
from tilefan.pipeline.bpanels import stage_panels
from tilefan.pipeline.inputs import atoms_key, items_key, load_atoms_file, manifest_key, output_key
from tilefan.pipeline.ports import Clock, Ports


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
    # A stored B that tiles would each read whole rows of: cut it into panels once.
    stage_panels(ports.blobs, job_id, spec)
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

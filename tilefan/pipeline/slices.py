"""A 2-D slice of an atoms job's potential through its minimum, for the web page's heat map.

The slice is recomputed from the job's atoms table (one plane: nx·ny·atoms pairs), so it
exists whether or not the whole field was kept. Large planes are sampled every ``step``
points so the answer stays small.
"""

from __future__ import annotations

import math
from typing import Any

from tilefan.domain import kernels
from tilefan.domain.spec.parse import AtomsSpec
from tilefan.errors import ConflictError
from tilefan.pipeline.inputs import atoms_key
from tilefan.pipeline.ports import Ports

MAX_SIDE = 160


def atoms_slice(ports: Ports, job_id: str, max_side: int = MAX_SIDE) -> dict[str, Any]:
    record = ports.jobs.get_job(job_id)
    spec = record.spec
    if not isinstance(spec, AtomsSpec):
        # The request is well formed: the job it names is of the wrong kind (409, like a job
        # that has not finished), so a caller can tell it from bad input.
        raise ConflictError(f"job {job_id} is {record.kind}; slices are for atoms jobs")
    if not record.result:
        raise ConflictError(f"job {job_id} is {record.status.value}; its slice exists once it has SUCCEEDED")
    i, j, k = (int(n) for n in record.result["min_index"])
    nx, ny, _ = spec.grid
    step = max(1, math.ceil(max(nx, ny) / max_side))
    table = ports.blobs.read_array(atoms_key(job_id))
    phi = kernels.atoms_potential(table, spec.origin, spec.spacing, spec.softening, ((0, nx), (0, ny), (k, k + 1)),
                                  spec.precision)[::step, ::step, 0]
    return {"job_id": job_id, "k": k, "step": step, "min_index": [i, j, k],
            "min_value": float(record.result["min_value"]), "values": phi.astype(float).round(9).tolist()}

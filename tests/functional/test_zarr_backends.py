"""A Zarr output on every backend's stores: the same job gives the same array, a tile's
chunk is written where the store keeps it, and nothing is left of the job but the output."""

from __future__ import annotations

import numpy as np

from tests.functional.pipeline_storage import Storage
from tests.helpers import random_pair
from tilefan.domain.records import Status
from tilefan.pipeline.plan import plan_job
from tilefan.pipeline.reduce import reduce_job
from tilefan.pipeline.submit import submit_job
from tilefan.pipeline.tile import run_tile


def test_a_zarr_output_equals_numpy_on_every_backend(storage: Storage) -> None:
    ports = storage.ports
    out = storage.user_key("C.zarr")
    want_a, want_b = random_pair(9, "float64", (50, 30), (30, 45))
    # A user's .npy file times a random matrix (B of the seeded pair), into Zarr chunks of 16 x 32.
    spec = {"kind": "matmul", "a": {"file": storage.put_npy("A.npy", want_a)},
            "b": {"shape": [30, 45], "seed": 9, "stream": 1}, "tile": [16, 32], "out": out, "verify": True}
    submit_job(ports, spec, job_id="job1")
    for tile in plan_job(ports, "job1").tiles:
        run_tile(ports, "job1", tile.tile_id)
    record = reduce_job(ports, "job1")
    assert record.status is Status.SUCCEEDED and record.result is not None
    assert record.result["verification"]["passed"]
    np.testing.assert_allclose(ports.blobs.read_rows(out, (0, 50)), want_a @ want_b, rtol=1e-12, atol=1e-12)
    assert storage.partials() == []
    assert not [k for k in storage.be.stored() if "jobs/job1/zarr/" in k]  # S3's pending metadata is gone

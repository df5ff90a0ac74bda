"""A Zarr result through the REST API on the embedded backend (``tilefan serve``): written in
the home's blob store one chunk per tile, and named by the next job as its input.

zarr reads the result in a child process: zarr keeps I/O threads alive in any process that
used it, and later tests in this process fork pool workers (forking a process with live
threads can deadlock the child)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from chalice.test import Client

from tests.functional.rest_client import post_job, wait_job
from tests.helpers import random_pair


def test_a_zarr_result_on_the_embedded_backend_feeds_the_next_job(client: Client, home: Path) -> None:
    first = post_job(client, {"kind": "matmul", "a": {"shape": [60, 40]}, "b": {"shape": [40, 50]}, "seed": 4,
                              "tile": 32, "out_format": "zarr"})
    assert first.status_code == 202, first.json_body
    doc = wait_job(client, first.json_body["job_id"])
    assert doc["status"] == "SUCCEEDED", doc["error"]
    path = Path(doc["result"]["output"])
    assert path == (home / "blobs" / "jobs" / doc["job_id"] / "out.zarr").resolve()
    c = _read_zarr(path, home / "c.npy")
    a, b = random_pair(4, "float64", (60, 40), (40, 50))
    np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12)
    assert client.http.get(f"/jobs/{doc['job_id']}/result").status_code == 404

    second = post_job(client, {"kind": "add", "a": {"file": f"jobs/{doc['job_id']}/out.zarr"},
                               "b": {"file": f"jobs/{doc['job_id']}/out.zarr"}})
    assert second.status_code == 202, second.json_body
    done = wait_job(client, second.json_body["job_id"])
    assert done["status"] == "SUCCEEDED", done["error"]
    np.testing.assert_array_equal(np.load(done["result"]["output"]), 2 * c)


def _read_zarr(path: Path, dest: Path) -> np.ndarray:
    """The Zarr array at ``path``, read by zarr in a child process (checking its chunks are 32 x 32)."""
    code = ("import sys, numpy, zarr; z = zarr.open_array(store=sys.argv[1], mode='r'); "
            "assert z.chunks == (32, 32), z.chunks; numpy.save(sys.argv[2], z[:])")
    subprocess.run([sys.executable, "-c", code, str(path), str(dest)], check=True)
    return np.load(dest)

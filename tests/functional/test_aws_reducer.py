"""The S3 reducer under moto: outputs assembled by one multipart upload of server-side
copies (UploadPartCopy) and built parts equal NumPy's answer, a missing tile block fails the
reduce naming the tile, and outputs of more parts than one upload takes go through groups.

Some tests shrink S3's part limits (and moto's 5 MiB minimum with them) so that small jobs
take many parts; production keeps S3's own (``test_production_limits_are_s3s``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np
import pytest
from chalice.test import Client

from chalicelib import lambdas
from tests.functional.aws_stack import BUCKET, Stack
from tests.functional.conftest import BUCKET as STORE_BUCKET
from tests.functional.rest_client import post_job, wait_job
from tests.helpers import random_pair, s3_array
from tilefan.adapters.aws.s3_store import S3BlobStore, s3_ports
from tilefan.adapters.memory import MemoryJobStore, memory_ports
from tilefan.domain.assembly import MIB, PartLimits
from tilefan.domain.records import Status
from tilefan.errors import IncompleteJobError
from tilefan.pipeline.plan import plan_job
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.reduce import reduce_job
from tilefan.pipeline.submit import submit_job
from tilefan.pipeline.tile import run_tile

# Tiny parts: 2 KiB built parts, 8 parts per upload, so a job of a few hundred KB needs groups.
SMALL = PartLimits(min_part_bytes=1024, build_bytes=2048, build_cap_bytes=4096, max_part_bytes=8192, max_parts=8)


@contextmanager
def s3_requests(client: Any) -> Iterator[list[str]]:
    """The operation name of every S3 request the client makes inside the block."""
    made: list[str] = []

    def note(model: Any, **_: Any) -> None:
        made.append(model.name)

    client.meta.events.register("before-call.s3", note)
    try:
        yield made
    finally:
        client.meta.events.unregister("before-call.s3", note)


def test_production_limits_are_s3s() -> None:
    limits = PartLimits()
    assert (limits.min_part_bytes, limits.max_part_bytes, limits.max_parts) == (5 * MIB, 5 * 2**30, 10_000)
    assert S3BlobStore(client=None, bucket="b").limits == limits


def test_a_job_of_full_width_tiles_is_copied_together_inside_s3(stack: Stack, client: Client) -> None:
    # Tiles of 400 full rows of 2,000 float64 (6.4 MB each, over S3's 5 MiB part minimum).
    spec = {"kind": "add", "a": {"shape": [1000, 2000]}, "b": {"shape": [1000, 2000]}, "seed": 4,
            "tile": [400, 2000]}
    s3 = lambdas.get_ports().blobs.client  # type: ignore[attr-defined]
    with s3_requests(s3) as made:
        doc = wait_job(client, post_job(client, spec).json_body["job_id"])
    assert doc["status"] == "SUCCEEDED", doc["error"]
    a, b = random_pair(4, "float64", (1000, 2000), (1000, 2000))
    np.testing.assert_array_equal(s3_array(stack.client("s3"), doc["result"]["output"]), a + b)
    # Part 1: the header and tile 0's rows (read and sent); part 2: tile 1, copied inside
    # S3; part 3: tile 2's 3.2 MB, the only part allowed under 5 MiB (the last).
    assert made.count("UploadPartCopy") == 1 and made.count("UploadPart") == 2
    assert made.count("CompleteMultipartUpload") == 1
    keys = [o["Key"] for o in stack.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert not [k for k in keys if "/parts/" in k]
    assert stack.client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


@pytest.fixture
def small_parts(s3_client: Any) -> Iterator[Ports]:
    """S3 blob store (moto) with SMALL part limits and a memory job store."""
    with mock.patch("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", SMALL.min_part_bytes):
        yield s3_ports(S3BlobStore(s3_client, STORE_BUCKET, limits=SMALL), MemoryJobStore())


def run_job(ports: Ports, spec: dict[str, Any], job_id: str = "job1") -> None:
    submit_job(ports, spec, job_id=job_id)
    for tile in plan_job(ports, job_id).tiles:
        run_tile(ports, job_id, tile.tile_id)


def reference(spec: dict[str, Any]) -> Any:
    """The same job on the memory stores, which write tiles in place."""
    ports = memory_ports()
    run_job(ports, spec)
    record = reduce_job(ports, "job1")
    assert record.result is not None
    return ports.blobs.read_array(record.result.get("output") or record.result["field"])


@pytest.mark.parametrize("spec, copies", [
    # Square tiles: no row is one tile's, so every part is built from ranged reads.
    ({"kind": "matmul", "a": {"shape": [90, 40]}, "b": {"shape": [40, 70]}, "seed": 3, "tile": 32}, False),
    # Full-width tiles of 20 rows x 80 float64 = 12.8 KB: copied, in parts of at most 8 KiB.
    ({"kind": "add", "a": {"shape": [130, 80]}, "b": {"shape": [130, 80]}, "seed": 5, "tile": [20, 80]}, True),
    # The potential on a grid: 3-D tiles, the last axis whole.
    ({"kind": "atoms", "grid": [60, 10, 12], "atoms": {"count": 6, "seed": 1}, "tile": [5, 10, 12],
      "softening": 0.1, "field_out": f"s3://{STORE_BUCKET}/field.npy"}, True),
])
def test_outputs_of_more_parts_than_one_upload_takes_are_assembled_through_groups(
    small_parts: Ports, spec: dict[str, Any], copies: bool
) -> None:
    ports = small_parts
    run_job(ports, spec)
    s3 = ports.blobs.client  # type: ignore[attr-defined]
    with s3_requests(s3) as made:
        record = reduce_job(ports, "job1")
    assert record.status is Status.SUCCEEDED
    assert record.result is not None
    got = ports.blobs.read_array(record.result.get("output") or record.result["field"])
    np.testing.assert_array_equal(got, reference(spec), strict=True)
    # More than 8 parts: groups of 8, then the output copied together from the groups.
    uploads = made.count("CreateMultipartUpload")
    assert uploads >= 3 and made.count("CompleteMultipartUpload") == uploads
    assert ("UploadPartCopy" in made) and (made.count("UploadPartCopy") > uploads - 1 if copies else True)
    assert s3.list_multipart_uploads(Bucket=STORE_BUCKET).get("Uploads", []) == []
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=STORE_BUCKET).get("Contents", [])]
    assert not [k for k in keys if "/parts/" in k]


def test_a_verified_field_s_points_are_read_from_its_parts_a_request_each(small_parts: Ports) -> None:
    """On S3 the merge's check reads the field's sampled points from the parts: the layout
    and the listing once, then one ranged GET a point (65), and the check passes, so the
    values read are the field's."""
    run_job(small_parts, {"kind": "atoms", "grid": [12, 10, 8], "atoms": {"count": 6, "seed": 1}, "tile": [4, 5, 8],
                          "softening": 0.1, "verify": True, "field_out": f"s3://{STORE_BUCKET}/checked.npy"})
    s3 = small_parts.blobs.client  # type: ignore[attr-defined]
    with mock.patch("tilefan.pipeline.reduce.assemble_output") as assemble, s3_requests(s3) as made:
        assemble.return_value = f"s3://{STORE_BUCKET}/checked.npy"
        record = reduce_job(small_parts, "job1")
    assert record.status is Status.SUCCEEDED and record.result is not None
    assert record.result["verification"]["passed"] is True
    # The atoms table, the layout, then a GET a point; one listing.
    assert made.count("ListObjectsV2") == 1 and made.count("GetObject") == 2 + 65


def test_a_tile_whose_block_is_missing_fails_the_reduce_naming_it(small_parts: Ports) -> None:
    ports = small_parts
    spec = {"kind": "add", "a": {"shape": [60, 80]}, "b": {"shape": [60, 80]}, "tile": [20, 80]}
    run_job(ports, spec)
    s3 = ports.blobs.client  # type: ignore[attr-defined]
    listed = s3.list_objects_v2(Bucket=STORE_BUCKET)["Contents"]
    [lost] = [o["Key"] for o in listed if o["Key"].endswith("/20-40_0-80.npy")]  # tile 1's block
    s3.delete_object(Bucket=STORE_BUCKET, Key=lost)
    with s3_requests(s3) as made, pytest.raises(IncompleteJobError) as caught:
        reduce_job(ports, "job1")
    assert caught.value.missing == [1]
    assert "1 tile(s) recorded done but no block of jobs/job1/out.npy stored (1)" in str(caught.value)
    assert "CreateMultipartUpload" not in made  # refused before anything was sent
    assert ports.jobs.get_job("job1").status is Status.RUNNING
    assert not [o for o in s3.list_objects_v2(Bucket=STORE_BUCKET).get("Contents", [])
                if o["Key"].endswith("/out.npy")]

"""The S3 stand-in the stream benchmark reads from (``benchmarks/s3_standin.py``): a real
boto3 client over HTTP, through the S3 store, gets back exactly the bytes it put, by one
GET or by concurrent ranged GETs, writes a big one in concurrent parts, keeps a field in
parts and reads its points back many at a time, and the stand-in holds each response back
as configured."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from benchmarks.s3_standin import StandIn, serving
from tilefan.adapters.aws.s3_store import S3BlobStore
from tilefan.adapters.npy_header import to_npy
from tilefan.errors import BlobNotFoundError
from tilefan.pipeline.verify import field_at, field_at_parts

LATENCY_S, STREAM_MB_S = 0.02, 100.0


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    with serving(LATENCY_S, STREAM_MB_S) as running:
        yield running


def test_the_store_reads_the_stand_in_s_objects_byte_for_byte(standin: StandIn) -> None:
    matrix = np.random.default_rng(3).standard_normal((512, 1000))  # 4 MB
    client = standin.client(max_pool_connections=8)
    client.put_object(Bucket="bench", Key="M.npy", Body=to_npy(matrix))
    one = S3BlobStore(client, "bench", streams=1).read_rows("M.npy", (7, 500))
    many = S3BlobStore(client, "bench", streams=8, part_bytes=128 << 10).read_rows("M.npy", (7, 500))
    panel = S3BlobStore(client, "bench", streams=8, part_bytes=128 << 10).read_rows("M.npy", (0, 512), (3, 9))
    assert many.tobytes() == one.tobytes() == matrix[7:500].tobytes()
    np.testing.assert_array_equal(panel, matrix[:, 3:9])
    with pytest.raises(BlobNotFoundError):
        S3BlobStore(client, "bench").read_rows("missing.npy", (0, 1))


def test_the_store_writes_a_big_object_to_the_stand_in_in_concurrent_parts(standin: StandIn) -> None:
    block = np.random.default_rng(4).standard_normal((300, 1000))  # 2.4 MB: 19 parts of 128 KiB
    client = standin.client(max_pool_connections=4)
    S3BlobStore(client, "bench", streams=4, part_bytes=128 << 10).write_array("jobs/j/out.npy", block)
    np.testing.assert_array_equal(S3BlobStore(client, "bench").read_array("jobs/j/out.npy"), block, strict=True)


def test_the_stand_in_holds_a_response_back_by_its_latency_and_stream_rate(standin: StandIn) -> None:
    body = bytes(4_000_000)
    client = standin.client()
    client.put_object(Bucket="bench", Key="blob", Body=b"x")
    started = time.perf_counter()
    client.get_object(Bucket="bench", Key="blob")["Body"].read()
    small_s = time.perf_counter() - started
    client.put_object(Bucket="bench", Key="blob", Body=body)
    started = time.perf_counter()
    got = client.get_object(Bucket="bench", Key="blob")["Body"].read()
    big_s = time.perf_counter() - started
    assert got == body
    assert small_s >= LATENCY_S  # the first-byte latency
    assert big_s >= LATENCY_S + len(body) / (STREAM_MB_S * 1e6)  # then 4 MB at 100 MB/s: 0.04 s more


def test_the_merge_reads_a_field_s_points_from_the_stand_in_many_at_a_time(standin: StandIn) -> None:
    """The stand-in lists (in pages) and deletes objects, so the store keeps a field in parts
    there as on S3; the merge's check reads its sampled points eight at a time and gets what
    reading them one at a time gives: the field's own values."""
    client = standin.client(max_pool_connections=12)
    for name in "abcde":
        client.put_object(Bucket="bench", Key=f"listed/{name}", Body=b"x")
    pages = list(client.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="listed/",
                                                                 PaginationConfig={"PageSize": 2}))
    assert [[o["Key"] for o in page["Contents"]] for page in pages] == [
        ["listed/a", "listed/b"], ["listed/c", "listed/d"], ["listed/e"]]
    rng = np.random.default_rng(5)
    grid = (12, 10, 9)  # tiles of 4 x 5 x 9
    field = rng.standard_normal(grid)
    store = S3BlobStore(client, "bench", streams=8)
    store.create_array("fields/phi.npy", grid, "float64", "job1")
    for i in range(0, 12, 4):
        for j in range(0, 10, 5):
            region = ((i, i + 4), (j, j + 5), (0, 9))
            store.write_region("fields/phi.npy", "job1", region, field[i:i + 4, j:j + 5])
    points = np.stack(np.unravel_index(rng.choice(field.size, 20, replace=False), grid), axis=1)
    reads = _InFlight(store)
    one = field_at(functools.partial(reads.read_region, "fields/phi.npy", "job1"), points, 1)
    assert reads.most == 1
    many = field_at(functools.partial(reads.read_region, "fields/phi.npy", "job1"), points, 8)
    assert np.array_equal(one, field[tuple(points.T)]) and np.array_equal(many, one)
    assert reads.most > 1  # each point is four 20 ms requests: eight threads overlap them
    # From the parts: the layout and the listing once, a ranged GET a point; a point whose
    # block is missing reads 0, as read_region reads an unwritten cell.
    assert np.array_equal(field_at_parts(store, "fields/phi.npy", "job1", points, (4, 5, 9)), one)
    # Blocks cut on another tile than the one named are found by what they hold.
    assert np.array_equal(field_at_parts(store, "fields/phi.npy", "job1", points, (3, 3, 9)), one)
    client.delete_object(Bucket="bench", Key=store._block_obj("fields/phi.npy", "job1", ((0, 4), (0, 5), (0, 9))).key)
    hole = field_at_parts(store, "fields/phi.npy", "job1", np.array([[1, 2, 3], [5, 6, 7]]), (4, 5, 9))
    assert hole.tolist() == [0.0, field[5, 6, 7]]
    # DeleteObjects removes exactly the keys named, escaped as botocore writes them.
    for name in ("a&b<c>", "kept"):
        client.put_object(Bucket="bench", Key=f"gone/{name}", Body=b"x")
    client.delete_objects(Bucket="bench", Delete={"Objects": [{"Key": "gone/a&b<c>"}], "Quiet": True})
    assert [o["Key"] for o in client.list_objects_v2(Bucket="bench", Prefix="gone/")["Contents"]] == ["gone/kept"]


class _InFlight:
    """A store's ``read_region``, counting the most calls in flight at once."""

    def __init__(self, store: S3BlobStore) -> None:
        self.store, self.now, self.most = store, 0, 0
        self.lock = threading.Lock()

    def read_region(self, key: str, job_id: str, region: tuple[tuple[int, int], ...]) -> np.ndarray:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return self.store.read_region(key, job_id, region)
        finally:
            with self.lock:
                self.now -= 1

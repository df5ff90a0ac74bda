"""Parallel S3 I/O under moto: a block read by concurrent ranged GETs is byte for byte the
block one GET reads, at most ``streams`` requests are in flight, a big object is written by
a multipart upload of concurrent parts (aborted whole if a part fails), and a read that
finds two versions of its object refuses to mix them."""

from __future__ import annotations

import threading
import time
from typing import Any
from unittest import mock

import numpy as np
import pytest

from tests.functional.conftest import BUCKET, USER_BUCKET
from tests.helpers import npy_bytes
from tilefan.adapters.aws.s3_store import S3BlobStore, s3_ports
from tilefan.domain.transfer import read_part_bytes
from tilefan.errors import InvalidBlobError, StoreError

PART = 64 << 10  # 64 KiB parts, so a 2 MB matrix splits into many


class CountingClient:
    """The moto client, with each call of ``op`` counted and held so calls overlap.

    With ``gather``, the first calls are held until that many are in flight at once (or 10 s
    have passed): how many the code under test runs together then shows in ``most`` however
    slowly a loaded machine starts its threads, and a pool smaller than ``gather`` still
    shows as one (the wait ends at the deadline with fewer in flight).
    """

    def __init__(self, client: Any, op: str, hold_s: float = 0.02, gather: int | None = None) -> None:
        self._client, self._op, self._hold_s, self._gather = client, op, hold_s, gather
        self._lock = threading.Condition()
        self.now = self.most = self.calls = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._op:
            return real

        def counted(**params: Any) -> Any:
            with self._lock:
                self.now += 1
                self.calls += 1
                self.most = max(self.most, self.now)
                self._lock.notify_all()
                if self._gather is not None and self.most < self._gather:
                    self._lock.wait_for(lambda: self.most >= (self._gather or 0), timeout=10)
            try:
                time.sleep(self._hold_s)
                return real(**params)
            finally:
                with self._lock:
                    self.now -= 1

        return counted


@pytest.fixture
def matrix(s3_client: Any) -> np.ndarray:
    rng = np.random.default_rng(5)
    m = rng.standard_normal((300, 1000))  # 2.4 MB of float64: 37 parts of 64 KiB
    s3_client.put_object(Bucket=USER_BUCKET, Key="M.npy", Body=npy_bytes(m))
    return m


@pytest.mark.parametrize(("rows", "cols"), [((0, 300), None), ((17, 251), None), ((3, 4), None),
                                            ((0, 300), (100, 612)), ((29, 290), (999, 1000))])
def test_concurrent_ranged_reads_are_byte_identical_to_one_get(
    s3_client: Any, matrix: np.ndarray, rows: tuple[int, int], cols: tuple[int, int] | None,
) -> None:
    uri = f"s3://{USER_BUCKET}/M.npy"
    one = S3BlobStore(s3_client, "unused", streams=1, part_bytes=1 << 30).read_rows(uri, rows, cols)
    many = S3BlobStore(s3_client, "unused", streams=8, part_bytes=PART).read_rows(uri, rows, cols)
    assert many.tobytes() == one.tobytes()
    want = matrix[rows[0] : rows[1]] if cols is None else matrix[rows[0] : rows[1], cols[0] : cols[1]]
    np.testing.assert_array_equal(many, want, strict=True)


@pytest.mark.parametrize("streams", [1, 4, 8])
def test_at_most_streams_gets_are_in_flight_and_they_do_overlap(
    s3_client: Any, matrix: np.ndarray, streams: int,
) -> None:
    client = CountingClient(s3_client, "get_object")
    block = S3BlobStore(client, "unused", streams=streams, part_bytes=PART).read_rows(f"s3://{USER_BUCKET}/M.npy",
                                                                                     (0, 300))
    np.testing.assert_array_equal(block, matrix)
    part = read_part_bytes(matrix.nbytes, streams, PART)  # 128 KiB: S3's 8-16 MB, scaled down
    assert client.calls == 1 + (-(-matrix.nbytes // part) if streams > 1 else 1)  # the header, then the parts
    assert client.most == streams


def test_a_column_panel_keeps_at_most_the_panel_budget_of_chunks_in_flight(
    s3_client: Any, matrix: np.ndarray, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tilefan.adapters.aws import s3_store

    monkeypatch.setattr(s3_store, "PANEL_READ_CHUNK_BYTES", 3 * PART)
    client = CountingClient(s3_client, "get_object")
    panel = S3BlobStore(client, "unused", streams=16, part_bytes=PART).read_rows(f"s3://{USER_BUCKET}/M.npy",
                                                                                 (0, 300), (10, 20))
    np.testing.assert_array_equal(panel, matrix[:, 10:20])
    assert client.most == 3


def test_a_big_object_goes_up_in_concurrent_parts(s3_client: Any) -> None:
    array = np.random.default_rng(1).standard_normal((200, 1000))
    client = CountingClient(s3_client, "upload_part", gather=4)
    with mock.patch("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", PART):
        S3BlobStore(client, BUCKET, streams=4, part_bytes=PART).write_array("jobs/j/a.npy", array)
    assert client.calls == -(-len(npy_bytes(array)) // PART) and client.most == 4
    stored = s3_client.get_object(Bucket=BUCKET, Key="jobs/j/a.npy")
    assert stored["Body"].read() == npy_bytes(array)
    assert stored["ContentType"] == "application/octet-stream" and stored["ServerSideEncryption"] == "AES256"


def test_a_small_object_is_one_put(s3_client: Any) -> None:
    client = CountingClient(s3_client, "put_object")
    S3BlobStore(client, BUCKET, part_bytes=PART).put_json("jobs/j/small.json", {"n": 1})
    assert client.calls == 1


def test_a_failed_part_aborts_the_upload_and_leaves_no_object(s3_client: Any) -> None:
    array = np.zeros((200, 1000))

    class FailingPart(CountingClient):
        def __getattr__(self, name: str) -> Any:
            if name == "upload_part":
                def fail(**params: Any) -> Any:
                    if params["PartNumber"] == 3:
                        raise s3_client.exceptions.NoSuchUpload({"Error": {"Code": "NoSuchUpload"}}, "UploadPart")
                    return s3_client.upload_part(**params)

                return fail
            return super().__getattr__(name)

    with mock.patch("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", PART), pytest.raises(StoreError, match="upload_part"):
        S3BlobStore(FailingPart(s3_client, "none"), BUCKET, streams=4, part_bytes=PART).write_array(
            "jobs/j/a.npy", array)
    assert s3_client.list_objects_v2(Bucket=BUCKET, Prefix="jobs/j/").get("KeyCount") == 0
    assert s3_client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_a_read_that_meets_two_versions_of_its_object_refuses_them(s3_client: Any, matrix: np.ndarray) -> None:
    class ChangingObject(CountingClient):
        """Replaces the object after the first part is read, as a writer racing the read would."""

        def __getattr__(self, name: str) -> Any:
            real = super().__getattr__(name)
            if name != "get_object":
                return real

            def get(**params: Any) -> Any:
                reply = real(**params)
                if params.get("Range", "").startswith("bytes=128-"):
                    s3_client.put_object(Bucket=USER_BUCKET, Key="M.npy", Body=npy_bytes(matrix + 1))
                return reply

            return get

    client = ChangingObject(s3_client, "get_object", hold_s=0.0)
    with pytest.raises(StoreError, match="replaced while it was being read"):
        S3BlobStore(client, "unused", streams=1 + 1, part_bytes=PART).read_rows(f"s3://{USER_BUCKET}/M.npy",
                                                                                (0, 300))


def test_an_object_shorter_than_its_header_says_is_refused_by_a_concurrent_read(
    s3_client: Any, matrix: np.ndarray,
) -> None:
    whole = npy_bytes(matrix)
    s3_client.put_object(Bucket=USER_BUCKET, Key="M.npy", Body=whole[: len(whole) - 5 * PART])
    with pytest.raises(InvalidBlobError, match="shorter than"):
        S3BlobStore(s3_client, "unused", streams=8, part_bytes=PART).read_rows(f"s3://{USER_BUCKET}/M.npy", (0, 300))


@pytest.mark.parametrize("streams", [2, 3])
def test_the_reducer_builds_as_many_parts_at_once_as_the_store_has_streams(s3_client: Any, streams: int) -> None:
    from tests.functional.test_aws_reducer import SMALL, reference, run_job
    from tilefan.adapters.memory import MemoryJobStore
    from tilefan.pipeline.reduce import reduce_job

    # Square tiles: every part is built from ranged reads, then sent by UploadPart.
    spec = {"kind": "matmul", "a": {"shape": [90, 40]}, "b": {"shape": [40, 70]}, "seed": 3, "tile": 32}
    with mock.patch("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", SMALL.min_part_bytes):
        ports = s3_ports(S3BlobStore(s3_client, BUCKET, limits=SMALL), MemoryJobStore())
        run_job(ports, spec)
        client = CountingClient(s3_client, "upload_part", gather=streams)
        ports = s3_ports(S3BlobStore(client, BUCKET, limits=SMALL, streams=streams), ports.jobs)
        record = reduce_job(ports, "job1")
    assert record.result is not None
    np.testing.assert_array_equal(ports.blobs.read_array(record.result["output"]), reference(spec), strict=True)
    assert client.calls > 2 * streams and client.most == streams

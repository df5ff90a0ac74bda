"""Zarr on the S3 store (moto): inputs read chunk by chunk, outputs written one chunk per
tile, and a reducer that copies no tile data.

Arrays in the bucket are written by zarr itself (a local directory uploaded object by
object, as zarr would lay it out in S3); what tilefan writes is read back with zarr
from a download of the output's objects, so both directions are checked against the
field's own library rather than against tilefan's reading of its own format.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import GzipCodec

from tests.functional.conftest import BUCKET
from tests.helpers import brute_force_phi
from tilefan.adapters.aws.s3_store import S3BlobStore, s3_ports
from tilefan.adapters.memory import MemoryJobStore
from tilefan.domain.randgen import random_atoms, random_region
from tilefan.domain.records import Status
from tilefan.domain.spec.resolved import RandomAtoms
from tilefan.errors import IncompleteJobError, InvalidBlobError, InvalidSpecError
from tilefan.pipeline.plan import plan_job
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.reduce import reduce_job
from tilefan.pipeline.submit import submit_job
from tilefan.pipeline.tile import run_tile

T = TypeVar("T")
RNG = np.random.default_rng(11)
A = RNG.standard_normal((90, 40))
B = RNG.standard_normal((40, 70))


@pytest.fixture
def ports(s3_client: Any) -> Ports:
    return s3_ports(S3BlobStore(s3_client, BUCKET), MemoryJobStore())


@contextmanager
def recorded(client: Any, pick: Callable[[str, dict[str, Any]], T | None]) -> Iterator[list[T]]:
    """``pick(operation, params)`` of every S3 request the client makes inside the block,
    those it answers None for left out."""
    made: list[T] = []

    def note(params: dict[str, Any], model: Any, **_: Any) -> None:
        item = pick(model.name, params)
        if item is not None:
            made.append(item)

    client.meta.events.register("provide-client-params.s3", note)
    try:
        yield made
    finally:
        client.meta.events.unregister("provide-client-params.s3", note)


def s3_requests(client: Any) -> AbstractContextManager[list[tuple[str, str]]]:
    """(operation, key or prefix) of every S3 request the client makes inside the block."""
    return recorded(client, lambda op, params: (op, str(params.get("Key") or params.get("Prefix") or "")))


def put_tree(s3: Any, local: Path, prefix: str) -> None:
    """A local Zarr directory as objects under ``prefix`` (the layout zarr gives S3)."""
    for path in sorted(local.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{path.relative_to(local).as_posix()}", Body=path.read_bytes())


def get_tree(s3: Any, prefix: str, local: Path, bucket: str = BUCKET) -> Path:
    """The objects under ``prefix`` as a local directory zarr can open."""
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", []):
        dest = local / item["Key"][len(prefix) + 1 :]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    return local


def zarr_in_bucket(s3: Any, tmp: Path, key: str, data: np.ndarray, chunks: tuple[int, int], **kw: Any) -> str:
    local = tmp / Path(key).name
    arr = zarr.create_array(store=str(local), shape=data.shape, chunks=chunks, dtype=data.dtype, **kw)
    arr[:] = data
    put_tree(s3, local, key)
    return key


def run_tiles(ports: Ports, spec: dict[str, Any], job_id: str = "job1") -> int:
    submit_job(ports, spec, job_id=job_id)
    tiles = plan_job(ports, job_id).tiles
    for tile in tiles:
        run_tile(ports, job_id, tile.tile_id)
    return len(tiles)


def test_matmul_from_zarr_v2_and_v3_in_the_bucket_to_a_zarr_output_equals_numpy(
    ports: Ports, s3_client: Any, tmp_path: Path
) -> None:
    a = zarr_in_bucket(s3_client, tmp_path, "data/A.zarr", A, (32, 16), compressors=None)  # v3, raw
    b = zarr_in_bucket(s3_client, tmp_path, "data/B.zarr", B, (10, 30), zarr_format=2,
                       compressors=numcodecs.Zlib(level=1))
    tiles = run_tiles(ports, {"kind": "matmul", "a": {"file": a}, "b": {"file": b}, "tile": 32,
                              "out": "jobs/job1/out.zarr", "verify": True})
    record = reduce_job(ports, "job1")
    assert record.status is Status.SUCCEEDED and record.result is not None
    assert record.result["output"] == f"s3://{BUCKET}/jobs/job1/out.zarr"
    assert record.result["verification"]["passed"]
    got = zarr.open_array(store=str(get_tree(s3_client, "jobs/job1/out.zarr", tmp_path / "out.zarr")), mode="r")
    assert got.chunks == (32, 32) and tiles == 9
    np.testing.assert_allclose(got[:], A @ B, rtol=1e-12, atol=1e-12)


def test_each_tile_writes_one_chunk_and_the_reducer_copies_no_tile_data(ports: Ports, s3_client: Any) -> None:
    spec = {"kind": "matmul", "a": {"shape": [90, 40]}, "b": {"shape": [40, 70]}, "seed": 3, "tile": 32,
            "out": "jobs/job1/out.zarr"}
    submit_job(ports, spec, job_id="job1")
    tiles = plan_job(ports, "job1").tiles
    with s3_requests(s3_client) as tile_requests:
        for tile in tiles:
            run_tile(ports, "job1", tile.tile_id)
    chunk_puts = [key for op, key in tile_requests if op == "PutObject"]
    assert sorted(chunk_puts) == sorted(f"jobs/job1/out.zarr/c/{i}/{j}" for i in range(3) for j in range(3))
    # No array is visible before the reducer commits it.
    listed = [o["Key"] for o in s3_client.list_objects_v2(Bucket=BUCKET, Prefix="jobs/job1/out.zarr/")["Contents"]]
    assert "jobs/job1/out.zarr/zarr.json" not in listed

    with s3_requests(s3_client) as reduce_requests:
        record = reduce_job(ports, "job1")
    assert record.status is Status.SUCCEEDED
    ops = [op for op, _ in reduce_requests]
    # The pending metadata read, the listing, the metadata written, the pending copy deleted.
    assert sorted(ops) == ["DeleteObjects", "GetObject", "ListObjectsV2", "PutObject"]
    # No chunk is read, written or copied: only listed.
    assert not [key for op, key in reduce_requests if op != "ListObjectsV2" and "/c/" in key]
    assert ("PutObject", "jobs/job1/out.zarr/zarr.json") in reduce_requests


def test_verifying_reads_chunks_but_the_reducer_still_writes_only_the_metadata(
    ports: Ports, s3_client: Any, tmp_path: Path
) -> None:
    run_tiles(ports, {"kind": "add", "a": {"shape": [50, 30]}, "b": {"shape": [50, 30]}, "seed": 2,
                      "tile": [20, 30], "out": "jobs/job1/sum.zarr", "verify": True})
    with s3_requests(s3_client) as made:
        record = reduce_job(ports, "job1")
    assert record.result is not None and record.result["verification"]["passed"]
    writes = [(op, key) for op, key in made if op in ("PutObject", "UploadPart", "UploadPartCopy", "CopyObject",
                                                     "CreateMultipartUpload")]
    assert writes == [("PutObject", "jobs/job1/sum.zarr/zarr.json")]
    got = zarr.open_array(store=str(get_tree(s3_client, "jobs/job1/sum.zarr", tmp_path / "s.zarr")), mode="r")
    a = random_region(2, 0, "float64", (0, 50), (0, 30))
    b = random_region(2, 1, "float64", (0, 50), (0, 30))
    np.testing.assert_array_equal(got[:], a + b)


def test_a_verified_zarr_fields_points_read_its_metadata_once_and_a_ranged_get_each(
    ports: Ports, s3_client: Any, tmp_path: Path
) -> None:
    run_tiles(ports, {"kind": "atoms", "grid": [16, 12, 10], "atoms": {"count": 30, "seed": 4}, "tile": [8, 12, 10],
                      "softening": 0.1, "verify": True, "field_out": "jobs/job1/phi.zarr"})
    with s3_requests(s3_client) as made:
        record = reduce_job(ports, "job1")
    assert record.result is not None and record.result["verification"]["passed"]
    gets = [key for op, key in made if op == "GetObject"]
    points = record.result["verification"]["samples"] + 1  # and the minimum
    assert len([key for key in gets if "/phi.zarr/c/" in key]) == points
    # One GET of the pending metadata for every point (read_region's) would be 65 here.
    assert len([key for key in gets if key.endswith("zarr.json")]) == 2  # the check's, the commit's
    table = random_atoms(RandomAtoms(count=30, seed=4), (16, 12, 10), (0.0, 0.0, 0.0), 1.0)
    got = zarr.open_array(store=str(get_tree(s3_client, "jobs/job1/phi.zarr", tmp_path / "phi.zarr")), mode="r")
    np.testing.assert_allclose(got[:], brute_force_phi(table, (16, 12, 10), softening=0.1)[0], rtol=1e-12)


def test_a_missing_chunk_fails_the_reduce_naming_its_tile_and_publishes_nothing(ports: Ports, s3_client: Any) -> None:
    run_tiles(ports, {"kind": "add", "a": {"shape": [60, 8]}, "b": {"shape": [60, 8]}, "tile": [20, 8],
                      "out": "jobs/job1/out.zarr"})
    s3_client.delete_object(Bucket=BUCKET, Key="jobs/job1/out.zarr/c/1/0")
    with pytest.raises(IncompleteJobError) as caught:
        reduce_job(ports, "job1")
    assert caught.value.missing == [1]
    listed = [o["Key"] for o in s3_client.list_objects_v2(Bucket=BUCKET, Prefix="jobs/job1/").get("Contents", [])]
    assert "jobs/job1/out.zarr/zarr.json" not in listed


def test_a_jobs_zarr_output_is_the_next_jobs_input(ports: Ports, s3_client: Any) -> None:
    run_tiles(ports, {"kind": "add", "a": {"shape": [45, 40]}, "b": {"shape": [45, 40]}, "seed": 5,
                      "tile": [16, 16], "out": "jobs/first/out.zarr"}, job_id="first")
    first = reduce_job(ports, "first")
    assert first.status is Status.SUCCEEDED
    run_tiles(ports, {"kind": "matmul", "a": {"file": "jobs/first/out.zarr"}, "b": {"shape": [40, 20]},
                      "seed": 6, "tile": 16, "out": "jobs/second/out.npy"}, job_id="second")
    assert reduce_job(ports, "second").status is Status.SUCCEEDED
    total = random_region(5, 0, "float64", (0, 45), (0, 40)) + random_region(5, 1, "float64", (0, 45), (0, 40))
    b = random_region(6, 1, "float64", (0, 40), (0, 20))
    np.testing.assert_allclose(ports.blobs.read_array("jobs/second/out.npy"), total @ b, rtol=1e-12)


@pytest.mark.parametrize("make, field, words", [
    # A Zarr v2 array of Python objects (strings).
    (lambda p: zarr.create_array(store=p, shape=(4, 4), chunks=(2, 2), dtype=str, zarr_format=2), "b",
     "unsupported dtype"),
    # zstd, zarr's default compressor: not in the standard library, so not in the Lambda.
    (lambda p: zarr.create_array(store=p, shape=(4, 4), chunks=(2, 2), dtype="float64"), "b.file", "zstd"),
    # A group where an array should be.
    (lambda p: zarr.open_group(p, mode="w"), "b.file", "is a Zarr group"),
    # Metadata that is not JSON, and metadata missing its shape.
    (lambda p: _metadata(p, b"{not json"), "b.file", "not JSON"),
    (lambda p: _metadata(p, b'{"zarr_format": 3, "node_type": "array", "chunk_grid": {"name": "regular"}}'),
     "b.file", "Zarr metadata tilefan cannot read"),
])
def test_bad_zarr_inputs_in_the_bucket_are_refused_naming_the_field_and_write_nothing(
    ports: Ports, s3_client: Any, tmp_path: Path, make: Any, field: str, words: str
) -> None:
    local = tmp_path / "B.zarr"
    make(str(local))
    put_tree(s3_client, local, "data/B.zarr")
    with pytest.raises(InvalidSpecError) as caught:
        submit_job(ports, {"kind": "matmul", "a": {"shape": [3, 4]}, "b": {"file": "data/B.zarr"},
                           "out": "jobs/job1/out.zarr"}, job_id="job1")
    assert caught.value.field == field and words in caught.value.message
    assert ports.jobs.list_jobs(10)[0] == []
    assert s3_client.list_objects_v2(Bucket=BUCKET, Prefix="jobs/").get("KeyCount", 0) == 0


def _metadata(path: str, doc: bytes) -> None:
    Path(path).mkdir()
    (Path(path) / "zarr.json").write_bytes(doc)


def test_the_s3_store_reads_and_writes_zarr_without_the_zarr_package() -> None:
    """What runs in a tile Lambda must not need zarr (nor numcodecs): it is not packaged there."""
    code = ("import sys; import tilefan.adapters.aws.s3_store, tilefan.pipeline.tile, tilefan.pipeline.reduce; "
            "print(sorted(m for m in ('zarr', 'numcodecs', 'h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_tile_fetches_only_the_input_chunks_its_block_crosses(ports: Ports, s3_client: Any, tmp_path: Path) -> None:
    a = zarr_in_bucket(s3_client, tmp_path, "data/A.zarr", A, (10, 40), compressors=None)  # 9 row chunks
    b = zarr_in_bucket(s3_client, tmp_path, "data/B.zarr", B, (40, 10), compressors=None)  # 7 column chunks
    submit_job(ports, {"kind": "matmul", "a": {"file": a}, "b": {"file": b}, "tile": 32,
                       "out": "jobs/job1/out.zarr"}, job_id="job1")
    plan_job(ports, "job1")
    with s3_requests(s3_client) as made:
        run_tile(ports, "job1", 4)  # rows 32..64, columns 32..64
    fetched = sorted(key for op, key in made if op == "GetObject" and "/c/" in key)
    assert [k for k in fetched if k.startswith("data/A.zarr/")] == [f"data/A.zarr/c/{i}/0" for i in range(3, 7)]
    # B's column panels may have been staged by the plan step; read from B, only its columns' chunks.
    assert set(k for k in fetched if k.startswith("data/B.zarr/")) <= {f"data/B.zarr/c/0/{j}" for j in range(3, 7)}


def chunk_gets(client: Any) -> AbstractContextManager[list[tuple[str, str | None]]]:
    """(key, Range or None) of every chunk GET the client makes inside the block."""
    return recorded(client, lambda op, params: (str(params["Key"]), params.get("Range"))
                    if op == "GetObject" and "/c/" in str(params.get("Key")) else None)


def test_a_point_of_a_raw_chunk_is_one_ranged_get_of_its_bytes(ports: Ports, s3_client: Any, tmp_path: Path) -> None:
    """A verified field's sampled points read a cell each, not their tile's whole chunk;
    compressed and F-order chunks, whose bytes cannot be addressed, are still read whole."""
    data = np.arange(90 * 40, dtype="<f8").reshape(90, 40) / 7.0
    raw = zarr_in_bucket(s3_client, tmp_path, "data/raw.zarr", data, (30, 20), compressors=None, fill_value=-1.0)
    gz = zarr_in_bucket(s3_client, tmp_path, "data/gz.zarr", data, (30, 20), compressors=GzipCodec(level=1))
    s3_client.delete_object(Bucket=BUCKET, Key="data/raw.zarr/c/2/1")  # a chunk never written: its fill value
    store = ports.blobs
    with chunk_gets(s3_client) as made:
        np.testing.assert_array_equal(store.read_region(raw, "job1", ((31, 32), (27, 28))), data[31:32, 27:28])
        np.testing.assert_array_equal(store.read_region(raw, "job1", ((65, 66), (5, 9))), data[65:66, 5:9])
        np.testing.assert_array_equal(store.read_region(raw, "job1", ((70, 71), (30, 31))), [[-1.0]])
        np.testing.assert_array_equal(store.read_region(gz, "job1", ((31, 32), (27, 28))), data[31:32, 27:28])
    # (31, 27) is cell (1, 7) of chunk (1, 1): the 28th of its 600 float64 cells.
    assert made == [("data/raw.zarr/c/1/1", "bytes=216-223"), ("data/raw.zarr/c/2/0", "bytes=840-871"),
                    ("data/raw.zarr/c/2/1", "bytes=1680-1687"), ("data/gz.zarr/c/1/1", None)]
    for body in (b"", b"\0" * 220):  # a chunk cut short before the point, or inside it
        s3_client.put_object(Bucket=BUCKET, Key="data/raw.zarr/c/1/1", Body=body)
        with pytest.raises(InvalidBlobError, match=r"data/raw\.zarr.*a chunk is shorter than the \(30, 20\)"):
            store.read_region(raw, "job1", ((31, 32), (27, 28)))
    # A block that spans most of its chunk still reads the chunk whole.
    with chunk_gets(s3_client) as made:
        np.testing.assert_array_equal(store.read_region(raw, "job1", ((0, 30), (0, 20))), data[:30, :20])
    assert made == [("data/raw.zarr/c/0/0", None)]

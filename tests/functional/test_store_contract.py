"""One contract for the blob and job stores, run on every backend.

Every case runs on the embedded adapters (``LocalBlobStore`` and ``SqliteJobStore`` on a
temp dir), on the AWS adapters (``S3BlobStore`` and ``DynamoJobStore`` under moto) and on
the in-memory pair (``MemoryBlobStore`` and ``MemoryJobStore``), so the pipeline can rely
on the same behaviour wherever it runs: what goes in comes out,
arrays read back equal NumPy's slicing, an output is invisible until committed and leaves
nothing behind when discarded, errors are tilefan's own, status changes follow
ALLOWED_FROM, and a tile is counted exactly once however often it is reported.

The last section checks what only the AWS adapters promise (ranged reads, TTL).
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import mmap
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.functional.conftest import BUCKET, TABLE, USER_BUCKET
from tests.helpers import defines, report_tiles_concurrently
from tilefan.adapters.embedded.localfs import LocalBlobStore, local_ports
from tilefan.adapters.embedded.sqlite_store import SqliteJobStore
from tilefan.adapters.memory import MemoryBlobStore, memory_ports
from tilefan.domain.records import ALLOWED_FROM, JobRecord, Status, TileResult
from tilefan.domain.spec.parse import parse_spec
from tilefan.errors import (
    BlobNotFoundError,
    ConflictError,
    InvalidBlobError,
    InvalidSpecError,
    JobNotFoundError,
    StoreError,
)
from tilefan.pipeline import store_capabilities as caps
from tilefan.pipeline.ports import BlobStore, JobStore, Ports

Region = Sequence[tuple[int, int]]


@dataclass
class Backend:
    """The ports of one adapter set (its two stores and the capabilities it declares), plus
    what the tests need to look behind them."""

    kind: str  # "embedded", "aws" or "memory"
    ports: Ports  # as the adapter set declares them (``local_ports``, ``s3_ports``, ``memory_ports``)
    user_key: Callable[[str], str]  # where a user's own file of that name lives (outside the store)
    put_user_file: Callable[[str, bytes], str]  # writes a user's file; returns its key
    stored: Callable[[], set[str]]  # every object or file the blob store holds
    raw: dict[str, Any] = field(default_factory=dict)  # backend clients, for the AWS-only cases

    @property
    def blobs(self) -> BlobStore:
        return self.ports.blobs

    @property
    def jobs(self) -> JobStore:
        return self.ports.jobs


def _embedded(tmp_path: Path) -> Backend:
    root, user = tmp_path / "blobs", tmp_path / "user"
    user.mkdir()

    def user_key(name: str) -> str:
        return str(user / name)

    def put_user_file(name: str, data: bytes) -> str:
        Path(user_key(name)).write_bytes(data)
        return user_key(name)

    def stored() -> set[str]:
        files = itertools.chain(root.rglob("*"), user.rglob("*"))
        return {str(p.relative_to(tmp_path)) for p in files if p.is_file()}

    return Backend("embedded", local_ports(LocalBlobStore(root), SqliteJobStore(tmp_path / "db" / "jobs.sqlite3")),
                   user_key, put_user_file, stored)


def _memory() -> Backend:
    blobs = MemoryBlobStore()

    def user_key(name: str) -> str:
        return f"/user/{name}"  # an absolute path: a user's file, by the ports' convention

    def put_user_file(name: str, data: bytes) -> str:
        blobs.put_bytes(user_key(name), data)
        return user_key(name)

    return Backend("memory", memory_ports(blobs), user_key, put_user_file, blobs.keys)


class OneRequestAtATime:
    """A boto3 client whose requests moto serves one at a time.

    DynamoDB isolates every request, and every transaction, on its own; moto does not (a
    transaction deep-copies tables that other threads are changing, and its condition
    checks race with other writes). Serialising whole requests gives threads what real
    DynamoDB gives them and nothing more: an adapter that read, then decided, then wrote
    in separate requests would still race here.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


def _aws(request: pytest.FixtureRequest) -> Backend:
    from tilefan.adapters.aws.dynamo_store import DynamoJobStore
    from tilefan.adapters.aws.s3_store import S3BlobStore, s3_ports

    s3 = request.getfixturevalue("s3_client")
    dynamodb = request.getfixturevalue("dynamodb_client")

    def user_key(name: str) -> str:
        return f"s3://{USER_BUCKET}/{name}"

    def put_user_file(name: str, data: bytes) -> str:
        s3.put_object(Bucket=USER_BUCKET, Key=name, Body=data)
        return user_key(name)

    def stored() -> set[str]:
        names = set()
        for bucket in (BUCKET, USER_BUCKET):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                names |= {f"{bucket}/{o['Key']}" for o in page.get("Contents", [])}
        return names

    # S3's own part limits (5 MiB at least, as moto enforces): BIG outputs take several parts.
    blobs = S3BlobStore(s3, BUCKET, prefix="store/")
    jobs = DynamoJobStore(OneRequestAtATime(dynamodb), TABLE)
    return Backend("aws", s3_ports(blobs, jobs), user_key, put_user_file, stored,
                   raw={"s3": s3, "dynamodb": dynamodb})


@pytest.fixture(params=["embedded", "aws", "memory"])
def be(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "embedded":
        return _embedded(tmp_path)
    return _aws(request) if request.param == "aws" else _memory()


# Each optional capability, by its field on ``Ports``, and the adapter sets that offer it.
CAPABILITIES: dict[str, type] = {
    "assembly": caps.PartAssembly, "in_place": caps.InPlaceOutputs, "claims": caps.OutputClaims,
    "direct_put": caps.DirectPut, "presign": caps.Presigning, "sent_uploads": caps.SentUploads,
    "local_files": caps.LocalFiles, "memory_outputs": caps.MemoryOutputs,
    "zarr_regions": caps.ZarrRegions,
}
OFFERED = {"embedded": {"claims", "direct_put", "local_files"},
           "aws": {"assembly", "presign", "sent_uploads", "zarr_regions"}, "memory": {"direct_put"}}
# Facts about an adapter set's store that change what the pipeline does, not calls it makes.
PROPERTIES = {"mapped_reads"}
MAPPED = {"embedded"}


def test_every_optional_capability_of_the_ports_is_listed_here() -> None:
    assert set(CAPABILITIES) | PROPERTIES == {f.name for f in fields(Ports)} - {"blobs", "jobs"}


def test_a_store_said_to_read_through_memory_maps_reads_a_column_block_as_a_view(be: Backend) -> None:
    """``mapped_reads`` lets a matmul skip staging B's panels: true only where a column
    block of a stored array is a view of the mapped file, with no copy to stage."""
    assert be.ports.mapped_reads is (be.kind in MAPPED)
    array = np.arange(48.0).reshape(6, 8)
    be.blobs.write_array("jobs/j1/m.npy", array)
    for key in (be.put_user_file("m.npy", npy(array)), "jobs/j1/m.npy"):
        block = be.blobs.read_rows(key, (0, 6), (2, 5))
        np.testing.assert_array_equal(block, array[:, 2:5], strict=True)
        if be.ports.mapped_reads:
            assert not block.flags.owndata and isinstance(block.base, np.memmap | mmap.mmap), type(block.base)


def test_each_adapter_set_declares_exactly_the_capabilities_its_store_has(be: Backend) -> None:
    # What the adapter set wires is what its store can do: a capability left out would
    # silently take the slower or refusing path; one wired that the store lacks would fail.
    declared = {name for name in CAPABILITIES if vars(be.ports)[name] is not None}
    assert declared == OFFERED[be.kind]
    for name, protocol in CAPABILITIES.items():
        assert defines(be.blobs, protocol) is (name in declared), f"{be.kind}: {name} ({protocol.__name__})"
        assert vars(be.ports)[name] in (None, be.blobs)


def test_the_python_apis_temporary_home_adds_outputs_in_memory(tmp_path: Path) -> None:
    from tilefan.bootstrap import embedded_ports, hold_in_memory

    ports = embedded_ports(tmp_path, hold_in_memory(tmp_path, max_output_bytes=1 << 20))
    declared = {name for name in CAPABILITIES if vars(ports)[name] is not None}
    assert declared == OFFERED["embedded"] | {"in_place", "memory_outputs"}
    for name, protocol in CAPABILITIES.items():
        assert defines(ports.blobs, protocol) is (name in declared), name
        assert vars(ports)[name] in (None, ports.blobs)


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def grid(shape: tuple[int, ...], tile: tuple[int, ...]) -> list[tuple[tuple[int, int], ...]]:
    """Every tile region of ``shape`` cut into ``tile``-sized blocks (edges ragged)."""
    axes = [[(a, min(a + t, n)) for a in range(0, n, t)] for n, t in zip(shape, tile, strict=True)]
    return list(itertools.product(*axes))


def cut(array: np.ndarray, region: Region) -> np.ndarray:
    return array[tuple(slice(a, b) for a, b in region)]


# =========================================================================== blob store


def test_json_round_trips_and_overwrites(be: Backend) -> None:
    value = {"tiles": [{"job_id": "j", "tile_id": 3}], "x": 0.1, "big": 2**53 + 1, "name": "fünf", "none": None}
    be.blobs.put_json("jobs/j1/manifest.json", value)
    assert be.blobs.get_json("jobs/j1/manifest.json") == value
    be.blobs.put_json("jobs/j1/manifest.json", [1, 2])
    assert be.blobs.get_json("jobs/j1/manifest.json") == [1, 2]


def test_read_bytes_returns_a_user_file_exactly(be: Backend) -> None:
    data = b"x,y,z,q\n1,2,3,4\n" + bytes(range(256))
    assert be.blobs.read_bytes(be.put_user_file("atoms.csv", data)) == data


ARRAYS: dict[str, np.ndarray] = {
    "2d float64": np.arange(35, dtype=np.float64).reshape(7, 5) / 3,
    "2d float32 fortran": np.asfortranarray(np.arange(48, dtype=np.float32).reshape(6, 8)),
    "3d int16": np.arange(60, dtype=np.int16).reshape(3, 4, 5),
    "big-endian": np.arange(12, dtype=">f8").reshape(4, 3),
    "1 row": np.ones((1, 9)),
}


@pytest.mark.parametrize("name", ARRAYS)
def test_array_info_matches_the_array(be: Backend, name: str) -> None:
    array = ARRAYS[name]
    be.blobs.write_array("jobs/j1/in.npy", array)
    user = be.put_user_file("in.npy", npy(array))
    for key in ("jobs/j1/in.npy", user):
        assert be.blobs.array_info(key) == (array.shape, array.dtype.name)


def test_array_info_reads_a_header_longer_than_one_probe(be: Backend) -> None:
    # ~300 named fields make a header of several KiB, past the first ranged read.
    dtype = np.dtype([(f"field_{i:04d}", "<f4") for i in range(300)])
    array = np.zeros((3, 2), dtype=dtype)
    key = be.put_user_file("wide.npy", npy(array))
    assert be.blobs.array_info(key) == ((3, 2), dtype.name)
    assert be.blobs.read_rows(key, (1, 3)).tobytes() == array[1:3].tobytes()


ROW_CASES = [
    ((0, 7), None), ((2, 5), None), ((3, 4), (1, 4)), ((0, 7), (0, 5)), ((5, 99), (2, 3)), ((4, 4), None),
]


@pytest.mark.parametrize("name", ["2d float64", "2d float32 fortran", "big-endian"])
@pytest.mark.parametrize(("rows", "cols"), ROW_CASES)
def test_read_rows_equals_numpy_slicing(
    be: Backend, name: str, rows: tuple[int, int], cols: tuple[int, int] | None
) -> None:
    array = ARRAYS[name]
    user = be.put_user_file("m.npy", npy(array))
    be.blobs.write_array("jobs/j1/m.npy", array)
    expected = array[rows[0] : rows[1]] if cols is None else array[rows[0] : rows[1], cols[0] : cols[1]]
    for key in (user, "jobs/j1/m.npy"):
        got = be.blobs.read_rows(key, rows, cols)
        assert got.dtype == array.dtype
        np.testing.assert_array_equal(got, expected, strict=True)


def test_read_rows_of_a_3d_array_takes_leading_rows(be: Backend) -> None:
    array = ARRAYS["3d int16"]
    be.blobs.write_array("jobs/j1/cube.npy", array)
    np.testing.assert_array_equal(be.blobs.read_rows("jobs/j1/cube.npy", (1, 3)), array[1:3], strict=True)


def test_write_array_then_read_array_round_trips(be: Backend) -> None:
    for name, array in ARRAYS.items():
        key = f"jobs/j1/{name.replace(' ', '_')}.npy"
        be.blobs.write_array(key, array)
        got = be.blobs.read_array(key)
        np.testing.assert_array_equal(got, array, strict=True)
        assert got.dtype == array.dtype


# --------------------------------------------------------------------------- outputs

OUTPUTS = {
    "2d ragged tiles": ((10, 7), "float64", (4, 3)),
    "2d row bands": ((9, 6), "float32", (2, 6)),
    "3d blocks": ((5, 6, 4), "float64", (2, 4, 3)),
    "3d one plane at a time": ((3, 4, 5), "int32", (1, 4, 5)),
}


@pytest.mark.parametrize("name", OUTPUTS)
@pytest.mark.parametrize("where", ["store", "user"])
def test_tiles_in_any_order_commit_to_exactly_the_array(be: Backend, name: str, where: str) -> None:
    shape, dtype, tile = OUTPUTS[name]
    expected = (np.arange(int(np.prod(shape))).reshape(shape) * 1.5 - 7).astype(dtype)
    key = "jobs/j1/out.npy" if where == "store" else be.put_user_file("field.npy", b"old")
    before = be.stored()
    be.blobs.create_array(key, shape, dtype, "j1")
    regions = grid(shape, tile)
    random.Random(7).shuffle(regions)
    # A retried tile writes its region again: first a wrong block, then the right one.
    be.blobs.write_region(key, "j1", regions[0], np.full(cut(expected, regions[0]).shape, 99, dtype=dtype))
    for region in regions:
        be.blobs.write_region(key, "j1", region, cut(expected, region))
    be.blobs.write_region(key, "j1", regions[0], cut(expected, regions[0]))
    # Nothing new is visible at the key before the commit.
    if where == "store":
        with pytest.raises(BlobNotFoundError):
            be.blobs.array_info(key)
    else:
        assert be.blobs.read_bytes(key) == b"old"
    whole = tuple((0, n) for n in shape)
    np.testing.assert_array_equal(be.blobs.read_region(key, "j1", whole), expected, strict=True)

    location = be.blobs.commit_array(key, "j1")

    for readable in (key, location):
        got = be.blobs.read_array(readable)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, expected, strict=True)
    assert be.blobs.array_info(key) == (shape, np.dtype(dtype).name)
    # Committed: only the output itself is new; no parts or partial files are left.
    added = be.stored() - before
    assert len(added) == (1 if where == "store" else 0), added


@pytest.mark.parametrize("committed", [False, True])
def test_read_region_spans_tiles_before_and_after_commit(be: Backend, committed: bool) -> None:
    shape, tile = (8, 9, 3), (3, 4, 3)
    expected = np.random.default_rng(1).standard_normal(shape)
    be.blobs.create_array("jobs/j1/out.npy", shape, "float64", "j1")
    for region in grid(shape, tile):
        be.blobs.write_region("jobs/j1/out.npy", "j1", region, cut(expected, region))
    if committed:
        be.blobs.commit_array("jobs/j1/out.npy", "j1")
    for region in [((2, 7), (1, 8), (0, 3)), ((0, 8), (0, 9), (1, 2)), ((5, 6), (4, 5), (2, 3))]:
        got = be.blobs.read_region("jobs/j1/out.npy", "j1", region)
        np.testing.assert_array_equal(got, cut(expected, region), strict=True)


def test_unwritten_cells_read_as_zero_and_commit_as_zero(be: Backend) -> None:
    be.blobs.create_array("jobs/j1/out.npy", (4, 4), "float32", "j1")
    be.blobs.write_region("jobs/j1/out.npy", "j1", ((0, 2), (0, 4)), np.ones((2, 4), dtype=np.float32))
    expected = np.zeros((4, 4), dtype=np.float32)
    expected[:2] = 1
    np.testing.assert_array_equal(be.blobs.read_region("jobs/j1/out.npy", "j1", ((1, 3), (0, 4))), expected[1:3])
    be.blobs.commit_array("jobs/j1/out.npy", "j1")
    np.testing.assert_array_equal(be.blobs.read_array("jobs/j1/out.npy"), expected, strict=True)


def test_creating_an_output_again_starts_from_nothing(be: Backend) -> None:
    # A retried plan re-creates the output: tiles of the first attempt must not survive.
    be.blobs.create_array("jobs/j1/out.npy", (2, 2), "float64", "j1")
    be.blobs.write_region("jobs/j1/out.npy", "j1", ((0, 2), (0, 2)), np.full((2, 2), 5.0))
    be.blobs.create_array("jobs/j1/out.npy", (2, 2), "float64", "j1")
    be.blobs.commit_array("jobs/j1/out.npy", "j1")
    np.testing.assert_array_equal(be.blobs.read_array("jobs/j1/out.npy"), np.zeros((2, 2)), strict=True)


def test_two_jobs_build_outputs_at_the_same_key_apart(be: Backend) -> None:
    for job, value in (("ja", 1.0), ("jb", 2.0)):
        be.blobs.create_array("shared/out.npy", (2, 3), "float64", job)
        be.blobs.write_region("shared/out.npy", job, ((0, 2), (0, 3)), np.full((2, 3), value))
    be.blobs.discard_array("shared/out.npy", "ja")
    be.blobs.commit_array("shared/out.npy", "jb")
    np.testing.assert_array_equal(be.blobs.read_array("shared/out.npy"), np.full((2, 3), 2.0), strict=True)


# 11.2 MB: more than two 5 MiB parts, so the S3 commit is a real multipart upload.
BIG = (1400, 1000)


def build_big_output(blobs: BlobStore, band_rows: int) -> np.ndarray:
    """Start job j1's output jobs/j1/big.npy of shape BIG and write all of it in bands of
    ``band_rows``; returns what it holds."""
    expected = np.arange(BIG[0] * BIG[1], dtype=np.float64).reshape(BIG)
    blobs.create_array("jobs/j1/big.npy", BIG, "float64", "j1")
    for region in grid(BIG, (band_rows, BIG[1])):
        blobs.write_region("jobs/j1/big.npy", "j1", region, cut(expected, region))
    return expected


def test_a_large_output_commits_whole(be: Backend) -> None:
    expected = build_big_output(be.blobs, 300)
    be.blobs.commit_array("jobs/j1/big.npy", "j1")
    np.testing.assert_array_equal(be.blobs.read_array("jobs/j1/big.npy"), expected, strict=True)
    np.testing.assert_array_equal(be.blobs.read_rows("jobs/j1/big.npy", (699, 701), (10, 20)),
                                  expected[699:701, 10:20], strict=True)


def test_discard_leaves_nothing_behind(be: Backend) -> None:
    before = be.stored()
    be.blobs.create_array("jobs/j1/out.npy", (6, 6), "float64", "j1")
    for region in grid((6, 6), (3, 3))[:3]:
        be.blobs.write_region("jobs/j1/out.npy", "j1", region, np.ones((3, 3)))
    be.blobs.discard_array("jobs/j1/out.npy", "j1")
    assert be.stored() == before
    with pytest.raises(BlobNotFoundError):
        be.blobs.array_info("jobs/j1/out.npy")
    with pytest.raises(StoreError):
        be.blobs.commit_array("jobs/j1/out.npy", "j1")
    be.blobs.discard_array("jobs/j1/out.npy", "j1")  # discarding again is harmless


def test_commit_of_an_output_never_created_is_refused(be: Backend) -> None:
    with pytest.raises(StoreError):
        be.blobs.commit_array("jobs/j1/out.npy", "j1")


def test_write_region_of_an_output_never_created_is_not_found(be: Backend) -> None:
    with pytest.raises(BlobNotFoundError):
        be.blobs.write_region("jobs/j1/out.npy", "j1", ((0, 1), (0, 1)), np.ones((1, 1)))


def test_delete_prefix_removes_that_folder_only(be: Backend) -> None:
    for key in ("jobs/a/manifest.json", "jobs/a/deep/items.json", "jobs/ab/manifest.json"):
        be.blobs.put_json(key, {"k": key})
    be.blobs.delete_prefix("jobs/a")
    for key in ("jobs/a/manifest.json", "jobs/a/deep/items.json"):
        with pytest.raises(BlobNotFoundError):
            be.blobs.get_json(key)
    assert be.blobs.get_json("jobs/ab/manifest.json") == {"k": "jobs/ab/manifest.json"}
    be.blobs.delete_prefix("jobs/nothing-here")


# --------------------------------------------------------------------------- blob errors

READERS: dict[str, Callable[[BlobStore, str], object]] = {
    "get_json": lambda b, k: b.get_json(k),
    "read_bytes": lambda b, k: b.read_bytes(k),
    "array_info": lambda b, k: b.array_info(k),
    "read_rows": lambda b, k: b.read_rows(k, (0, 1)),
    "read_array": lambda b, k: b.read_array(k),
}


@pytest.mark.parametrize("reader", READERS)
def test_a_missing_key_is_blob_not_found(be: Backend, reader: str) -> None:
    for key in ("jobs/nope/x.npy", be.user_key("absent.npy")):
        with pytest.raises(BlobNotFoundError):
            READERS[reader](be.blobs, key)


def test_read_region_of_a_missing_output_is_blob_not_found(be: Backend, request: pytest.FixtureRequest) -> None:
    with pytest.raises(BlobNotFoundError):
        be.blobs.read_region("jobs/nope/out.npy", "j1", ((0, 1), (0, 1)))


NOT_NPY = {
    "text": b"x,y,z,q\n0,0,0,1\n",
    "empty": b"",
    "npz archive": b"",  # filled in below: a zip, which np.load would happily open
    "truncated header": npy(np.ones((3, 3)))[:20],
}
_npz = io.BytesIO()
np.savez(_npz, a=np.ones(3))
NOT_NPY["npz archive"] = _npz.getvalue()


@pytest.mark.parametrize("reader", ["array_info", "read_rows", "read_array"])
@pytest.mark.parametrize("content", NOT_NPY)
def test_an_object_that_is_not_npy_is_invalid(be: Backend, reader: str, content: str) -> None:
    key = be.put_user_file("bad.npy", NOT_NPY[content])
    with pytest.raises(InvalidBlobError):
        READERS[reader](be.blobs, key)


# =========================================================================== job store


def job(job_id: str, created_at: float = 1_700_000_000.25, **changes: Any) -> JobRecord:
    fields: dict[str, Any] = {
        "job_id": job_id, "kind": "matmul", "status": Status.QUEUED, "created_at": created_at,
        "spec": parse_spec({"kind": "matmul", "a": {"shape": [4, 4]}, "b": {"shape": [4, 4]}, "seed": 1, "tile": 2}),
        "tiles_total": 4, "units_total": 16, "links": {"self": f"/jobs/{job_id}"},
    }
    return JobRecord(**{**fields, **changes})


def running(be: Backend, job_id: str = "j1") -> str:
    be.jobs.create_job(job(job_id))
    assert be.jobs.transition(job_id, Status.RUNNING, timings={"started_at": 10.0})
    return job_id


def tile(tile_id: int, units: int = 4, worker: str = "w1", started: float = 100.0) -> TileResult:
    return TileResult(
        tile_id=tile_id, units=units, stats={"sum": tile_id * 0.5, "sumsq": 1.25}, started_at=started,
        finished_at=started + 1.5, worker=worker, route="lambda", bytes_read=1024, bytes_written=128,
    )


def test_create_then_get_returns_the_record(be: Backend) -> None:
    record = job("j1", timings={"plan_s": 0.125})
    be.jobs.create_job(record)
    assert be.jobs.get_job("j1") == record


def test_creating_an_existing_job_is_a_conflict_and_changes_nothing(be: Backend) -> None:
    be.jobs.create_job(job("j1"))
    with pytest.raises(ConflictError):
        be.jobs.create_job(job("j1", kind="add", created_at=5.0))
    assert be.jobs.get_job("j1") == job("j1")


def test_a_missing_job_is_not_found(be: Backend) -> None:
    with pytest.raises(JobNotFoundError):
        be.jobs.get_job("nope")
    with pytest.raises(JobNotFoundError):
        be.jobs.set_plan("nope", 1, 1)
    with pytest.raises(JobNotFoundError):
        be.jobs.transition("nope", Status.RUNNING)
    with pytest.raises(JobNotFoundError):
        be.jobs.record_tile_done("nope", tile(0))
    assert be.jobs.tile_results("nope") == []


def test_set_plan_sets_the_totals(be: Backend) -> None:
    be.jobs.create_job(job("j1"))
    be.jobs.set_plan("j1", 9, 81)
    record = be.jobs.get_job("j1")
    assert (record.tiles_total, record.units_total, record.tiles_done, record.units_done) == (9, 81, 0, 0)


def test_list_jobs_pages_newest_first_without_duplicates(be: Backend) -> None:
    assert be.jobs.list_jobs(3) == ([], None)
    # Two jobs share a creation time: the job id breaks the tie, the same on every page.
    times = {"a": 5.0, "b": 1.5, "c": 9.75, "d": 5.0, "e": 1_700_000_000.5, "f": 3.0, "g": 12.0}
    for job_id, created in random.Random(3).sample(sorted(times.items()), len(times)):
        be.jobs.create_job(job(job_id, created_at=created))
    expected = [j for j, _ in sorted(times.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]

    pages, cursor = [], None
    while True:
        records, cursor = be.jobs.list_jobs(3, cursor)
        pages.append([r.job_id for r in records])
        if cursor is None:
            break
    assert pages == [expected[0:3], expected[3:6], expected[6:7]]
    assert be.jobs.list_jobs(7) == ([be.jobs.get_job(j) for j in expected], None)  # an exact fit has no next page
    first, cursor = be.jobs.list_jobs(4)
    rest, last = be.jobs.list_jobs(3, cursor)
    assert [r.job_id for r in first + rest] == expected and last is None


def test_list_jobs_refuses_a_cursor_it_never_issued(be: Backend, request: pytest.FixtureRequest) -> None:
    with pytest.raises(InvalidSpecError):
        be.jobs.list_jobs(3, "not-a-cursor")


# Allowed steps that reach each status from QUEUED.
PATHS = {
    Status.QUEUED: [],
    Status.RUNNING: [Status.RUNNING],
    Status.SUCCEEDED: [Status.RUNNING, Status.SUCCEEDED],
    Status.FAILED: [Status.FAILED],
    Status.CANCELLED: [Status.RUNNING, Status.CANCELLED],
}


# One store per starting status: moto copies the whole table for every item of a
# transaction, so a table holding all 25 jobs made this test quadratic.
@pytest.mark.parametrize("start", list(Status), ids=lambda status: status.value)
def test_transitions_follow_allowed_from(be: Backend, start: Status) -> None:
    # Reach the status by allowed steps, then try every possible next status.
    assert set(PATHS) == set(Status)
    for new in Status:
        job_id = f"j-{new.value}"
        be.jobs.create_job(job(job_id))
        for step in PATHS[start]:
            assert be.jobs.transition(job_id, step)
        allowed = start in ALLOWED_FROM[new]
        assert be.jobs.transition(job_id, new) is allowed, (start, new)
        assert be.jobs.get_job(job_id).status is (new if allowed else start)
        assert not (start.terminal and allowed)


def test_named_transition_rules(be: Backend) -> None:
    be.jobs.create_job(job("q"))
    assert be.jobs.transition("q", Status.SUCCEEDED) is False  # never skips RUNNING
    assert be.jobs.transition("q", Status.QUEUED) is False  # nothing goes back to QUEUED
    running(be, "r")
    assert be.jobs.transition("r", Status.CANCELLED) is True
    for status in Status:  # a terminal status is final
        assert be.jobs.transition("r", status) is False
    assert be.jobs.get_job("r").status is Status.CANCELLED


def test_transition_merges_timings_and_links_and_keeps_result_and_error(be: Backend) -> None:
    be.jobs.create_job(job("j1", timings={"submitted_at": 1.0}))
    assert be.jobs.transition("j1", Status.RUNNING, timings={"started_at": 2.0, "plan_s": 0.5},
                              links={"console_url": "https://example/x"})
    assert be.jobs.transition("j1", Status.SUCCEEDED, timings={"plan_s": 0.75, "wall_s": 3.0},
                              result={"checksums": {"sum": 1.5}})
    record = be.jobs.get_job("j1")
    assert record.timings == {"submitted_at": 1.0, "started_at": 2.0, "plan_s": 0.75, "wall_s": 3.0}
    assert record.links == {"self": "/jobs/j1", "console_url": "https://example/x"}
    assert (record.result, record.error) == ({"checksums": {"sum": 1.5}}, None)
    be.jobs.create_job(job("j2"))
    assert be.jobs.transition("j2", Status.FAILED, error={"code": "tile_failed", "tile_id": 3})
    assert be.jobs.get_job("j2").error == {"code": "tile_failed", "tile_id": 3}


# --------------------------------------------------------------------------- tiles


def test_a_tile_recorded_twice_counts_once(be: Backend) -> None:
    running(be)
    assert be.jobs.record_tile_done("j1", tile(2, units=6, worker="first")) is True
    assert be.jobs.record_tile_done("j1", tile(2, units=6, worker="second", started=200.0)) is False
    record = be.jobs.get_job("j1")
    assert (record.tiles_done, record.units_done) == (1, 6)
    assert be.jobs.tile_results("j1") == [tile(2, units=6, worker="first")]


def test_a_tile_finishing_after_its_job_was_cancelled_is_not_counted(be: Backend) -> None:
    running(be)
    assert be.jobs.record_tile_done("j1", tile(0, units=6)) is True
    assert be.jobs.transition("j1", Status.CANCELLED) is True
    assert be.jobs.record_tile_done("j1", tile(1, units=6)) is False
    record = be.jobs.get_job("j1")
    assert (record.status, record.tiles_done, record.units_done) == (Status.CANCELLED, 1, 6)
    assert [r.tile_id for r in be.jobs.tile_results("j1")] == [0]


def test_delete_removes_one_object_and_ignores_a_missing_one(be: Backend) -> None:
    be.blobs.write_array("jobs/j1/a.npy", np.ones(3))
    be.blobs.write_array("jobs/j1/b.npy", np.zeros(3))
    be.blobs.delete("jobs/j1/a.npy")
    be.blobs.delete("jobs/j1/a.npy")
    with pytest.raises(BlobNotFoundError):
        be.blobs.read_array("jobs/j1/a.npy")
    assert np.array_equal(be.blobs.read_array("jobs/j1/b.npy"), np.zeros(3))


def test_tile_results_are_in_tile_order_and_only_done_tiles(be: Backend) -> None:
    running(be)
    for tile_id in (12, 0, 100, 5, 3):
        be.jobs.record_tile_done("j1", tile(tile_id, units=tile_id + 1))
    be.jobs.tile_started("j1", 7, "w2", "lambda", 50.0)
    be.jobs.record_tile_failed("j1", 8, "boom", 51.0)
    assert [r.tile_id for r in be.jobs.tile_results("j1")] == [0, 3, 5, 12, 100]
    assert be.jobs.tile_results("j1")[3] == tile(12, units=13)
    record = be.jobs.get_job("j1")
    assert (record.tiles_done, record.units_done) == (5, 1 + 4 + 6 + 13 + 101)


def test_a_failed_tile_can_still_complete_once(be: Backend) -> None:
    running(be)
    be.jobs.tile_started("j1", 4, "w1", "lambda", 10.0)
    be.jobs.record_tile_failed("j1", 4, "worker lost", 11.0)
    be.jobs.tile_started("j1", 4, "w2", "spot", 12.0)
    assert be.jobs.record_tile_done("j1", tile(4, worker="w2", started=12.0)) is True
    [row] = be.jobs.tile_rows("j1")
    assert row["status"] == "done" and row["attempts"] == 2 and row["error"] is None
    assert (row["worker"], row["route"], row["started_at"], row["finished_at"]) == ("w2", "lambda", 12.0, 13.5)
    assert be.jobs.get_job("j1").tiles_done == 1


def test_a_late_failure_report_leaves_a_done_tile_done(be: Backend) -> None:
    running(be)
    be.jobs.record_tile_done("j1", tile(1))
    be.jobs.record_tile_failed("j1", 1, "late timeout", 500.0)
    [row] = be.jobs.tile_rows("j1")
    assert (row["status"], row["error"], row["finished_at"]) == ("done", None, 101.5)
    assert be.jobs.tile_results("j1") == [tile(1)]


def test_a_duplicate_start_after_done_leaves_the_tile_as_it_was(be: Backend) -> None:
    running(be)
    be.jobs.record_tile_done("j1", tile(1, worker="w1", started=100.0))
    before = be.jobs.tile_rows("j1")
    be.jobs.tile_started("j1", 1, "w9", "spot", 900.0)  # a duplicate delivery, after the fact
    assert be.jobs.tile_rows("j1") == before
    assert be.jobs.tile_results("j1") == [tile(1, worker="w1", started=100.0)]


def test_tile_rows_report_every_state(be: Backend) -> None:
    running(be)
    be.jobs.tile_started("j1", 0, "w0", "lambda", 1.0)
    be.jobs.tile_started("j1", 0, "w0b", "lambda", 2.0)
    be.jobs.record_tile_failed("j1", 1, "kernel failed", 3.0)
    be.jobs.record_tile_done("j1", tile(2))
    rows = be.jobs.tile_rows("j1")
    keys = {"job_id", "tile_id", "status", "started_at", "finished_at", "worker", "route", "units", "stats",
            "bytes_read", "bytes_written", "attempts", "error"}
    assert all(set(r) == keys for r in rows)
    pick = [{k: r[k] for k in ("tile_id", "status", "started_at", "finished_at", "worker", "route", "attempts",
                                "error", "stats", "units")} for r in rows]
    assert pick == [
        {"tile_id": 0, "status": "running", "started_at": 2.0, "finished_at": None, "worker": "w0b",
         "route": "lambda", "attempts": 2, "error": None, "stats": None, "units": None},
        {"tile_id": 1, "status": "failed", "started_at": None, "finished_at": 3.0, "worker": None,
         "route": None, "attempts": 1, "error": "kernel failed", "stats": None, "units": None},
        {"tile_id": 2, "status": "done", "started_at": 100.0, "finished_at": 101.5, "worker": "w1",
         "route": "lambda", "attempts": 1, "error": None, "stats": {"sum": 1.0, "sumsq": 1.25}, "units": 4},
    ]
    assert rows[2]["bytes_read"] == 1024 and rows[2]["bytes_written"] == 128 and rows[2]["job_id"] == "j1"


def test_concurrent_reports_of_the_same_tiles_count_each_once(be: Backend) -> None:
    running(be)
    tiles, threads = 12, 6
    orders = [random.Random(seed).sample(range(tiles), tiles) for seed in range(threads)]
    wins = report_tiles_concurrently(
        be.jobs, "j1", orders, lambda tile_id, seed: tile(tile_id, units=tile_id + 1, worker=f"t{seed}"))
    assert sorted(wins) == list(range(tiles))
    record = be.jobs.get_job("j1")
    assert (record.tiles_done, record.units_done) == (tiles, sum(t + 1 for t in range(tiles)))
    assert [r.tile_id for r in be.jobs.tile_results("j1")] == list(range(tiles))


# --------------------------------------------------------------------------- attempts


def attempts(be: Backend, job_id: str = "j1", *keys: str) -> list[tuple[Any, ...]]:
    pick = keys or ("tile_id", "attempt", "status")
    return [tuple(a[k] for k in pick) for a in be.jobs.tile_attempts(job_id)]


def test_every_start_is_an_attempt_with_its_own_outcome(be: Backend) -> None:
    running(be)
    assert be.jobs.tile_started("j1", 4, "w1", "lambda", 10.0) == 1
    be.jobs.record_tile_failed("j1", 4, "worker lost", 11.0, attempt=1)
    assert be.jobs.tile_started("j1", 4, "w2", "spot", 12.0) == 2
    assert be.jobs.record_tile_done("j1", tile(4, worker="w2", started=12.0), attempt=2) is True
    keys = ("tile_id", "attempt", "status", "started_at", "finished_at", "worker", "route", "bytes_read",
            "bytes_written", "error")
    assert attempts(be, "j1", *keys) == [
        (4, 1, "failed", 10.0, 11.0, "w1", "lambda", None, None, "worker lost"),
        (4, 2, "done", 12.0, 13.5, "w2", "lambda", 1024, 128, None),
    ]
    assert all(set(a) == set(keys) | {"job_id"} and a["job_id"] == "j1" for a in be.jobs.tile_attempts("j1"))
    assert be.jobs.tile_rows("j1")[0]["attempts"] == 2  # the tile row keeps the count, and its last attempt


def test_a_duplicate_delivery_adds_no_second_success(be: Backend) -> None:
    running(be)
    first = be.jobs.tile_started("j1", 2, "w1", "lambda", 10.0)
    second = be.jobs.tile_started("j1", 2, "w2", "lambda", 10.5)  # delivered twice, both running
    assert (first, second) == (1, 2)
    assert be.jobs.record_tile_done("j1", tile(2, worker="w2", started=10.5), attempt=second) is True
    assert be.jobs.record_tile_done("j1", tile(2, worker="w1", started=10.0), attempt=first) is False
    assert be.jobs.record_tile_done("j1", tile(2, worker="w2", started=10.5), attempt=second) is False  # a repeat
    assert be.jobs.tile_started("j1", 2, "w3", "lambda", 20.0) is None  # a start after done is no attempt
    be.jobs.record_tile_failed("j1", 2, "late", 21.0)  # nor does a late failure touch the counted one
    assert attempts(be) == [(2, 1, "duplicate"), (2, 2, "done")]
    assert [a["worker"] for a in be.jobs.tile_attempts("j1")] == ["w1", "w2"]
    assert be.jobs.get_job("j1").tiles_done == 1


def test_attempts_end_cancelled_with_their_job_and_stay_so(be: Backend) -> None:
    running(be)
    be.jobs.tile_started("j1", 0, "w1", "lambda", 10.0)
    be.jobs.tile_started("j1", 1, "w2", "lambda", 10.0)
    assert be.jobs.transition("j1", Status.CANCELLED)
    be.jobs.tile_cancelled("j1", 0, 11.0)  # the canceller names no attempt: the latest
    assert be.jobs.record_tile_done("j1", tile(1, worker="w2", started=10.0), attempt=1) is False
    be.jobs.tile_cancelled("j1", 1, 12.0, attempt=1)
    be.jobs.record_tile_failed("j1", 0, "too late", 13.0, attempt=1)  # an outcome is written once
    assert attempts(be, "j1", "tile_id", "status", "finished_at", "error") == [
        (0, "cancelled", 11.0, None), (1, "cancelled", 11.5, None)]


def test_a_tile_reported_without_a_start_has_one_attempt(be: Backend) -> None:
    running(be)
    assert be.jobs.record_tile_done("j1", tile(3)) is True
    be.jobs.record_tile_failed("j1", 5, "kernel failed", 3.0)
    assert attempts(be, "j1", "tile_id", "attempt", "status", "worker", "error") == [
        (3, 1, "done", "w1", None), (5, 1, "failed", None, "kernel failed")]


def test_concurrent_deliveries_leave_exactly_one_done_attempt_per_tile(be: Backend) -> None:
    running(be)
    tiles, threads = 6, 4
    orders = [random.Random(seed).sample(range(tiles), tiles) for seed in range(threads)]
    wins = report_tiles_concurrently(
        be.jobs, "j1", orders, lambda tile_id, seed: tile(tile_id, worker=f"t{seed}"), mark_started=True)
    assert sorted(wins) == list(range(tiles))
    rows = be.jobs.tile_attempts("j1")
    for tile_id in range(tiles):
        mine = [a for a in rows if a["tile_id"] == tile_id]
        assert [a["attempt"] for a in mine] == list(range(1, len(mine) + 1))
        assert [a["status"] for a in mine].count("done") == 1
        assert {a["status"] for a in mine} <= {"done", "duplicate"}
        assert len(mine) == be.jobs.tile_rows("j1")[tile_id]["attempts"]


def test_sqlite_migrates_a_database_made_before_attempts(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "jobs.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE tiles (job_id TEXT NOT NULL, tile_id INTEGER NOT NULL, status TEXT NOT NULL,"
        " started_at REAL, finished_at REAL, worker TEXT, route TEXT, units INTEGER, stats TEXT,"
        " bytes_read INTEGER, bytes_written INTEGER, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,"
        " PRIMARY KEY (job_id, tile_id));"
        "INSERT INTO tiles VALUES ('j1', 0, 'done', 1.0, 2.0, 'w1', 'local', 4, '{}', 10, 20, 2, NULL);"
        "INSERT INTO tiles VALUES ('j1', 1, 'failed', 1.5, 3.0, 'w2', 'local', NULL, NULL, NULL, NULL, 1, 'boom');")
    old.commit()
    old.close()
    store = SqliteJobStore(path)
    keys = ("tile_id", "attempt", "status", "started_at", "finished_at", "worker", "bytes_read", "error")
    expected = [(0, 2, "done", 1.0, 2.0, "w1", 10, None), (1, 1, "failed", 1.5, 3.0, "w2", None, "boom")]
    assert [tuple(a[k] for k in keys) for a in store.tile_attempts("j1")] == expected
    # Opening it again (another process, another thread) migrates nothing twice.
    again = SqliteJobStore(path)
    assert len(again.tile_attempts("j1")) == 2 and again.tile_started("j1", 1, "w3", "local", 5.0) == 2


# =========================================================================== AWS only


@pytest.fixture
def aws(request: pytest.FixtureRequest) -> Backend:
    return _aws(request)


@contextlib.contextmanager
def _s3_events(s3: Any, event: str, pick: Callable[..., Any]) -> Iterator[list[Any]]:
    """What ``pick`` takes from each of the client's ``event`` inside the block (botocore
    calls a handler with keyword arguments only)."""
    seen: list[Any] = []

    def note(**kwargs: Any) -> None:
        seen.append(pick(**kwargs))

    s3.meta.events.register(event, note)
    try:
        yield seen
    finally:
        s3.meta.events.unregister(event, note)


def _ranges_asked(s3: Any) -> contextlib.AbstractContextManager[list[str | None]]:
    """The Range header of every GetObject made inside the block (None: whole object)."""
    return _s3_events(s3, "provide-client-params.s3.GetObject", lambda params, **_: params.get("Range"))


def test_aws_array_info_and_read_rows_fetch_only_what_they_need(aws: Backend) -> None:
    array = np.arange(100 * 50, dtype=np.float64).reshape(100, 50)
    aws.blobs.write_array("jobs/j1/a.npy", array)
    with _ranges_asked(aws.raw["s3"]) as asked:
        assert aws.blobs.array_info("jobs/j1/a.npy") == ((100, 50), "float64")
        assert asked == ["bytes=0-4095"]
        np.testing.assert_array_equal(aws.blobs.read_rows("jobs/j1/a.npy", (10, 12), (5, 9)), array[10:12, 5:9])
        header = 128  # np.save pads a short header to 128 bytes
        assert asked[-1] == f"bytes={header + 10 * 400}-{header + 12 * 400 - 1}"


def test_aws_items_expire_and_committed_outputs_are_encrypted(aws: Backend) -> None:
    from tilefan.adapters.aws.dynamo_items import SHARDS
    from tilefan.adapters.aws.dynamo_store import DynamoJobStore

    jobs = DynamoJobStore(aws.raw["dynamodb"], TABLE, ttl_days=2, clock=lambda: 1_000.0)
    jobs.create_job(job("j1"))
    jobs.transition("j1", Status.RUNNING)
    jobs.record_tile_done("j1", tile(0))
    items = aws.raw["dynamodb"].scan(TableName=TABLE)["Items"]
    # the job, its tile and the tile's one attempt, its shards' counters and its owner's count of active jobs
    assert len(items) == 4 + SHARDS and all(i["expires_at"] == {"N": str(1_000 + 2 * 86_400)} for i in items)
    ttl = aws.raw["dynamodb"].describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    aws.blobs.create_array("jobs/j1/out.npy", (2, 2), "float64", "j1")
    uri = aws.blobs.commit_array("jobs/j1/out.npy", "j1")
    assert uri == f"s3://{BUCKET}/store/jobs/j1/out.npy"
    head = aws.raw["s3"].head_object(Bucket=BUCKET, Key="store/jobs/j1/out.npy")
    assert head["ServerSideEncryption"] == "AES256"


def _s3_requests(s3: Any) -> contextlib.AbstractContextManager[list[str]]:
    """The operation (as a client method name) of every S3 request made inside the block."""
    from botocore import xform_name

    return _s3_events(s3, "before-call.s3", lambda model, **_: xform_name(model.name))


def test_aws_a_large_commit_is_one_multipart_upload_of_copied_rows(aws: Backend) -> None:
    from tilefan.adapters.aws.s3_store import ASSEMBLY_CALLS

    expected = build_big_output(aws.blobs, BIG[0])  # one full-width block of 11.2 MB
    with _s3_requests(aws.raw["s3"]) as made:
        aws.blobs.commit_array("jobs/j1/big.npy", "j1")
    head = aws.raw["s3"].head_object(Bucket=BUCKET, Key="store/jobs/j1/big.npy")
    assert head["ETag"].strip('"').endswith("-2")  # S3 tags a multipart object with its part count
    # The header and the first 5 MiB of rows are sent; the rest is copied inside S3.
    assert made.count("upload_part") == 1 and made.count("upload_part_copy") == 1
    assert made.count("complete_multipart_upload") == 1
    # Only the requests the store names for the IAM grants.
    assert set(made) <= {"get_object", "list_objects_v2", "delete_objects", *ASSEMBLY_CALLS}
    assert aws.raw["s3"].list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    np.testing.assert_array_equal(aws.blobs.read_array("jobs/j1/big.npy"), expected, strict=True)


def test_aws_a_commit_that_fails_midway_shows_nothing_and_can_be_retried(aws: Backend) -> None:
    from botocore.exceptions import ClientError

    expected = build_big_output(aws.blobs, 700)
    sent: list[int] = []

    def second_part_fails(params: dict[str, Any], **_: Any) -> None:
        sent.append(params["PartNumber"])
        if params["PartNumber"] == 2:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, "UploadPart")

    # Part 2 is a server-side copy (the second 700-row block is over 5 MiB).
    aws.raw["s3"].meta.events.register("provide-client-params.s3.UploadPartCopy", second_part_fails)
    try:
        with pytest.raises(StoreError, match="InternalError"):
            aws.blobs.commit_array("jobs/j1/big.npy", "j1")
    finally:
        aws.raw["s3"].meta.events.unregister("provide-client-params.s3.UploadPartCopy", second_part_fails)
    assert 2 in sent
    # Nothing at the key, no multipart upload left open, and the parts are still there.
    with pytest.raises(BlobNotFoundError):
        aws.blobs.array_info("jobs/j1/big.npy")
    assert aws.raw["s3"].list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    aws.blobs.commit_array("jobs/j1/big.npy", "j1")
    np.testing.assert_array_equal(aws.blobs.read_array("jobs/j1/big.npy"), expected, strict=True)

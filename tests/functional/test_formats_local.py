"""Zarr and HDF5 on the embedded backend: the Python API, the file store's contract for
chunked keys, reads that touch only a tile's chunks, and the hint when the extra is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

import tilefan
from tilefan.adapters.embedded.localfs import LocalBlobStore, local_ports
from tilefan.adapters.memory import MemoryJobStore
from tilefan.errors import IncompleteJobError, InvalidBlobError, InvalidSpecError
from tilefan.pipeline.plan import plan_job
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.reduce import reduce_job
from tilefan.pipeline.submit import submit_job
from tilefan.pipeline.tile import run_tile

RNG = np.random.default_rng(5)
A = RNG.standard_normal((70, 50))
B = RNG.standard_normal((50, 40))


def test_the_python_api_takes_zarr_and_hdf5_arrays_and_returns_a_zarr_array(tmp_path: Path) -> None:
    # A store whose directory does not end in .zarr, and an HDF5 file named .hdf5.
    za = zarr.create_array(store=str(tmp_path / "a_store"), shape=A.shape, chunks=(16, 50), dtype=A.dtype)
    za[:] = A
    with h5py.File(tmp_path / "b.hdf5", "w") as f:
        f.create_dataset("B", data=B, chunks=(10, 10))
    with h5py.File(tmp_path / "b.hdf5", "r") as f:
        c = tilefan.matmul(za, f["B"], tile=16, verify=True, out=tmp_path / "C.zarr", home=tmp_path / "home")
    assert isinstance(c, zarr.Array) and c.chunks == (16, 16)
    np.testing.assert_allclose(c[:], A @ B, rtol=1e-12, atol=1e-12)
    # An in-memory zarr array is copied like any array.
    mem = zarr.create_array(store=zarr.storage.MemoryStore(), shape=B.shape, chunks=(25, 25), dtype=B.dtype)
    mem[:] = B
    np.testing.assert_allclose(tilefan.add(mem, B), 2 * B)


def _pipeline(tmp_path: Path) -> Ports:
    return local_ports(LocalBlobStore(tmp_path / "blobs"), MemoryJobStore())


def test_a_tile_reads_only_the_chunks_its_block_crosses(tmp_path: Path) -> None:
    z = zarr.create_array(store=str(tmp_path / "A.zarr"), shape=A.shape, chunks=(10, 50), dtype=A.dtype)
    z[:] = A
    # Ruin every chunk of rows 20..69: a read of rows 0..20 must not touch them.
    for i in range(2, 7):
        (tmp_path / "A.zarr" / "c" / str(i) / "0").write_bytes(b"not a chunk")
    store = LocalBlobStore(tmp_path)
    np.testing.assert_array_equal(store.read_rows(str(tmp_path / "A.zarr"), (0, 20)), A[:20])
    np.testing.assert_array_equal(store.read_rows(str(tmp_path / "A.zarr"), (5, 15), (3, 9)), A[5:15, 3:9])
    with pytest.raises(Exception):  # noqa: B017 - the ruined chunk is read, so decoding fails
        store.read_rows(str(tmp_path / "A.zarr"), (15, 25))


def test_a_zarr_output_missing_a_chunk_is_not_published(tmp_path: Path) -> None:
    ports = _pipeline(tmp_path)
    out = str(tmp_path / "C.zarr")
    submit_job(ports, {"kind": "add", "a": {"shape": [30, 8]}, "b": {"shape": [30, 8]}, "tile": [10, 8],
                       "out": out}, job_id="job1")
    for tile in plan_job(ports, "job1").tiles:
        run_tile(ports, "job1", tile.tile_id)
    partial = tmp_path / ".C.zarr.job1.partial"
    (partial / "c" / "2" / "0").unlink()
    with pytest.raises(IncompleteJobError) as caught:
        reduce_job(ports, "job1")
    assert caught.value.missing == [2]
    assert not (tmp_path / "C.zarr").exists()


def test_a_zarr_output_replaces_an_earlier_one_whole(tmp_path: Path) -> None:
    ports = _pipeline(tmp_path)
    out = tmp_path / "C.zarr"
    for job_id, seed, tile in (("job1", 1, [8, 8]), ("job2", 2, [16, 16])):
        submit_job(ports, {"kind": "add", "a": {"shape": [20, 20]}, "b": {"shape": [20, 20]}, "seed": seed,
                           "tile": tile, "out": str(out)}, job_id=job_id)
        for t in plan_job(ports, job_id).tiles:
            run_tile(ports, job_id, t.tile_id)
        reduce_job(ports, job_id)
    c = zarr.open_array(store=str(out), mode="r")
    assert c.chunks == (16, 16)
    # No chunk of the first array's 8 x 8 grid survives in the second's.
    assert sorted(p.name for p in (out / "c").iterdir()) == ["0", "1"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".C.zarr")] == []


def test_without_the_formats_extra_a_chunked_input_gets_a_one_line_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["A"] = A
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    monkeypatch.setitem(sys.modules, "zarr", None)
    store = LocalBlobStore(tmp_path)
    for key, package in ((f"{tmp_path}/a.h5:A", "h5py"), (f"{tmp_path}/a.zarr", "zarr")):
        with pytest.raises(InvalidBlobError) as caught:
            store.array_info(key)
        assert caught.value.reason == f"reading {'HDF5' if package == 'h5py' else 'Zarr'} needs the {package} " \
                                      "package: pip install 'tilefan[formats]'"
    ports = _pipeline(tmp_path)
    with pytest.raises(InvalidSpecError) as refused:
        submit_job(ports, {"kind": "add", "a": {"shape": [4, 4]}, "b": {"shape": [4, 4]},
                           "out": str(tmp_path / "C.zarr")})
    assert refused.value.field == "out" and "pip install 'tilefan[formats]'" in refused.value.message

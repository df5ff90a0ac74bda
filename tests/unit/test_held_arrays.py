"""A temporary home's arrays held in memory: tiles read views of the caller's arrays and
write the outputs in this process's memory; a job whose tiles go to forked workers has its
outputs made files first."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from tilefan.adapters.embedded.held_arrays import HeldArrays, HeldBlobStore
from tilefan.errors import BlobNotFoundError, StoreError


def _store(home: Path, max_output_bytes: int = 1 << 20) -> tuple[HeldBlobStore, HeldArrays]:
    held = HeldArrays(home, max_output_bytes=max_output_bytes)
    return HeldBlobStore(home / "blobs", held), held


def test_held_rows_are_read_only_views_of_the_callers_array_and_files_still_read(tmp_path: Path) -> None:
    array = np.arange(20.0).reshape(4, 5)
    on_disk = np.ones((2, 2))
    np.save(tmp_path / "f.npy", on_disk)
    store, held = _store(tmp_path)
    held.hold("/held/a.npy", array)
    assert store.array_info("/held/a.npy") == ((4, 5), "float64")
    rows = store.read_rows("/held/a.npy", (1, 3))
    block = store.read_rows("/held/a.npy", (0, 4), (2, 4))
    assert np.shares_memory(rows, array) and np.shares_memory(block, array)  # no copy
    np.testing.assert_array_equal(block, array[:, 2:4])
    with pytest.raises(ValueError):
        rows[0, 0] = -1.0  # as a read-only mapping of a file would refuse
    whole = store.read_array("/held/a.npy")
    whole[0, 0] = -1.0  # np.load's answer is the caller's own
    assert array[0, 0] == 0.0
    assert store.array_info(str(tmp_path / "f.npy")) == ((2, 2), "float64")
    np.testing.assert_array_equal(store.read_rows(str(tmp_path / "f.npy"), (0, 1)), on_disk[:1])


def test_an_output_in_the_home_is_built_in_memory_and_committed_without_a_file(tmp_path: Path) -> None:
    store, held = _store(tmp_path)
    store.create_array("jobs/j1/out.npy", (4, 3), "float32", "j1")
    store.output_region("jobs/j1/out.npy", "j1", ((0, 2), (0, 3)))[...] = 1.0
    store.write_region("jobs/j1/out.npy", "j1", ((2, 4), (0, 3)), np.full((2, 3), 2.0))
    np.testing.assert_array_equal(store.read_region("jobs/j1/out.npy", "j1", ((1, 3), (0, 1))), [[1.0], [2.0]])
    where = store.commit_array("jobs/j1/out.npy", "j1")
    assert where == str((tmp_path / "blobs" / "jobs/j1/out.npy").resolve())
    assert not any(p.is_file() for p in tmp_path.rglob("*")), "nothing of the output was written to disk"
    result = held.result(where)
    assert result is not None and result.dtype == np.float32
    np.testing.assert_array_equal(result, [[1.0] * 3] * 2 + [[2.0] * 3] * 2)
    assert store.array_info("jobs/j1/out.npy") == ((4, 3), "float32")
    np.testing.assert_array_equal(store.read_rows("jobs/j1/out.npy", (3, 4)), [[2.0] * 3])
    store.delete("jobs/j1/out.npy")
    assert held.result(where) is None


def test_another_jobs_write_and_a_discarded_output_never_reach_the_held_one(tmp_path: Path) -> None:
    store, held = _store(tmp_path)
    store.create_array("jobs/j1/out.npy", (2, 2), "float64", "j1")
    assert store.output_region("jobs/j1/out.npy", "j2", ((0, 2), (0, 2))) is None  # j2 holds none here
    with pytest.raises(BlobNotFoundError):  # nor any output to write into
        store.write_region("jobs/j1/out.npy", "j2", ((0, 2), (0, 2)), np.ones((2, 2)))
    np.testing.assert_array_equal(store.read_region("jobs/j1/out.npy", "j1", ((0, 2), (0, 2))), np.zeros((2, 2)))
    store.discard_array("jobs/j1/out.npy", "j1")
    assert held.outputs == {}
    with pytest.raises(StoreError, match="never created"):
        store.commit_array("jobs/j1/out.npy", "j1")


def test_outputs_outside_the_home_or_over_the_limit_stay_files(tmp_path: Path) -> None:
    store, held = _store(tmp_path / "home", max_output_bytes=64)
    named = tmp_path / "named.npy"
    store.create_array(str(named), (2, 2), "float64", "j1")  # a path the caller named
    store.create_array("jobs/j2/big.npy", (3, 3), "float64", "j2")  # 72 bytes, over 64
    store.create_array("jobs/j3/c.zarr", (2, 2), "float64", "j3", chunks=(1, 2))  # chunked: a directory
    assert held.outputs == {}
    store.write_region(str(named), "j1", ((0, 2), (0, 2)), np.eye(2))
    np.testing.assert_array_equal(np.load(store.commit_array(str(named), "j1")), np.eye(2))


def _write_in_child(store: HeldBlobStore, key: str) -> None:
    try:
        store.write_region(key, "j1", ((0, 2), (0, 3)), np.full((2, 3), 7.0))
    except StoreError:
        raise SystemExit(3) from None  # refused, not silently written into a copy of the pages


def test_a_forked_worker_cannot_write_a_held_output_and_to_files_makes_it_a_file(tmp_path: Path) -> None:
    store, held = _store(tmp_path)
    store.create_array("jobs/j1/out.npy", (2, 3), "float64", "j1")
    assert store.in_memory("j1") and not store.in_memory("j2")
    fork = multiprocessing.get_context("fork")
    child = fork.Process(target=_write_in_child, args=(store, "jobs/j1/out.npy"))
    child.start()
    child.join(30)
    assert child.exitcode == 3
    store.to_files("j1")  # the scheduler's call before it sends the job's tiles to the pool
    assert not store.in_memory("j1") and held.outputs == {}
    child = fork.Process(target=_write_in_child, args=(store, "jobs/j1/out.npy"))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    where = store.commit_array("jobs/j1/out.npy", "j1")
    assert held.result(where) is None
    np.testing.assert_array_equal(np.load(where), np.full((2, 3), 7.0))


def test_to_files_keeps_what_was_written_here(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    store.create_array("jobs/j1/out.npy", (2, 2), "float32", "j1")
    store.write_region("jobs/j1/out.npy", "j1", ((0, 1), (0, 2)), np.ones((1, 2)))
    store.to_files("j1")
    store.write_region("jobs/j1/out.npy", "j1", ((1, 2), (0, 2)), np.full((1, 2), 2.0))
    np.testing.assert_array_equal(np.load(store.commit_array("jobs/j1/out.npy", "j1")), [[1, 1], [2, 2]])


def test_a_home_reached_through_a_symbolic_link_still_holds_its_outputs(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    store, held = _store(tmp_path / "link")
    store.create_array("jobs/j1/out.npy", (2, 2), "float64", "j1")
    assert store.in_memory("j1")
    store.write_region("jobs/j1/out.npy", "j1", ((0, 2), (0, 2)), np.eye(2))
    result = held.result(store.commit_array("jobs/j1/out.npy", "j1"))
    assert result is not None
    np.testing.assert_array_equal(result, np.eye(2))

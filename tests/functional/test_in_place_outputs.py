"""Where a matrix tile's block goes: straight into an output held in this process's memory
(the Python API's temporary home, the ``InPlaceOutputs`` port), else through
``write_region``; and the file store's new output files.

The tile tests run one matmul both ways (in place on a held output, and written to a file)
and compare outputs and checksums bit for bit.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_job
from tilefan.adapters.embedded.held_arrays import HeldArrays, HeldBlobStore
from tilefan.adapters.embedded.localfs import LocalBlobStore, local_ports
from tilefan.adapters.memory.job_store import MemoryJobStore
from tilefan.domain.tiling import Region
from tilefan.errors import StoreError
from tilefan.pipeline.ports import Ports


def test_a_file_output_offers_no_view_and_a_held_one_does(tmp_path: Path) -> None:
    assert local_ports(LocalBlobStore(tmp_path), MemoryJobStore()).in_place is None
    store = HeldBlobStore(tmp_path / "blobs", HeldArrays(tmp_path, max_output_bytes=1 << 10))
    store.create_array("jobs/j1/small.npy", (4, 4), "float64", "j1")  # 128 bytes: held
    store.create_array("jobs/j1/big.npy", (64, 64), "float64", "j1")  # over the limit: a file
    view = store.output_region("jobs/j1/small.npy", "j1", ((0, 2), (1, 9)))  # clipped to the output
    assert view is not None and view.shape == (2, 3)
    view[...] = 7.0
    assert store.output_region("jobs/j1/big.npy", "j1", ((0, 2), (0, 2))) is None
    where = store.commit_array("jobs/j1/small.npy", "j1")
    np.testing.assert_array_equal(store.held.result(where), np.pad(np.full((2, 3), 7.0), ((0, 2), (1, 0))))


def _counted(write: Callable[..., None], shapes: list[tuple[int, ...]], key: str, job_id: str,
             region: Region, block: np.ndarray) -> None:
    shapes.append(block.shape)
    write(key, job_id, region, block)


def _matmul_job(ports: Ports, folder: Path, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    np.save(folder / "A.npy", a)
    np.save(folder / "B.npy", b)
    final = run_job(ports, {"kind": "matmul", "a": {"file": str(folder / "A.npy")},
                            "b": {"file": str(folder / "B.npy")}, "out": str(folder / "C.npy"), "tile": 32})
    assert final.result is not None
    where = final.result["output"]
    held = getattr(ports.blobs, "held", None)
    result = held.result(where) if held is not None else None
    return (result if result is not None else np.load(where)), final.result["checksums"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_matmul_computed_in_place_equals_one_written_by_regions(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((90, 70)).astype(dtype), rng.standard_normal((70, 50)).astype(dtype)
    (tmp_path / "held").mkdir()
    (tmp_path / "file").mkdir()
    held_store, views = HeldBlobStore(tmp_path / "held", HeldArrays(tmp_path / "held", max_output_bytes=1 << 20)), []
    real_view = held_store.output_region

    def output_region(key: str, job_id: str, region: Region) -> np.ndarray | None:
        view = real_view(key, job_id, region)
        views.append(view is not None)
        return view

    held_store.output_region = output_region  # type: ignore[method-assign]
    held_ports = Ports(held_store, MemoryJobStore(), in_place=held_store)
    files = LocalBlobStore(tmp_path / "file")
    file_ports = local_ports(files, MemoryJobStore())
    blocks: dict[str, list[tuple[int, ...]]] = {"held": [], "file": []}
    for name, store in (("held", held_store), ("file", files)):
        store.write_region = functools.partial(_counted, store.write_region, blocks[name])  # type: ignore[method-assign]
    direct, sums_direct = _matmul_job(held_ports, tmp_path / "held", a, b)
    assert views == [True] * 6 and blocks["held"] == []  # every tile (3 × 2 of 32) computed in place
    written, sums_written = _matmul_job(file_ports, tmp_path / "file", a, b)
    assert blocks["file"] == [(32, 32), (32, 18)] * 2 + [(26, 32), (26, 18)]  # every tile written as a block
    assert not (tmp_path / "held" / "C.npy").exists() and (tmp_path / "file" / "C.npy").exists()
    assert np.array_equal(direct, written)
    assert sums_direct == sums_written
    np.testing.assert_allclose(direct, a @ b, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-4)


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="the platform has no posix_fallocate")
def test_a_new_output_has_its_blocks_reserved(tmp_path: Path) -> None:
    # A hole would leave every tile's write a delayed allocation (on ext4 replacing an older
    # output then flushes the new one first).
    store = LocalBlobStore(tmp_path)
    store.create_array("out.npy", (512, 512), "float64", "j1")
    (partial,) = tmp_path.glob(".out.npy.*")
    assert partial.stat().st_blocks * 512 >= 512 * 512 * 8
    assert np.array_equal(np.load(store.commit_array("out.npy", "j1")), np.zeros((512, 512)))


def test_a_disk_too_small_for_the_output_is_a_store_error_leaving_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, offset: int, size: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    with pytest.raises(StoreError, match=r"cannot create output out\.npy: No space left on device"):
        LocalBlobStore(tmp_path).create_array("out.npy", (512, 512), "float64", "j1")
    assert list(tmp_path.iterdir()) == []

"""The embedded store's in-place outputs: a view of an uncommitted output's region that a
matmul tile computes straight into, leaving exactly what ``write_region`` would.

The store tests run against a temporary directory; the tile tests run one matmul both
ways (in place, and through ``write_region`` on the same store with the capability left
out of its ports) and compare outputs and checksums bit for bit.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_job
from tilefan.adapters.embedded.localfs import LocalBlobStore, local_ports
from tilefan.adapters.memory.job_store import MemoryJobStore
from tilefan.domain.tiling import Region
from tilefan.errors import StoreError
from tilefan.pipeline.ports import Ports


def test_values_written_into_regions_are_what_commit_publishes(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    expected = np.random.default_rng(1).standard_normal((7, 5))
    store.create_array("out.npy", (7, 5), "float64", "j1")
    for region in (((0, 4), (0, 3)), ((0, 4), (3, 9)), ((4, 12), (0, 5))):  # the last two run past the edge
        view = store.output_region("out.npy", "j1", region)
        (r0, r1), (c0, c1) = region
        view[...] = expected[r0:r1, c0:c1]
        del view
    assert np.array_equal(np.load(store.commit_array("out.npy", "j1")), expected)


def test_a_view_of_an_output_never_created_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="never created"):
        LocalBlobStore(tmp_path).output_region("out.npy", "j1", ((0, 1), (0, 1)))


def _matmul_job(ports: Ports, tmp_path: Path, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    files = LocalBlobStore(tmp_path)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    out = str(tmp_path / "C.npy")
    final = run_job(ports, {"kind": "matmul", "a": {"file": str(tmp_path / "A.npy")},
                            "b": {"file": str(tmp_path / "B.npy")}, "out": out, "tile": 32})
    assert final.result is not None
    return files.read_array(out), final.result["checksums"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_matmul_computed_in_place_equals_one_written_by_regions(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((90, 70)).astype(dtype), rng.standard_normal((70, 50)).astype(dtype)
    (tmp_path / "direct").mkdir()
    (tmp_path / "plain").mkdir()
    direct_store, views = LocalBlobStore(tmp_path / "direct"), []
    real_view = direct_store.output_region

    def output_region(key: str, job_id: str, region: Region) -> np.ndarray:
        views.append(region)
        return real_view(key, job_id, region)

    direct_store.output_region = output_region  # type: ignore[method-assign]
    direct_ports = local_ports(direct_store, MemoryJobStore())
    plain_ports = Ports(LocalBlobStore(tmp_path / "plain"), MemoryJobStore())  # the capability left out
    assert direct_ports.in_place is direct_store and plain_ports.in_place is None
    direct, sums_direct = _matmul_job(direct_ports, tmp_path / "direct", a, b)
    plain, sums_plain = _matmul_job(plain_ports, tmp_path / "plain", a, b)
    assert len(views) == 6  # every tile (3 × 2 of 32) computed in place
    assert np.array_equal(direct, plain)
    assert sums_direct == sums_plain
    np.testing.assert_allclose(direct, a @ b, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-4)


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="the platform has no posix_fallocate")
def test_a_new_output_has_its_blocks_reserved(tmp_path: Path) -> None:
    # A hole would make each tile's first stores into the mapped output allocate blocks
    # (and on ext4 make replacing an older output flush the new one).
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

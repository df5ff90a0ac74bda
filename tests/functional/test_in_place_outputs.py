"""The embedded store's in-place outputs: a view of an uncommitted output's region that a
matmul tile computes straight into, leaving exactly what ``write_region`` would.

The store tests run against a temporary directory; the tile tests run one matmul both
ways (in place, and through ``write_region`` on the same store seen without the
capability) and compare outputs and checksums bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_job
from tilefan.adapters.embedded.localfs import LocalBlobStore
from tilefan.adapters.memory.job_store import MemoryJobStore
from tilefan.errors import StoreError
from tilefan.pipeline.ports import InPlaceOutputs, Ports


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


class _Plain:
    """The same store, without the in-place capability: tiles take ``write_region``."""

    def __init__(self, inner: LocalBlobStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        if name == "output_region":
            raise AttributeError(name)
        return getattr(self._inner, name)


def _matmul_job(blobs: object, tmp_path: Path, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    files = LocalBlobStore(tmp_path)
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    ports = Ports(blobs=blobs, jobs=MemoryJobStore())  # type: ignore[arg-type]
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
    direct_store = LocalBlobStore(tmp_path / "direct")
    plain_store = _Plain(LocalBlobStore(tmp_path / "plain"))
    assert isinstance(direct_store, InPlaceOutputs)
    assert not isinstance(plain_store, InPlaceOutputs)
    direct, sums_direct = _matmul_job(direct_store, tmp_path / "direct", a, b)
    plain, sums_plain = _matmul_job(plain_store, tmp_path / "plain", a, b)
    assert np.array_equal(direct, plain)
    assert sums_direct == sums_plain
    np.testing.assert_allclose(direct, a @ b, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-4)

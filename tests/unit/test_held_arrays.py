"""Inputs held in memory: tiles read views of the caller's array, never a copy of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tilefan.adapters.embedded.held_arrays import HeldBlobStore


def test_held_rows_are_read_only_views_of_the_callers_array_and_files_still_read(tmp_path: Path) -> None:
    array = np.arange(20.0).reshape(4, 5)
    on_disk = np.ones((2, 2))
    np.save(tmp_path / "f.npy", on_disk)
    store = HeldBlobStore(tmp_path / "blobs", {"/held/a.npy": array})
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

"""Input files stay mapped between a process's tiles, for as long as they are the same file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from tilefan.adapters.embedded.localfs import LocalBlobStore
from tilefan.adapters.embedded.mapped_inputs import MAPPED, MappedInputs
from tilefan.errors import BlobNotFoundError


def test_a_file_read_again_is_the_same_mapping_until_it_changes(tmp_path: Path) -> None:
    maps, path = MappedInputs(), tmp_path / "a.npy"
    np.save(path, np.arange(6.0))
    first = maps.get(path, "test")
    assert maps.get(path, "test") is first and len(maps) == 1
    np.save(path, np.arange(6.0) + 10)  # rewritten in place: the same inode; its pages are the new ones
    np.testing.assert_array_equal(maps.get(path, "test"), np.arange(6.0) + 10)
    np.save(path, np.arange(6.0).reshape(2, 3))  # the same size, at once: the header tells them apart
    assert maps.get(path, "test").shape == (2, 3)
    np.save(tmp_path / "b.npy", np.ones(3))
    os.replace(tmp_path / "b.npy", path)  # replaced: another inode
    np.testing.assert_array_equal(maps.get(path, "test"), np.ones(3))
    path.unlink()
    with pytest.raises(FileNotFoundError):
        maps.get(path, "test")


def test_only_the_last_few_files_are_kept(tmp_path: Path) -> None:
    maps = MappedInputs(kept=2)
    paths = [tmp_path / f"{i}.npy" for i in range(3)]
    for i, path in enumerate(paths):
        np.save(path, np.full(4, float(i)))
    arrays = [maps.get(path, "test") for path in paths]
    assert len(maps) == 2
    assert maps.get(paths[2], "test") is arrays[2] and maps.get(paths[1], "test") is arrays[1]
    assert maps.get(paths[0], "test") is not arrays[0]  # the least recently used was dropped


def test_mappings_left_unused_are_dropped(tmp_path: Path) -> None:
    maps, path = MappedInputs(idle_s=0.05), tmp_path / "a.npy"
    np.save(path, np.arange(3.0))
    maps.get(path, "test")
    assert len(maps) == 1  # kept, until it has gone unused for idle_s
    deadline = time.monotonic() + 5
    while len(maps) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(maps) == 0
    maps.get(path, "test")  # and a new mapping starts the janitor again
    while len(maps) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(maps) == 0


def test_a_forked_child_starts_with_no_mappings(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    np.save(path, np.arange(3.0))
    store = LocalBlobStore(tmp_path)
    store.read_rows(str(path), (0, 3))
    assert len(MAPPED) >= 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports what it inherited, then leaves at once
        os.write(write, str(len(MAPPED)).encode())
        os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 16) == b"0"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
        MAPPED.clear()


def test_the_store_reads_a_rewritten_input_anew_and_names_a_missing_one(tmp_path: Path) -> None:
    store, path = LocalBlobStore(tmp_path), tmp_path / "m.npy"
    np.save(path, np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(store.read_rows(str(path), (1, 2), (0, 2)), [[4.0, 5.0]])
    np.save(path, -np.arange(12.0).reshape(4, 3))  # the same bytes' length, another shape
    np.testing.assert_array_equal(store.read_rows(str(path), (1, 2)), [[-3.0, -4.0, -5.0]])
    np.save(tmp_path / "n.npy", np.ones((2, 5)))
    os.replace(tmp_path / "n.npy", path)  # another file, another length
    np.testing.assert_array_equal(store.read_rows(str(path), (1, 2)), [[1.0] * 5])
    path.unlink()
    with pytest.raises(BlobNotFoundError, match=r"m\.npy"):
        store.read_rows(str(path), (0, 1))
    MAPPED.clear()

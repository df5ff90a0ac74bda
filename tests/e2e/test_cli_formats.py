"""``tilefan run`` on Zarr and HDF5 matrices, as a subprocess: real files in, Zarr out.

The inputs are written by zarr and h5py themselves (a chunked HDF5 dataset in a group,
Zarr v2 with zarr's default compressor, Zarr v3), and the output is read back with zarr.
Bad inputs exit 2 with one line naming the flag and leave nothing behind.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from tests.e2e.test_cli import Workspace

RNG = np.random.default_rng(7)
A = RNG.standard_normal((130, 90))
B = RNG.standard_normal((90, 70)).astype(np.float32)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "work"
    root.mkdir()
    with h5py.File(root / "inputs.h5", "w") as f:
        f.create_dataset("matrices/A", data=A, chunks=(32, 90))
        f["cube"] = np.zeros((3, 4, 5))
        f["labels"] = np.array([[b"x", b"y"], [b"z", b"w"]])
    v2 = zarr.create_array(store=str(root / "B2.zarr"), shape=B.shape, chunks=(30, 32), dtype=B.dtype, zarr_format=2)
    v2[:] = B
    v3 = zarr.create_array(store=str(root / "B3.zarr"), shape=B.shape, chunks=(64, 64), dtype=B.dtype)
    v3[:] = B
    zarr.create_array(store=str(root / "strings.zarr"), shape=(90, 4), chunks=(45, 4), dtype=str, zarr_format=2)
    zarr.open_group(str(root / "g.zarr"), mode="w").create_array("B", shape=B.shape, chunks=(45, 35), dtype=B.dtype)
    return Workspace(root=root, home=tmp_path / "work" / "home")


@pytest.mark.parametrize("b", ["B2.zarr", "B3.zarr"])
def test_matmul_from_hdf5_and_zarr_to_a_zarr_output_equals_numpy(ws: Workspace, b: str) -> None:
    r = ws.run("matmul", "--a", "inputs.h5:/matrices/A", "--b", b, "--out", "C.zarr", "--tile", "64", "--verify")
    assert r.rc == 0, r.stderr
    assert "C.zarr" in r.stdout and "verified: Freivalds" in r.stdout
    c = zarr.open_array(store=str(ws.root / "C.zarr"), mode="r")
    # The output's chunks are the tiles: 3 x 2 tiles of 64 x 64 for a 130 x 70 result.
    assert c.shape == (130, 70) and c.chunks == (64, 64) and c.dtype == np.float64
    assert sorted(p.name for p in (ws.root / "C.zarr" / "c").iterdir()) == ["0", "1", "2"]
    np.testing.assert_allclose(c[:], A @ B.astype(np.float64), rtol=1e-12, atol=1e-12)
    # Nothing else is left next to it: no hidden partial directory, no claim.
    assert {p for p in ws.inputs() if p.startswith(".")} == set()


def test_an_atoms_field_can_be_written_as_zarr(ws: Workspace) -> None:
    r = ws.run("atoms", "--grid", "12x10x8", "--atoms", "20", "--seed", "2", "--softening", "0.1",
               "--tile", "4", "--field-out", "phi.zarr", "--verify")
    assert r.rc == 0, r.stderr
    phi = zarr.open_array(store=str(ws.root / "phi.zarr"), mode="r")
    assert phi.shape == (12, 10, 8) and phi.chunks == (4, 4, 4)
    # The same job with a .npy field gives the same values.
    r2 = ws.run("atoms", "--grid", "12x10x8", "--atoms", "20", "--seed", "2", "--softening", "0.1",
                "--field-out", "phi.npy")
    assert r2.rc == 0, r2.stderr
    np.testing.assert_array_equal(phi[:], np.load(ws.root / "phi.npy"))


@pytest.mark.parametrize("args, flag, words", [
    (["--a", "inputs.h5:cube", "--b", "B2.zarr"], "--a", "must hold a 2-D array"),
    (["--a", "inputs.h5:labels", "--b", "B2.zarr"], "--a", "unsupported dtype"),
    (["--a", "inputs.h5", "--b", "B2.zarr"], "--a", "name the dataset as FILE.h5:DATASET"),
    (["--a", "inputs.h5:/matrices/missing", "--b", "B2.zarr"], "--a", "has no dataset"),
    (["--a", "inputs.h5:/matrices", "--b", "B2.zarr"], "--a", "is a group, not a dataset"),
    (["--a", "inputs.h5:/matrices/A", "--b", "strings.zarr"], "--b", "unsupported dtype"),
    (["--a", "inputs.h5:/matrices/A", "--b", "nothing.zarr"], "--b", "no such file"),
    (["--a", "inputs.h5:/matrices/A", "--b", "B2.zarr", "--out", "C.h5"], "--out", "HDF5 is read, not written"),
    # Writing over the Zarr group an input is read from would replace the group.
    (["--a", "inputs.h5:/matrices/A", "--b", "g.zarr:B", "--out", "g.zarr"], "--out", "is the job's input (--b)"),
])
def test_bad_chunked_inputs_exit_2_naming_the_flag_and_write_nothing(
    ws: Workspace, args: list[str], flag: str, words: str
) -> None:
    before = ws.inputs()
    out = [] if "--out" in args else ["--out", "C.zarr"]
    r = ws.run("matmul", *args, *out)
    assert r.rc == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {flag}: ") and words in lines[0], lines
    assert ws.inputs() == before

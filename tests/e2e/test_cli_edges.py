"""The command line's edges: outputs it cannot write, geometry that underflows, and integer
inputs, each refused before any compute with exit 2 and one clear line (no warnings, no
internal names, no temporary paths), as every other invalid input is."""

from __future__ import annotations

import numpy as np
import pytest

from tests.e2e.test_cli import Workspace, ws

__all__ = ["ws"]  # the workspace fixture, shared with test_cli

ADD = ("add", "--shape-a", "6x4", "--shape-b", "6x4", "--seed", "1")
ATOMS = ("atoms", "--grid", "4", "--atoms", "3")


def _refused(ws: Workspace, *args: str, flag: str, says: str, env: dict[str, str] | None = None) -> str:
    before = ws.tree()
    r = ws.run(*args, env=env)
    assert r.rc == 2, (r.rc, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # the message alone: no warning before it, nothing after
    assert lines[0].startswith(f"error: {flag}: "), lines[0]
    assert says in lines[0], lines[0]
    assert r.stdout == ""
    assert ws.tree() == before, "refused before any compute: no job store, no output, no partial file"
    return lines[0]


@pytest.mark.parametrize("args, flag", [((*ADD, "--out", "outdir"), "--out"),
                                        ((*ATOMS, "--field-out", "outdir"), "--field-out")])
def test_an_output_naming_a_folder_is_refused_before_compute(ws: Workspace, args: tuple[str, ...], flag: str) -> None:
    (ws.root / "outdir").mkdir()
    line = _refused(ws, *args, flag=flag, says="is a folder")
    for internal in (".partial", "IsADirectoryError", "Errno"):
        assert internal not in line


def test_an_output_under_a_file_is_refused_before_compute(ws: Workspace) -> None:
    line = _refused(ws, *ADD, "--out", "A34.npy/C.npy", flag="--out", says="is a file, not a folder")
    assert ".partial" not in line and "Errno" not in line


def test_an_output_in_a_new_folder_is_still_written(ws: Workspace) -> None:
    r = ws.run(*ADD, "--out", "new/deeper/S.npy")
    assert r.rc == 0, r.stderr
    assert np.load(ws.root / "new/deeper/S.npy").shape == (6, 4)


@pytest.mark.parametrize("args, flag, precision", [
    (("--spacing", "1e-320"), "--spacing", "float64"),  # a subnormal spacing
    (("--spacing", "1e-200"), "--spacing", "float64"),  # normal, but its square is 0
    (("--spacing", "1e-20", "--precision", "float32"), "--spacing", "float32"),
    (("--softening", "1e-300"), "--softening", "float64"),
])
def test_underflowing_geometry_is_refused_with_the_message_first(
    ws: Workspace, args: tuple[str, ...], flag: str, precision: str,
) -> None:
    # The NumPy kernel is the one that used to print RuntimeWarnings ahead of the error.
    line = _refused(ws, *ATOMS, *args, flag=flag, says=f"underflows {precision} when squared",
                    env={"TILEFAN_KERNEL": "numpy"})
    assert "Warning" not in line


def test_an_atom_whose_distance_to_a_grid_point_underflows_is_refused(ws: Workspace) -> None:
    np.save(ws.root / "near.npy", np.array([[1e-200, 0.0, 0.0, 1.0], [2.5, 2.5, 2.5, -1.0]]))
    _refused(ws, "atoms", "--grid", "4", "--atoms-file", "near.npy", flag="--atoms-file",
             says="atom 0 at (1e-200, 0, 0) is too close for float64", env={"TILEFAN_KERNEL": "numpy"})


def test_integer_atoms_and_integer_matrices_meet_the_same_rule_and_words(ws: Workspace) -> None:
    # Off the grid points, so nothing but the dtype can refuse the table.
    np.save(ws.root / "atoms_int.npy", np.array([[1, 1, 7, 1], [2, 9, 2, -1]], dtype=np.int64))
    atoms = _refused(ws, "atoms", "--grid", "4", "--atoms-file", "atoms_int.npy", flag="--atoms-file",
                     says="atoms_int.npy has unsupported dtype int64; use float32 or float64")
    matrix = _refused(ws, "add", "--a", "int.npy", "--b", "A34.npy", "--out", "C.npy", flag="--a",
                      says="int.npy has unsupported dtype int64; use float32 or float64")
    assert atoms.split(" has ", 1)[1] == matrix.split(" has ", 1)[1]

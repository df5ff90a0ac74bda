"""The real ``tilefan`` command, run as a subprocess against a temp ``TILEFAN_HOME``.

Success paths for the three job kinds must exit 0 and give NumPy's (or a brute force's)
answer; ``--json`` prints exactly one JSON document; ``--dry-run`` writes nothing. Every
kind of invalid input must exit 2 with exactly one line on stderr naming the
flag the user typed, never a traceback, and must leave no output file behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import argmin_index, atoms_csv, brute_force_phi, random_pair
from tilefan.domain.atoms import atoms_rtol
from tilefan.domain.randgen import random_atoms
from tilefan.domain.spec.parse import RandomAtoms

CLI = [sys.executable, "-m", "tilefan.entrypoints.cli.main"]


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


@dataclass
class Workspace:
    """A temp dir holding the inputs; the command runs in it with its own TILEFAN_HOME."""

    root: Path
    home: Path

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TILEFAN_")}
        full_env.update({"TILEFAN_HOME": str(self.home), "TILEFAN_WORKERS": "2"})
        full_env.update(env or {})
        proc = subprocess.run(
            [*CLI, "run", *args], cwd=self.root, env=full_env, capture_output=True, text=True, timeout=60,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stdout, proc.stdout
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def tree(self) -> set[str]:
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*")}

    def inputs(self) -> set[str]:
        """Everything outside the job store's home."""
        return {p for p in self.tree() if not (p == "home" or p.startswith("home/"))}


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "work"
    root.mkdir()
    rng = np.random.default_rng(0)
    arrays = {
        "A34.npy": rng.standard_normal((3, 4)),
        "B45.npy": rng.standard_normal((4, 5)),
        "B56.npy": rng.standard_normal((5, 6)),
        "vec.npy": rng.standard_normal(7),
        "cube.npy": rng.standard_normal((2, 2, 2)),
        "int.npy": np.arange(12, dtype=np.int64).reshape(3, 4),
        "complex.npy": np.ones((3, 4), dtype=np.complex128),
        "big.npy": np.ones((11, 10)),
        "atoms_nan.npy": np.array([[0.5, 0.5, 0.5, 1.0], [1.5, np.nan, 0.5, 1.0]]),
    }
    for name, array in arrays.items():
        np.save(root / name, array)
    (root / "garbage.npy").write_text("this is not an array\n")
    (root / "bad.csv").write_text("x,y,z,energy\n0.5,0.5,0.5,1\n1.5,2.5\n")
    (root / "notanumber.csv").write_text("0.5,0.5,0.5,1\n0.5,zero,0.5,1\n")
    (root / "atoms_inf.csv").write_text("0.5,0.5,0.5,1\n0.5,inf,0.5,1\n")
    (root / "on_grid.csv").write_text(atoms_csv(np.array([[0.5, 0.5, 0.5, 1.0], [1.0, 2.0, 3.0, -1.0]])))
    (root / "atoms.txt").write_text("0.5,0.5,0.5,1\n")
    return Workspace(root=root, home=tmp_path / "work" / "home")


# --------------------------------------------------------------------------- success


def test_matmul_from_files_json_prints_one_document_with_numpys_answer(ws: Workspace) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((40, 30)), rng.standard_normal((30, 25))
    np.save(ws.root / "A.npy", a)
    np.save(ws.root / "B.npy", b)
    r = ws.run("matmul", "--a", "A.npy", "--b", "B.npy", "--out", "C.npy", "--tile", "16", "--json")
    assert r.rc == 0, r.stderr
    assert r.stderr == ""
    assert len(r.stdout.strip().splitlines()) == 1
    doc = json.loads(r.stdout)
    assert doc["status"] == "SUCCEEDED"
    assert doc["kind"] == "matmul"
    assert doc["progress"]["tiles_done"] == doc["progress"]["tiles_total"] == 6
    assert doc["progress"]["percent"] == 100.0
    assert doc["result"]["output"] == str((ws.root / "C.npy").resolve())
    assert doc["result"]["shape"] == [40, 25]
    c = np.load(ws.root / "C.npy")
    np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12)
    assert doc["result"]["checksums"]["sum"] == pytest.approx(float(c.sum()), rel=1e-12, abs=1e-12)


def test_matmul_from_random_inputs_prints_a_verified_summary(ws: Workspace) -> None:
    r = ws.run("matmul", "--shape-a", "40x30", "--shape-b", "30x35", "--seed", "7", "--dtype", "float32",
               "--tile", "16", "--verify", "--out", "C.npy")
    assert r.rc == 0, r.stderr
    assert "SUCCEEDED" in r.stdout
    assert "C: 40x35 float32" in r.stdout
    assert "checksums:" in r.stdout
    assert "verified: Freivalds" in r.stdout
    a, b = random_pair(7, "float32", (40, 30), (30, 35))
    np.testing.assert_allclose(np.load(ws.root / "C.npy"), a @ b, rtol=1e-5, atol=1e-5)


def test_add_from_files_gives_numpys_answer_exactly(ws: Workspace) -> None:
    rng = np.random.default_rng(2)
    a = rng.standard_normal((33, 21)).astype(np.float32)
    b = rng.standard_normal((33, 21)).astype(np.float32)
    np.save(ws.root / "A.npy", a)
    np.save(ws.root / "B.npy", b)
    r = ws.run("add", "--a", "A.npy", "--b", "B.npy", "--out", "S.npy", "--tile", "8", "--json", "--verify")
    assert r.rc == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["result"]["verification"] == {"method": "exact", "passed": True, "mismatches": 0}
    np.testing.assert_array_equal(np.load(ws.root / "S.npy"), a + b)


def test_add_summary_without_json(ws: Workspace) -> None:
    r = ws.run("add", "--shape-a", "20x30", "--shape-b", "20x30", "--out", "S.npy")
    assert r.rc == 0, r.stderr
    assert r.stdout.startswith("job ") and "add: SUCCEEDED" in r.stdout
    assert "C: 20x30 float64" in r.stdout
    a, b = random_pair(0, "float64", (20, 30), (20, 30))
    np.testing.assert_array_equal(np.load(ws.root / "S.npy"), a + b)


def test_atoms_random_grid_16_with_1000_atoms(ws: Workspace) -> None:
    r = ws.run("atoms", "--grid", "16", "--atoms", "1000", "--seed", "3", "--tile", "8", "--json", "--verify")
    assert r.rc == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "SUCCEEDED"
    assert doc["progress"]["units_total"] == 16**3
    assert doc["progress"]["tiles_total"] == 8
    grid = (16, 16, 16)
    table = random_atoms(RandomAtoms(count=1000, seed=3), grid, (0.0, 0.0, 0.0), 1.0)
    ref, scale = brute_force_phi(table, grid)
    flat = int(np.argmin(ref))
    result = doc["result"]
    assert result["min_index"] == argmin_index(ref)
    assert result["min_point"] == [float(v) for v in result["min_index"]]
    assert abs(result["min_value"] - float(ref.min())) <= atoms_rtol("float64", 1000) * scale.reshape(-1)[flat]
    assert result["verification"]["passed"] is True


def test_atoms_summary_names_the_minimum(ws: Workspace) -> None:
    r = ws.run("atoms", "--grid", "6x5x4", "--atoms", "20", "--seed", "1")
    assert r.rc == 0, r.stderr
    assert "atoms: SUCCEEDED" in r.stdout
    assert "minimum φ =" in r.stdout and "at index (" in r.stdout


def test_field_out_writes_the_field(ws: Workspace) -> None:
    rng = np.random.default_rng(5)
    grid, origin, spacing = (5, 4, 3), (-1.0, 0.0, 1.0), 0.5
    table = np.column_stack([rng.random((30, 3)) * 3 - 1, rng.random(30) * 2 - 1])
    (ws.root / "atoms.csv").write_text(atoms_csv(table))
    r = ws.run("atoms", "--grid", "5x4x3", "--atoms-file", "atoms.csv", "--origin=-1,0,1", "--spacing", "0.5",
               "--tile", "2", "--field-out", "phi.npy", "--json")
    assert r.rc == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["result"]["field"] == str((ws.root / "phi.npy").resolve())
    field = np.load(ws.root / "phi.npy")
    assert field.shape == grid and field.dtype == np.float64
    ref, scale = brute_force_phi(table, grid, origin, spacing)
    assert np.all(np.abs(field - ref) <= atoms_rtol("float64", 30) * scale)
    assert doc["result"]["min_index"] == argmin_index(field)


def test_field_out_in_float32_with_softening_and_an_atom_on_a_grid_point(ws: Workspace) -> None:
    r = ws.run("atoms", "--grid", "4", "--atoms-file", "on_grid.csv", "--softening", "0.5",
               "--precision", "float32", "--field-out", "phi.npy")
    assert r.rc == 0, r.stderr
    field = np.load(ws.root / "phi.npy")
    assert field.dtype == np.float32 and np.isfinite(field).all()
    table = np.array([[0.5, 0.5, 0.5, 1.0], [1.0, 2.0, 3.0, -1.0]])
    ref, scale = brute_force_phi(table, (4, 4, 4), softening=0.5)
    assert np.all(np.abs(field - ref) <= atoms_rtol("float32", 2) * scale)


def test_negative_origin_is_accepted_as_the_usage_writes_it(ws: Workspace) -> None:
    # The usage reads "--origin X,Y,Z"; a negative X must not be mistaken for a flag.
    r = ws.run("atoms", "--grid", "4", "--atoms", "5", "--origin", "-1.5,0,2", "--json")
    assert r.rc == 0, r.stderr
    assert json.loads(r.stdout)["spec"]["origin"] == [-1.5, 0.0, 2.0]


@pytest.mark.parametrize(
    "args, tiles",
    [
        (["matmul", "--shape-a", "300x200", "--shape-b", "200x100", "--tile", "64", "--out", "C.npy"], 10),
        (["atoms", "--grid", "8x8x4", "--atoms", "10", "--tile", "4", "--field-out", "phi.npy"], 4),
    ],
)
def test_dry_run_prints_the_plan_and_writes_nothing(ws: Workspace, args: list[str], tiles: int) -> None:
    before = ws.tree()
    r = ws.run(*args, "--dry-run", "--json")
    assert r.rc == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["totals"]["tiles"] == len(plan["tiles"]) == tiles
    assert all(t["route"] in ("lambda", "spot") for t in plan["tiles"])
    assert ws.tree() == before


# --------------------------------------------------------------------------- invalid input


@dataclass(frozen=True)
class Bad:
    args: tuple[str, ...]
    flag: str
    env: tuple[tuple[str, str], ...] = ()
    says: str = ""


SMALL_LIMITS = (("TILEFAN_MAX_MATRIX_ELEMENTS", "100"), ("TILEFAN_MAX_GRID_POINTS", "1000"),
                ("TILEFAN_MAX_ATOMS", "10"))
OK_ATOMS = ("atoms", "--grid", "4", "--atoms", "5")
OK_MATMUL = ("matmul", "--shape-a", "3x4", "--shape-b", "4x5", "--out", "C.npy")

BAD_INPUTS = {
    # mismatched shapes: the error names the flag that gave the second shape
    "matmul-shapes-random": Bad(("matmul", "--shape-a", "3x4", "--shape-b", "5x6", "--out", "C.npy"), "--shape-b"),
    "matmul-shapes-files": Bad(("matmul", "--a", "A34.npy", "--b", "B56.npy", "--out", "C.npy"), "--b"),
    "add-shapes-random": Bad(("add", "--shape-a", "3x4", "--shape-b", "4x3", "--out", "C.npy"), "--shape-b"),
    "add-shapes-files": Bad(("add", "--a", "A34.npy", "--b", "B45.npy", "--out", "C.npy"), "--b"),
    # arrays that are not 2-D
    "a-is-1d": Bad(("matmul", "--a", "vec.npy", "--b", "B45.npy", "--out", "C.npy"), "--a", says="2-D"),
    "b-is-3d": Bad(("add", "--a", "A34.npy", "--b", "cube.npy", "--out", "C.npy"), "--b", says="2-D"),
    "shape-a-is-3d": Bad(("matmul", "--shape-a", "3x4x5", "--shape-b", "4x5", "--out", "C.npy"), "--shape-a"),
    # unsupported dtypes
    "int-file": Bad(("add", "--a", "int.npy", "--b", "A34.npy", "--out", "C.npy"), "--a", says="int64"),
    "complex-file": Bad(("add", "--a", "A34.npy", "--b", "complex.npy", "--out", "C.npy"), "--b", says="complex"),
    "dtype-int64": Bad((*OK_MATMUL, "--dtype", "int64"), "--dtype"),
    "dtype-float16": Bad((*OK_MATMUL, "--dtype", "float16"), "--dtype"),
    "precision-float16": Bad((*OK_ATOMS, "--precision", "float16"), "--precision"),
    # NaN / inf in atoms files (checked at the door)
    "atoms-nan-npy": Bad(("atoms", "--grid", "4", "--atoms-file", "atoms_nan.npy"), "--atoms-file", says="NaN"),
    "atoms-inf-csv": Bad(("atoms", "--grid", "4", "--atoms-file", "atoms_inf.csv"), "--atoms-file", says="inf"),
    # zero or negative sizes and counts
    "shape-zero": Bad(("matmul", "--shape-a", "0x4", "--shape-b", "4x5", "--out", "C.npy"), "--shape-a"),
    "shape-negative": Bad(("add", "--shape-a", "3x4", "--shape-b", "3x-4", "--out", "C.npy"), "--shape-b"),
    "grid-zero": Bad(("atoms", "--grid", "0", "--atoms", "5"), "--grid"),
    "grid-negative": Bad(("atoms", "--grid", "-4", "--atoms", "5"), "--grid"),
    "grid-zero-axis": Bad(("atoms", "--grid", "4x0x4", "--atoms", "5"), "--grid"),
    "grid-two-axes": Bad(("atoms", "--grid", "4x4", "--atoms", "5"), "--grid"),
    "atoms-zero": Bad(("atoms", "--grid", "4", "--atoms", "0"), "--atoms"),
    "atoms-negative": Bad(("atoms", "--grid", "4", "--atoms", "-3"), "--atoms"),
    "tile-zero": Bad((*OK_MATMUL, "--tile", "0"), "--tile"),
    "tile-negative": Bad((*OK_ATOMS, "--tile", "-2"), "--tile"),
    "tile-text": Bad((*OK_MATMUL, "--tile", "abc"), "--tile"),
    "spacing-zero": Bad((*OK_ATOMS, "--spacing", "0"), "--spacing"),
    "softening-negative": Bad((*OK_ATOMS, "--softening", "-1"), "--softening"),
    "softening-nan": Bad((*OK_ATOMS, "--softening", "nan"), "--softening"),
    "origin-two-numbers": Bad((*OK_ATOMS, "--origin", "1,2"), "--origin"),
    "origin-text": Bad((*OK_ATOMS, "--origin", "a,b,c"), "--origin"),
    "workers-zero": Bad((*OK_MATMUL, "--workers", "0"), "--workers"),
    "seed-negative": Bad((*OK_MATMUL, "--seed", "-1"), "--seed"),
    "atoms-seed-text": Bad((*OK_ATOMS, "--seed", "abc"), "--seed"),
    # over the configured limits
    "matrix-over-limit": Bad(("matmul", "--shape-a", "20x20", "--shape-b", "20x2", "--out", "C.npy"), "--shape-a",
                             SMALL_LIMITS, says="limit"),
    "file-over-limit": Bad(("add", "--a", "big.npy", "--b", "big.npy", "--out", "C.npy"), "--a", SMALL_LIMITS,
                           says="limit"),
    "grid-over-limit": Bad(("atoms", "--grid", "11", "--atoms", "5"), "--grid", SMALL_LIMITS, says="limit"),
    "atoms-over-limit": Bad(("atoms", "--grid", "4", "--atoms", "11"), "--atoms", SMALL_LIMITS),
    "limit-not-a-number": Bad(OK_MATMUL, "TILEFAN_MAX_MATRIX_ELEMENTS", (("TILEFAN_MAX_MATRIX_ELEMENTS", "lots"),)),
    "kernel-unknown": Bad(OK_ATOMS, "TILEFAN_KERNEL", (("TILEFAN_KERNEL", "gpu"),)),
    # malformed or missing files
    "csv-short-row": Bad(("atoms", "--grid", "4", "--atoms-file", "bad.csv"), "--atoms-file", says="line 3"),
    "csv-not-a-number": Bad(("atoms", "--grid", "4", "--atoms-file", "notanumber.csv"), "--atoms-file",
                            says="line 2"),
    "atoms-file-extension": Bad(("atoms", "--grid", "4", "--atoms-file", "atoms.txt"), "--atoms-file"),
    "atoms-file-missing": Bad(("atoms", "--grid", "4", "--atoms-file", "missing.csv"), "--atoms-file",
                              says="missing.csv"),
    "a-missing": Bad(("matmul", "--a", "missing.npy", "--b", "B45.npy", "--out", "C.npy"), "--a", says="missing.npy"),
    "a-not-npy": Bad(("add", "--a", "garbage.npy", "--b", "A34.npy", "--out", "C.npy"), "--a"),
    "a-is-a-directory": Bad(("add", "--a", ".", "--b", "A34.npy", "--out", "C.npy"), "--a"),
    # atom on a grid point with zero softening
    "atom-on-grid-point": Bad(("atoms", "--grid", "4", "--atoms-file", "on_grid.csv"), "--atoms-file",
                              says="atom 1 at (1, 2, 3) sits exactly on grid point (1, 2, 3)"),
    # flags used wrongly
    "file-and-shape": Bad(("matmul", "--a", "A34.npy", "--shape-a", "3x4", "--b", "B45.npy"), "--a"),
    "b-missing": Bad(("add", "--a", "A34.npy", "--out", "C.npy"), "--b"),
    "count-and-file": Bad(("atoms", "--grid", "4", "--atoms", "3", "--atoms-file", "bad.csv"), "--atoms"),
    "unknown-flag": Bad((*OK_MATMUL, "--colour", "red"), "--colour"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_invalid_input_exits_2_with_one_line_naming_the_flag(ws: Workspace, case: Bad) -> None:
    before = ws.tree()
    r = ws.run(*case.args, env=dict(case.env))
    assert r.rc == 2, (r.rc, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith("error: ")
    assert case.flag in line, f"{case.flag!r} not named in {line!r}"
    assert case.says in line
    assert r.stdout == ""
    # Invalid input writes nothing at all: no output, no job store, no temp files.
    assert ws.tree() == before


def _no_output_left(ws: Workspace, before: set[str], out: str) -> None:
    assert not (ws.root / out).exists()
    assert ws.inputs() == before, "no output and no hidden partial file may be left"


@pytest.mark.parametrize(
    "kind, role, tile, bad",
    [
        ("matmul", "a", "64", np.nan),  # one tile: runs in this process
        ("matmul", "a", "8", np.nan),  # nine tiles: runs in the process pool
        ("add", "b", "64", np.inf),
        ("add", "b", "8", -np.inf),
    ],
)
def test_nan_or_inf_in_an_input_fails_in_a_tile_and_exits_2(
    ws: Workspace, kind: str, role: str, tile: str, bad: float
) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((24, 24)), rng.standard_normal((24, 24))
    (a if role == "a" else b)[17, 5] = bad
    np.save(ws.root / "A.npy", a)
    np.save(ws.root / "B.npy", b)
    before = ws.inputs()
    r = ws.run(kind, "--a", "A.npy", "--b", "B.npy", "--out", "C.npy", "--tile", tile)
    assert r.rc == 2, (r.rc, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"--{role}" in lines[0], lines[0]
    assert "row 17, column 5" in lines[0]
    _no_output_left(ws, before, "C.npy")


def test_nan_input_with_json_still_prints_the_failed_record(ws: Workspace) -> None:
    a = np.ones((4, 4))
    a[1, 1] = np.nan
    np.save(ws.root / "A.npy", a)
    before = ws.inputs()
    r = ws.run("add", "--a", "A.npy", "--b", "A.npy", "--out", "C.npy", "--json")
    assert r.rc == 2, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "FAILED"
    assert doc["error"]["code"] == "invalid_input" and doc["error"]["field"] == "a"
    assert len(r.stderr.strip().splitlines()) == 1 and "--a" in r.stderr
    _no_output_left(ws, before, "C.npy")

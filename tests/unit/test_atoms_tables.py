"""Atoms tables at the door: CSV and ``.npy`` tables are parsed and checked with errors
that name the line or the atom, and an atom sitting exactly on a grid point (in the
working precision) is refused unless the potential is softened.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.unit.spec_fakes import ATOMS, atoms_loader, parse, with_
from tilefan.domain.atoms import parse_csv, validate_table
from tilefan.domain.spec.parse import AtomsSpec, parse_spec
from tilefan.errors import InvalidSpecError


@pytest.mark.parametrize(
    "text, line",
    [
        ("x,y,z,energy\n0,0,0.5,1\n1,2,3\n", 3),
        ("0.5,0.5,0.5,1\n1,2,3,4,5\n", 2),
        ("0.5,0.5,0.5,1\n0.5,0.5,0.5,1\n0.5,abc,0.5,1\n", 3),
        ("x,y,z,e\n", 1),  # a header with the wrong column names is a bad data line
        ("0.5,0.5,0.5,1\n\n0.5,0.5,,1\n", 3),
    ],
)
def test_csv_errors_name_the_line(text: str, line: int) -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_csv(text)
    assert info.value.field == "atoms.file"
    assert f"line {line}:" in info.value.message


@pytest.mark.parametrize("text", ["", "x,y,z,energy\n", "\n\n"])
def test_csv_without_atoms_is_refused(text: str) -> None:
    with pytest.raises(InvalidSpecError, match="no atoms"):
        parse_csv(text)


@pytest.mark.parametrize("cell", ["nan", "inf", "-inf"])
def test_csv_with_nan_or_inf_is_refused(cell: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_csv(f"0.5,0.5,0.5,1\n0.5,{cell},0.5,1\n")
    assert info.value.field == "atoms.file"
    assert "atom 1" in info.value.message


def test_csv_errors_reach_parse_spec_with_the_file_field() -> None:
    bad = {"/data/bad.csv": "x,y,z,energy\n0.5,0.5,0.5,1\n0.5,0.5\n"}
    with pytest.raises(InvalidSpecError) as info:
        parse_spec(with_(ATOMS, atoms={"file": "/data/bad.csv"}), load_atoms=lambda uri: parse_csv(bad[uri]))
    assert info.value.field == "atoms.file"
    assert "line 3" in info.value.message


@pytest.mark.parametrize(
    "table", [np.zeros((3, 3)), np.zeros((0, 4)), np.zeros(4), np.zeros((2, 4), dtype=complex)]
)
def test_atoms_tables_of_the_wrong_form(table: np.ndarray) -> None:
    with pytest.raises(InvalidSpecError) as info:
        validate_table(table)
    assert info.value.field == "atoms.file"


def test_atom_on_a_grid_point_without_softening_names_atom_and_point() -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse(with_(ATOMS, atoms={"file": "/data/on.npy"}))
    assert info.value.field == "atoms.file"
    assert "atom 1" in info.value.message
    assert "(1, 2, 3)" in info.value.message
    assert "softening" in info.value.message


def test_atom_on_a_grid_point_with_softening_is_accepted() -> None:
    spec = parse(with_(ATOMS, atoms={"file": "/data/on.npy"}, softening=0.1))
    assert isinstance(spec, AtomsSpec)
    assert spec.softening == 0.1


def test_atom_on_a_shifted_grid_is_found_through_origin_and_spacing() -> None:
    # Grid points at 10 + 0.5·i: the atom at (10.5, 11, 12) is point (1, 2, 4).
    load = atoms_loader({"/data/s.npy": np.array([[10.5, 11.0, 12.0, 1.0]])})
    with pytest.raises(InvalidSpecError) as info:
        parse_spec(with_(ATOMS, grid=8, origin="10,10,10", spacing=0.5, atoms={"file": "/data/s.npy"}),
                   load_atoms=load)
    assert "(1, 2, 4)" in info.value.message
    # Outside the grid it is harmless.
    assert parse_spec(with_(ATOMS, grid=8, origin="20,10,10", spacing=0.5, atoms={"file": "/data/s.npy"}),
                      load_atoms=load)


def test_float32_rounding_puts_an_atom_on_a_grid_point() -> None:
    # 3.0000001 is 3.0 once rounded to float32 (the kernel's working precision) but not in
    # float64, so only the float32 job would divide by zero.
    assert np.float32(3.0000001) == np.float32(3.0)
    assert 3.0000001 != 3.0
    with pytest.raises(InvalidSpecError) as info:
        parse(with_(ATOMS, precision="float32", atoms={"file": "/data/near.npy"}))
    assert info.value.field == "atoms.file"
    assert "atom 0" in info.value.message and "(3, 1, 2)" in info.value.message
    spec = parse(with_(ATOMS, precision="float64", atoms={"file": "/data/near.npy"}))
    assert isinstance(spec, AtomsSpec)


def _first_on_grid_one_by_one(table: np.ndarray, spec: Any) -> tuple[int, tuple[int, int, int]] | None:
    """The rule atom by atom, as the kernel sees each: the reference for the vectorised one."""
    pos, origin = table[:, :3], np.asarray(spec.origin)
    idx = np.rint((pos - origin) / spec.spacing)
    for a in range(len(table)):
        if not np.all((idx[a] >= 0) & (idx[a] < np.asarray(spec.grid))):
            continue
        diff = (origin + spec.spacing * idx[a]).astype(spec.precision) - pos[a].astype(spec.precision)
        with np.errstate(under="ignore"):
            if not np.any(diff) or float(np.sum(diff * diff)) == 0.0:
                return a, (int(idx[a][0]), int(idx[a][1]), int(idx[a][2]))
    return None


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_the_atom_on_a_grid_point_found_at_once_is_the_first_found_one_by_one(precision: str) -> None:
    from types import SimpleNamespace

    from tilefan.domain.atoms import find_atom_on_grid

    spec: Any = SimpleNamespace(grid=(9, 7, 5), origin=(0.5, -1.0, 0.25), spacing=0.75, softening=0.0,
                                precision=precision)
    found = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        n = 40
        # Off the grid, on it exactly, on it to within float32 or to within an underflowing
        # square, and outside the grid's box.
        idx = rng.integers(-1, 9, size=(n, 3))
        offsets = np.array([0.3, 0.0, 1e-9, 1e-170, -0.2])[rng.choice(5, size=n, p=[0.8, 0.05, 0.05, 0.05, 0.05])]
        pos = np.asarray(spec.origin) + spec.spacing * idx + offsets[:, None] * rng.choice([0.0, 1.0], size=(n, 3))
        table = np.column_stack([pos, rng.uniform(-1, 1, n)])
        hit = find_atom_on_grid(table, spec)
        assert hit == _first_on_grid_one_by_one(table, spec)
        found.append(hit is not None)
    assert any(found) and not all(found)  # the cases hold tables with an atom on the grid and without

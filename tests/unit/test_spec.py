"""Job spec validation at the door (``tilefan.domain.spec.parse.parse_spec``).

Valid specs of all three kinds parse into resolved, frozen specs that round-trip through
their stored form. Every kind of bad input raises ``InvalidSpecError`` whose ``field``
names what to fix, because the CLI and the REST API turn that field into the flag or JSON
key the user sees. File inputs go through fake inspectors here (no I/O in unit tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.unit.spec_fakes import (
    ADD,
    ATOMS,
    MATMUL,
    OFF_GRID,
    atoms_loader,
    field_of,
    inspect,
    parse,
    with_,
)
from tilefan.domain.spec.parse import (
    AtomsSpec,
    Kind,
    Limits,
    MatrixSpec,
    RandomAtoms,
    RandomMatrix,
    StoredAtoms,
    StoredMatrix,
    parse_spec,
    spec_from_stored,
    spec_to_dict,
)
from tilefan.errors import InvalidSpecError

# --------------------------------------------------------------------------- valid specs


def test_matmul_from_string_shapes_and_a_seed() -> None:
    spec = parse({"kind": "matmul", "a": {"shape": "3x4"}, "b": {"shape": "4X5"}, "seed": 7, "tile": 2})
    assert isinstance(spec, MatrixSpec)
    assert spec.kind is Kind.MATMUL
    assert spec.a == RandomMatrix(shape=(3, 4), dtype="float64", seed=7, stream=0)
    assert spec.b == RandomMatrix(shape=(4, 5), dtype="float64", seed=7, stream=1)
    assert spec.out_shape == (3, 5)
    assert spec.units_total == 15
    assert spec.tile == (2, 2)
    assert spec.verify is False
    assert spec.out is None


def test_matmul_from_files_takes_shape_and_dtype_from_the_header() -> None:
    spec = parse({"kind": "matmul", "a": {"file": "/data/a34.npy"}, "b": {"file": "/data/b45.npy"},
                  "out": "/data/c.npy", "verify": True, "tile": [2, 3]})
    assert isinstance(spec, MatrixSpec)
    assert spec.a == StoredMatrix(file="/data/a34.npy", shape=(3, 4), dtype="float64")
    assert spec.b == StoredMatrix(file="/data/b45.npy", shape=(4, 5), dtype="float32")
    assert spec.dtype == "float64"  # mixed inputs compute in the wider type
    assert spec.tile == (2, 3)
    assert spec.out == "/data/c.npy"
    assert spec.verify is True


def test_add_with_float32_and_a_default_tile() -> None:
    spec = parse({"kind": "add", "a": {"shape": [30, 40]}, "b": {"shape": "30x40"}, "dtype": "float32"})
    assert isinstance(spec, MatrixSpec)
    assert spec.kind is Kind.ADD
    assert spec.dtype == "float32"
    assert spec.out_shape == (30, 40)
    assert spec.tile[0] >= 1 and spec.tile[1] == 40


@pytest.mark.parametrize(
    "grid, expected", [(4, (4, 4, 4)), ([2, 3, 5], (2, 3, 5)), ("2x3x5", (2, 3, 5))]
)
def test_atoms_grid_as_int_list_or_string(grid: Any, expected: tuple[int, int, int]) -> None:
    spec = parse({"kind": "atoms", "grid": grid, "atoms": {"count": 10, "seed": 3}})
    assert isinstance(spec, AtomsSpec)
    assert spec.grid == expected
    assert spec.units_total == expected[0] * expected[1] * expected[2]
    assert spec.atoms == RandomAtoms(count=10, seed=3)
    assert spec.origin == (0.0, 0.0, 0.0) and spec.spacing == 1.0 and spec.softening == 0.0
    assert spec.precision == "float64"
    assert all(1 <= t <= g for t, g in zip(spec.tile, spec.grid, strict=True))


def test_atoms_with_origin_string_and_every_option() -> None:
    spec = parse({
        "kind": "atoms", "grid": "8x6x4", "origin": "1,2,3", "spacing": "0.5", "softening": 0.25,
        "precision": "float32", "atoms": 100, "field_out": "/data/phi.npy", "tile": 5, "verify": True,
    })
    assert isinstance(spec, AtomsSpec)
    assert spec.origin == (1.0, 2.0, 3.0)
    assert spec.spacing == 0.5
    assert spec.softening == 0.25
    assert spec.precision == "float32"
    assert spec.atoms == RandomAtoms(count=100, seed=0)
    assert spec.tile == (5, 5, 4)  # clipped to the grid
    assert spec.field_out == "/data/phi.npy"


def test_atoms_from_a_file_records_its_count() -> None:
    spec = parse({"kind": "atoms", "grid": 4, "atoms": {"file": "/data/atoms.npy"}})
    assert isinstance(spec, AtomsSpec)
    assert spec.atoms == StoredAtoms(file="/data/atoms.npy", count=2)


@pytest.mark.parametrize("make", [
    lambda: RandomAtoms(40, 2),
    lambda: RandomMatrix((3, 4), "float64", 7, 0),
    lambda: StoredMatrix("/data/a34.npy", (3, 4), "float64"),
    lambda: StoredAtoms("/data/atoms.npy", 2),
])
def test_resolved_inputs_are_named_field_by_field(make: Any) -> None:
    # count/seed and seed/stream share a type: a swapped positional pair would make another job.
    with pytest.raises(TypeError, match="positional"):
        make()


ROUND_TRIP = [
    {"kind": "matmul", "a": {"shape": "3x4"}, "b": {"shape": "4x5"}, "seed": 7, "tile": 2},
    {"kind": "matmul", "a": {"file": "/data/a34.npy"}, "b": {"file": "/data/b45.npy"}, "out": "/data/c.npy"},
    {"kind": "add", "a": {"shape": "100x100", "dtype": "float32"}, "b": {"file": "/data/big.npy"}, "verify": True},
    {"kind": "add", "a": {"file": "/data/a34.npy"}, "b": {"file": "/data/b34.npy"}, "tile": [1, 3]},
    {"kind": "atoms", "grid": "8x6x4", "origin": "1,2,3", "spacing": 0.5, "softening": 0.25,
     "precision": "float32", "atoms": {"count": 9, "seed": 4}, "field_out": "/data/phi.npy", "tile": 5},
    {"kind": "atoms", "grid": 4, "atoms": {"file": "/data/atoms.npy"}, "verify": True},
]


@pytest.mark.parametrize("raw", ROUND_TRIP)
def test_specs_round_trip_through_their_stored_form(raw: dict[str, Any]) -> None:
    spec = parse(raw)
    stored = spec_to_dict(spec)
    assert spec_from_stored(stored) == spec
    assert parse(stored) == spec
    # The stored form is plain JSON data.
    import json

    assert json.loads(json.dumps(stored)) == stored


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("raw", [{"kind": "fft"}, {"kind": None}, {}, {"kind": "MATMUL", "a": {}}])
def test_unknown_kind(raw: Any) -> None:
    assert field_of(raw) == "kind"


def test_spec_must_be_an_object() -> None:
    assert field_of(["matmul"]) == "spec"


@pytest.mark.parametrize(
    "raw, field",
    [
        (with_(MATMUL, b={"shape": "5x6"}), "b.shape"),
        (with_(MATMUL, a={"file": "/data/a34.npy"}, b={"file": "/data/b56.npy"}), "b"),
        (with_(ADD, b={"shape": "4x3"}), "b.shape"),
        (with_(ADD, a={"file": "/data/a34.npy"}, b={"file": "/data/b45.npy"}), "b"),
    ],
)
def test_mismatched_shapes(raw: dict[str, Any], field: str) -> None:
    assert field_of(raw) == field


def test_mismatched_matmul_shapes_say_what_b_needs() -> None:
    with pytest.raises(InvalidSpecError, match="b needs 4 rows"):
        parse(with_(MATMUL, b={"shape": "5x6"}))


@pytest.mark.parametrize(
    "raw, field",
    [
        (with_(MATMUL, a={"file": "/data/vec.npy"}), "a"),
        (with_(MATMUL, b={"file": "/data/cube.npy"}), "b"),
        (with_(MATMUL, a={"shape": "3x4x5"}), "a.shape"),
        (with_(ADD, b={"shape": [3]}), "b.shape"),
    ],
)
def test_arrays_that_are_not_2d(raw: dict[str, Any], field: str) -> None:
    assert field_of(raw) == field


@pytest.mark.parametrize(
    "raw, field",
    [
        (with_(MATMUL, dtype="int64"), "dtype"),
        (with_(MATMUL, dtype="float16"), "dtype"),
        (with_(MATMUL, a={"shape": "3x4", "dtype": "complex128"}), "a.dtype"),
        (with_(ADD, a={"file": "/data/int.npy"}), "a"),
        (with_(ADD, b={"file": "/data/complex.npy"}), "b"),
        (with_(ADD, a={"file": "/data/half.npy"}), "a"),
        (with_(ATOMS, precision="int64"), "precision"),
        (with_(ATOMS, precision="float16"), "precision"),
    ],
)
def test_unsupported_dtypes(raw: dict[str, Any], field: str) -> None:
    assert field_of(raw) == field


@pytest.mark.parametrize(
    "raw, field",
    [
        (with_(MATMUL, a={"shape": "0x4"}), "a.shape"),
        (with_(MATMUL, b={"shape": "4x-5"}), "b.shape"),
        (with_(ADD, a={"shape": [3, 0]}), "a.shape"),
        (with_(ADD, a={"file": "/data/empty.npy"}, b={"file": "/data/empty.npy"}), "a"),
        (with_(ATOMS, grid=0), "grid"),
        (with_(ATOMS, grid=-4), "grid"),
        (with_(ATOMS, grid="4x0x4"), "grid"),
        (with_(ATOMS, atoms={"count": 0}), "atoms.count"),
        (with_(ATOMS, atoms=-5), "atoms.count"),
        (with_(ATOMS, spacing=0), "spacing"),
        (with_(ATOMS, spacing=-1.5), "spacing"),
        (with_(MATMUL, seed=-1), "seed"),
        (with_(MATMUL, a={"shape": "3x4", "seed": -2}), "a.seed"),
        (with_(ATOMS, atoms={"count": 5, "seed": -1}), "atoms.seed"),
    ],
)
def test_zero_or_negative_sizes_and_counts(raw: dict[str, Any], field: str) -> None:
    assert field_of(raw) == field


SMALL = Limits(max_matrix_elements=100, max_dim=50, max_grid_points=1000, max_atoms=10, max_tile_edge=64)


@pytest.mark.parametrize(
    "raw, field",
    [
        (with_(MATMUL, a={"shape": "20x20"}, b={"shape": "20x2"}), "a.shape"),
        (with_(MATMUL, a={"shape": "2x60"}, b={"shape": "60x2"}), "a.shape"),  # over max_dim
        (with_(MATMUL, a={"shape": "10x2"}, b={"shape": "2x20"}), "out"),  # inputs fit, C does not
        (with_(ADD, a={"file": "/data/big.npy"}, b={"file": "/data/big.npy"}), "a"),
        (with_(ATOMS, grid=11), "grid"),
        (with_(ATOMS, atoms={"count": 11}), "atoms.count"),
        (with_(ATOMS, grid=4, atoms={"file": "/data/many.npy"}), "atoms"),
        (with_(MATMUL, tile=65), "tile"),
        (with_(ATOMS, tile=65), "tile"),
    ],
)
def test_sizes_over_the_configured_limits(raw: dict[str, Any], field: str) -> None:
    load = atoms_loader({"/data/many.npy": np.tile(OFF_GRID, (6, 1))})
    with pytest.raises(InvalidSpecError) as info:
        parse_spec(raw, limits=SMALL, inspect=inspect, load_atoms=load)
    assert info.value.field == field
    assert "limit" in info.value.message or "at most" in info.value.message


def test_the_same_sizes_pass_under_default_limits() -> None:
    assert isinstance(parse(with_(MATMUL, a={"shape": "20x20"}, b={"shape": "20x2"})), MatrixSpec)
    assert isinstance(parse(with_(ATOMS, grid=11, atoms={"count": 11})), AtomsSpec)


@pytest.mark.parametrize(
    "raw",
    [
        with_(MATMUL, tile=0),
        with_(MATMUL, tile=-3),
        with_(MATMUL, tile="abc"),
        with_(MATMUL, tile=[2, 0]),
        with_(MATMUL, tile=[1, 2, 3]),
        with_(MATMUL, tile=2.5),
        with_(MATMUL, tile=True),
        with_(ATOMS, tile=0),
        with_(ATOMS, tile=[2, 2]),
        with_(ATOMS, tile=[2, 2, -1]),
        with_(ATOMS, tile="x"),
    ],
)
def test_bad_tile(raw: dict[str, Any]) -> None:
    assert field_of(raw) == "tile"


@pytest.mark.parametrize("origin", ["1,2", "1,2,3,4", "a,b,c", "1,2,inf", "1,nan,3", [1, 2], 5, [1, None, 3]])
def test_bad_origin(origin: Any) -> None:
    assert field_of(with_(ATOMS, origin=origin)) == "origin"


@pytest.mark.parametrize("softening", [-0.1, -1, "-2", "soft", float("nan"), float("inf")])
def test_bad_softening(softening: Any) -> None:
    assert field_of(with_(ATOMS, softening=softening)) == "softening"


@pytest.mark.parametrize(
    "raw, field",
    [
        (with_(MATMUL, colour="red"), "colour"),
        (with_(MATMUL, a={"shape": "3x4", "fill": 0}), "a.fill"),
        (with_(MATMUL, a={"file": "/data/a34.npy", "mmap": True}), "a.mmap"),
        (with_(ATOMS, resolution=3), "resolution"),
        (with_(ATOMS, atoms={"count": 5, "charge": 1}), "atoms.charge"),
        (with_(ATOMS, atoms={"file": "/data/atoms.npy", "seed": 1}), "atoms.seed"),
        (with_(ADD, field_out="/x.npy"), "field_out"),
    ],
)
def test_unknown_fields(raw: dict[str, Any], field: str) -> None:
    assert field_of(raw) == field


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"kind": "matmul", "b": {"shape": "4x5"}}, "a"),
        ({"kind": "add", "a": {"shape": "3x4"}}, "b"),
        (with_(MATMUL, a={"seed": 3}), "a"),
        (with_(MATMUL, a="3x4"), "a"),
        (with_(MATMUL, a={"file": "/data/missing.npy"}), "a.file"),
        (with_(MATMUL, a={"file": "/data/garbage.npy"}), "a.file"),
        (with_(MATMUL, a={"file": ""}), "a.file"),
        (with_(MATMUL, verify="yes"), "verify"),
        (with_(MATMUL, out=""), "out"),
        ({"kind": "atoms", "atoms": 5}, "grid"),
        ({"kind": "atoms", "grid": 4}, "atoms"),
        (with_(ATOMS, atoms={"seed": 1}), "atoms"),
        (with_(ATOMS, atoms={"file": "/data/missing.csv"}), "atoms.file"),
        (with_(ATOMS, atoms=True), "atoms"),
    ],
)
def test_missing_or_malformed_inputs(raw: dict[str, Any], field: str) -> None:
    assert field_of(raw) == field


def test_file_inputs_need_an_inspector() -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_spec(with_(MATMUL, a={"file": "/data/a34.npy"}))
    assert info.value.field == "a.file"



"""What a refused spec says: the field at fault, named as the user wrote it, and why.

Each kind takes only its own fields, and each input form only its own: a field of one
kind sent with another is named and said to belong elsewhere. Messages are ours, whatever
library checks the forms; text and whole numbers from the command line count as numbers.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.spec_fakes import ADD, ATOMS, MATMUL, field_of, parse, with_
from tilefan.errors import InvalidSpecError


def test_an_unknown_field_error_lists_the_fields_that_are_allowed_there() -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse(with_(MATMUL, a={"shape": "3x4", "fill": 0}))
    assert info.value.message == "unknown field; expected one of ['dtype', 'seed', 'shape', 'stream']"


@pytest.mark.parametrize(
    "raw, field, owners",
    [
        (with_(MATMUL, grid=4), "grid", "atoms"),
        (with_(ADD, atoms=5), "atoms", "atoms"),
        (with_(ADD, precision="float32"), "precision", "atoms"),
        (with_(MATMUL, origin="1,2,3"), "origin", "atoms"),
        (with_(MATMUL, spacing=0.5), "spacing", "atoms"),
        (with_(ADD, softening=0.1), "softening", "atoms"),
        (with_(ATOMS, a={"shape": "3x4"}), "a", "matmul and add"),
        (with_(ATOMS, b={"file": "/data/b45.npy"}), "b", "matmul and add"),
        (with_(ATOMS, out="/x.npy"), "out", "matmul and add"),
        (with_(ATOMS, dtype="float32"), "dtype", "matmul and add"),
        (with_(ATOMS, seed=3), "seed", "matmul and add"),
    ],
)
def test_one_kinds_fields_are_refused_on_another_naming_the_field(
    raw: dict[str, Any], field: str, owners: str
) -> None:
    assert field_of(raw) == field
    with pytest.raises(InvalidSpecError) as info:
        parse(raw)
    assert info.value.message.startswith(f"is not a field of {raw['kind']} jobs (only of {owners}); expected one of")


@pytest.mark.parametrize(
    "raw, field",
    [
        # A random matrix's fields on a file input, and a file's on random atoms.
        (with_(MATMUL, a={"file": "/data/a34.npy", "seed": 1}), "a.seed"),
        (with_(ADD, b={"file": "/data/b34.npy", "stream": 2}), "b.stream"),
        (with_(ATOMS, atoms={"count": 5, "file": "/data/atoms.npy", "seed": 1}), "atoms.seed"),
    ],
)
def test_one_input_forms_fields_are_refused_on_the_other(raw: dict[str, Any], field: str) -> None:
    assert field_of(raw) == field


@pytest.mark.parametrize(
    "raw, field, message",
    [
        (with_(MATMUL, tile=0), "tile", "must be at least 1, got 0"),
        (with_(MATMUL, tile="abc"), "tile", "must be an integer, got 'abc'"),
        (with_(MATMUL, a={"shape": "3x4x5"}), "a.shape", "must be 2 sizes like NxN, got '3x4x5'"),
        (with_(ATOMS, grid="4x4"), "grid", "must be 3 sizes like NxNxN, got '4x4'"),
        (with_(MATMUL, dtype="int64"), "dtype", "unsupported dtype 'int64'; use float32 or float64"),
        (with_(MATMUL, route="gpu"), "route", "must be one of auto, lambda, spot; got 'gpu'"),
        (with_(MATMUL, verify=1), "verify", "must be true or false, got 1"),
        (with_(ATOMS, origin="1,2"), "origin", "must be three numbers x,y,z, got '1,2'"),
        (with_(ATOMS, spacing="0"), "spacing", "must be greater than 0, got '0'"),
        (with_(ATOMS, softening="nan"), "softening", "must be finite, got 'nan'"),
        (with_(ATOMS, atoms={"count": 5, "seed": 2**63}), "atoms.seed", f"must be at most {2**63 - 1}, got {2**63}"),
        ({"kind": "atoms", "atoms": 5}, "grid", "is required (e.g. 64 or [32, 48, 64]), or place the grid with around"),
        ({"kind": "matmul", "b": {"shape": "4x5"}}, "a", "is required"),
        ({"kind": "fft"}, "kind", "must be one of matmul, add, atoms; got 'fft'"),
        ({"kind": "add", "a": 3, "b": {"shape": "3x4"}}, "a",
         "give either a file or a shape (with a seed) for a random matrix"),
    ],
)
def test_error_messages_say_what_to_fix(raw: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse(raw)
    assert (info.value.field, info.value.message) == (field, message)


@pytest.mark.parametrize(
    "raw, expected",
    [
        # Text from the command line, and whole floats, count as the integers they spell.
        (with_(MATMUL, seed="7", tile=" 2 ", a={"shape": ["3", 4.0]}), {"seed": 7, "tile": (2, 2)}),
        (with_(ATOMS, grid="5", atoms=3.0, tile=["2", 2, 3.0]), {"grid": (5, 5, 5), "tile": (2, 2, 3)}),
        (with_(ATOMS, grid=4.0, origin=[" 1", "2.5e0", -3]), {"grid": (4, 4, 4), "origin": (1.0, 2.5, -3.0)}),
    ],
)
def test_text_and_whole_numbers_are_read_as_numbers(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    spec = parse(raw)
    for name, value in expected.items():
        actual = spec.a.seed if name == "seed" else getattr(spec, name)
        assert actual == value, name

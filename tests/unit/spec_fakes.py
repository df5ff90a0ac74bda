"""Fakes shared by the spec and schema tests: a blob store's headers and atoms tables,
and a few valid bodies to vary. No I/O: file inputs resolve from the tables here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

from tilefan.domain.atoms import validate_table
from tilefan.domain.spec.parse import Limits, parse_spec
from tilefan.errors import BlobNotFoundError, InvalidBlobError, InvalidSpecError

# What the fake blob store holds: uri → (shape, dtype).
FILES: dict[str, tuple[tuple[int, ...], str]] = {
    "/data/a34.npy": ((3, 4), "float64"),
    "/data/b45.npy": ((4, 5), "float32"),
    "/data/b34.npy": ((3, 4), "float64"),
    "/data/b56.npy": ((5, 6), "float64"),
    "/data/vec.npy": ((7,), "float64"),
    "/data/cube.npy": ((2, 2, 2), "float64"),
    "/data/int.npy": ((3, 4), "int64"),
    "/data/complex.npy": ((3, 4), "complex128"),
    "/data/half.npy": ((3, 4), "float16"),
    "/data/empty.npy": ((0, 4), "float64"),
    "/data/big.npy": ((100, 100), "float64"),
}


def inspect(uri: str) -> tuple[tuple[int, ...], str]:
    if uri == "/data/garbage.npy":
        raise InvalidBlobError(uri, "not a valid .npy file")
    if uri not in FILES:
        raise BlobNotFoundError(uri)
    return FILES[uri]


def atoms_loader(tables: Mapping[str, np.ndarray]) -> Callable[[str], np.ndarray]:
    def load(uri: str) -> np.ndarray:
        if uri not in tables:
            raise BlobNotFoundError(uri)
        return validate_table(tables[uri])

    return load


OFF_GRID = np.array([[0.5, 1.25, 2.75, 1.0], [3.5, 0.5, 0.5, -0.5]])
ON_GRID = np.array([[0.5, 0.5, 0.5, 1.0], [1.0, 2.0, 3.0, -1.0]])  # atom 1 on point (1, 2, 3)
NEAR_GRID = np.array([[3.0000001, 1.0, 2.0, 1.0]])  # on (3, 1, 2) in float32, not in float64
LOAD = atoms_loader({"/data/atoms.npy": OFF_GRID, "/data/on.npy": ON_GRID, "/data/near.npy": NEAR_GRID})


def parse(raw: Any, limits: Limits | None = None) -> Any:
    return parse_spec(raw, limits=limits, inspect=inspect, load_atoms=LOAD)


def field_of(raw: Any, limits: Limits | None = None) -> str:
    with pytest.raises(InvalidSpecError) as info:
        parse(raw, limits)
    assert info.value.message, "an error must say what is wrong"
    # Our own wording, never the validation library's.
    assert not any(text in info.value.message for text in ("Input should", "Value error", "Field required"))
    assert str(info.value).startswith(f"{info.value.field}: ")
    return info.value.field


MATMUL = {"kind": "matmul", "a": {"shape": "3x4"}, "b": {"shape": "4x5"}}
ADD = {"kind": "add", "a": {"shape": "3x4"}, "b": {"shape": "3x4"}}
ATOMS = {"kind": "atoms", "grid": 4, "atoms": {"count": 5, "seed": 1}}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}

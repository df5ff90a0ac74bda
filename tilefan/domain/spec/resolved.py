"""Resolved job specs: frozen, complete descriptions of a job, and their stored form.

``tilefan.domain.spec.parse.parse_spec`` builds these from a request once its files, limits
and shapes are checked; nothing downstream re-validates them. ``spec_to_dict`` gives the
JSON form job records keep, which is itself a request that resolves to the same spec, and
``spec_from_stored`` reads it back without touching any file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum, StrEnum
from typing import Any, TypeVar

from tilefan.domain.routing import AUTO
from tilefan.domain.spec.requests import (
    AtomsJobForm,
    RandomMatrixForm,
    StoredAtomsForm,
    StoredMatrixForm,
    read_request,
)

T = TypeVar("T")


class Kind(StrEnum):
    MATMUL = "matmul"
    ADD = "add"
    ATOMS = "atoms"


# The inputs are keyword-only: seed, stream and count are all ints, and a swapped positional
# pair would pass every type check and silently make another job.
@dataclass(frozen=True, kw_only=True)
class RandomMatrix:
    """A seeded random matrix: a pure function of (seed, stream, shape, dtype)."""

    shape: tuple[int, int]
    dtype: str
    seed: int
    stream: int


@dataclass(frozen=True, kw_only=True)
class StoredMatrix:
    """A matrix in the blob store (a local path or an object key), named as a request names it."""

    file: str
    shape: tuple[int, int]
    dtype: str


@dataclass(frozen=True, kw_only=True)
class RandomAtoms:
    """Atoms at seeded random positions with random energies: a pure function of (count, seed)."""

    count: int
    seed: int


@dataclass(frozen=True, kw_only=True)
class StoredAtoms:
    """An N×4 table (x, y, z, energy) as ``.npy`` or ``.csv``, or a ``.pqr`` / ``.xyz`` molecule."""

    file: str
    count: int


MatrixInput = RandomMatrix | StoredMatrix
AtomsInput = RandomAtoms | StoredAtoms


@dataclass(frozen=True)
class MatrixSpec:
    """matmul (C = A·B) or add (C = A + B)."""

    kind: Kind
    a: MatrixInput
    b: MatrixInput
    out: str | None
    tile: tuple[int, int]
    verify: bool
    # "auto" lets the planner route each tile; "lambda" or "spot" forces every tile there.
    route: str = AUTO

    @property
    def out_shape(self) -> tuple[int, int]:
        if self.kind is Kind.MATMUL:
            return (self.a.shape[0], self.b.shape[1])
        return self.a.shape

    @property
    def dtype(self) -> str:
        return "float64" if "float64" in (self.a.dtype, self.b.dtype) else "float32"

    @property
    def units_total(self) -> int:
        return self.out_shape[0] * self.out_shape[1]


@dataclass(frozen=True)
class AtomsSpec:
    """The potential φ(p) = Σ e / sqrt(|p − r|² + ε²) on a regular 3-D grid."""

    grid: tuple[int, int, int]
    origin: tuple[float, float, float]
    spacing: float
    softening: float
    precision: str
    atoms: AtomsInput
    field_out: str | None
    tile: tuple[int, int, int]
    verify: bool
    route: str = AUTO
    # The unit of φ (tilefan.domain.units); the planner scales the staged energies to it.
    units: str = "e/A"

    kind = Kind.ATOMS

    @property
    def units_total(self) -> int:
        return self.grid[0] * self.grid[1] * self.grid[2]

    @property
    def dtype(self) -> str:
        return self.precision


JobSpec = MatrixSpec | AtomsSpec


# --------------------------------------------------------------------------- stored form

def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


def spec_to_dict(spec: JobSpec) -> dict[str, Any]:
    """The stored, JSON-ready form of a resolved spec (a request that resolves to it)."""
    return {"kind": spec.kind.value, **_plain(spec)}


def spec_from_stored(raw: Mapping[str, Any]) -> JobSpec:
    """Rebuild a spec from its stored form (written by ``spec_to_dict`` after validation),
    without touching any file again or applying today's limits to yesterday's job."""
    request = read_request(raw)
    if isinstance(request, AtomsJobForm):
        a = request.atoms
        atoms: AtomsInput = (
            StoredAtoms(file=a.file, count=_recorded(a.count)) if isinstance(a, StoredAtomsForm)
            else RandomAtoms(count=a.count, seed=a.seed or 0)
        )
        return AtomsSpec(
            grid=_recorded(request.grid), origin=_recorded(request.origin), spacing=request.spacing,
            softening=request.softening,
            precision=request.precision, atoms=atoms, field_out=request.field_out,
            tile=_recorded(request.tile), verify=request.verify, route=request.route, units=request.units,
        )
    return MatrixSpec(
        kind=Kind(request.kind), a=_stored_matrix(request.a), b=_stored_matrix(request.b), out=request.out,
        tile=_recorded(request.tile), verify=request.verify, route=request.route,
    )


def _stored_matrix(m: RandomMatrixForm | StoredMatrixForm) -> MatrixInput:
    if isinstance(m, StoredMatrixForm):
        return StoredMatrix(file=m.file, shape=_recorded(m.shape), dtype=_recorded(m.dtype))
    return RandomMatrix(shape=m.shape, dtype=_recorded(m.dtype), seed=_recorded(m.seed), stream=_recorded(m.stream))


def _recorded(value: T | None) -> T:
    """A value the stored form always holds (the resolver wrote it)."""
    if value is None:
        raise ValueError("a stored spec lacks a value its resolution records")
    return value

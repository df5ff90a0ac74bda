"""A job request as plain frozen dataclasses, read without pydantic when it is well formed.

The pydantic models (``tilefan.domain.spec.request_models``) are the contract: the OpenAPI schema and
every error message come from them. But importing pydantic and building those models
costs about as much as importing NumPy, which a ``tilefan run`` of a small job, a stored
record read back (``spec_from_stored``) or a pool worker should not pay. So
``read_request`` first reads the request here, field by field, with the very conversions
the models use (``tilefan.domain.spec.field_values``). Only when something is off (an unknown or
missing field, a value no conversion accepts, an unexpected type) does it ask the models,
which then raise the error naming the field, or accept what this reader did not
recognise. ``tests/unit/test_requests.py`` checks that both readers agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tilefan.domain.routing import AUTO
from tilefan.domain.spec import field_values as fv


@dataclass(frozen=True)
class RandomMatrixForm:
    shape: tuple[int, int]
    seed: int | None = None
    dtype: str | None = None
    stream: int | None = None


@dataclass(frozen=True)
class StoredMatrixForm:
    file: str
    shape: tuple[int, int] | None = None
    dtype: str | None = None


@dataclass(frozen=True)
class RandomAtomsForm:
    count: int
    seed: int | None = None


@dataclass(frozen=True)
class StoredAtomsForm:
    file: str
    count: int | None = None


MatrixInputForm = RandomMatrixForm | StoredMatrixForm
AtomsInputForm = RandomAtomsForm | StoredAtomsForm


@dataclass(frozen=True)
class MatrixJobForm:
    """matmul or add, as requested (defaults as in ``tilefan.domain.spec.request_models``)."""

    kind: str
    a: MatrixInputForm
    b: MatrixInputForm
    seed: int | None = None
    dtype: str = "float64"
    out: str | None = None
    tile: tuple[int, int] | None = None
    verify: bool = False
    route: str = AUTO


@dataclass(frozen=True)
class AroundForm:
    """The grid placed around a molecule: its bounding box plus ``margin``."""

    margin: float
    file: str | None = None


@dataclass(frozen=True)
class AtomsJobForm:
    """An atoms job, as requested (defaults as in ``tilefan.domain.spec.request_models``).

    ``grid`` is None when ``around`` places the grid, and ``origin`` None when not given
    (the origin 0, 0, 0 then, unless ``around`` sets it)."""

    atoms: AtomsInputForm
    grid: tuple[int, int, int] | None = None
    origin: tuple[float, float, float] | None = None
    around: AroundForm | None = None
    units: str = "e/A"
    spacing: float = 1.0
    softening: float = 0.0
    precision: str = "float64"
    field_out: str | None = None
    tile: tuple[int, int, int] | None = None
    verify: bool = False
    route: str = AUTO

    kind = "atoms"


JobForm = MatrixJobForm | AtomsJobForm


class _Unsure(Exception):
    """The quick reader does not handle this request: the models decide."""


Reader = Callable[[Any], Any]

# Each form's fields: (conversion, required). A None value of an optional field stays None,
# as the models' ``X | None`` fields keep it.
_RANDOM_MATRIX: dict[str, tuple[Reader, bool]] = {
    "shape": (fv.shape2, True), "seed": (fv.seed, False), "dtype": (fv.dtype, False), "stream": (fv.stream, False)}
_STORED_MATRIX: dict[str, tuple[Reader, bool]] = {
    "file": (fv.path, True), "shape": (fv.shape2, False), "dtype": (fv.dtype, False)}
_RANDOM_ATOMS: dict[str, tuple[Reader, bool]] = {"count": (fv.count, True), "seed": (fv.seed, False)}
_STORED_ATOMS: dict[str, tuple[Reader, bool]] = {"file": (fv.path, True), "count": (fv.count, False)}
# Fields with a default other than None are never None: their conversion refuses None.
_MATRIX_JOB: dict[str, tuple[Reader, bool]] = {
    "seed": (fv.seed, False), "dtype": (fv.dtype, False), "out": (fv.path, False),
    "tile": (fv.matrix_tile, False), "verify": (fv.flag, False), "route": (fv.route, False)}
# A request with ``around`` is left to the models (the quick reader has no nested form for it).
_ATOMS_JOB: dict[str, tuple[Reader, bool]] = {
    "grid": (fv.grid, False), "origin": (fv.origin, False), "units": (fv.units, False),
    "spacing": (fv.spacing, False),
    "softening": (fv.softening, False), "precision": (fv.dtype, False), "field_out": (fv.path, False),
    "tile": (fv.grid_tile, False), "verify": (fv.flag, False), "route": (fv.route, False)}
_NOT_NONE = {"dtype", "spacing", "softening", "precision", "verify", "route", "units"}


def _fields(raw: Any, table: dict[str, tuple[Reader, bool]], job_level: bool = False) -> dict[str, Any]:
    if type(raw) is not dict or not all(type(k) is str for k in raw) or not set(raw) <= set(table):
        raise _Unsure
    out: dict[str, Any] = {}
    for name, (convert, required) in table.items():
        if name not in raw:
            if required:
                raise _Unsure
            continue
        value = raw[name]
        if value is None and not (job_level and name in _NOT_NONE):
            if required:
                raise _Unsure
            out[name] = None
        else:
            out[name] = convert(value)
    return out


def _matrix_input(raw: Any) -> MatrixInputForm:
    if type(raw) is dict and "file" in raw:
        return StoredMatrixForm(**_fields(raw, _STORED_MATRIX))
    if type(raw) is dict and "shape" in raw:
        return RandomMatrixForm(**_fields(raw, _RANDOM_MATRIX))
    raise _Unsure


def _atoms_input(raw: Any) -> AtomsInputForm:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = {"count": raw}  # "atoms": 100 is short for {"count": 100}
    if type(raw) is dict and "file" in raw:
        return StoredAtomsForm(**_fields(raw, _STORED_ATOMS))
    if type(raw) is dict and "count" in raw:
        return RandomAtomsForm(**_fields(raw, _RANDOM_ATOMS))
    raise _Unsure


def quick_form(raw: Any) -> JobForm | None:
    """The request read without pydantic, or None when the models must decide.

    >>> quick_form({"kind": "atoms", "grid": "16", "atoms": {"count": "1000", "seed": "3"}}).grid
    (16, 16, 16)
    >>> quick_form({"kind": "atoms", "grid": 16, "atoms": 10, "colour": "red"}) is None
    True
    """
    if type(raw) is not dict:
        return None
    body = dict(raw)
    kind = body.pop("kind", None)
    try:
        if kind in ("matmul", "add") and type(kind) is str:
            a, b = body.pop("a", None), body.pop("b", None)
            if a is None or b is None:
                raise _Unsure
            return MatrixJobForm(kind=kind, a=_matrix_input(a), b=_matrix_input(b),
                                 **_fields(body, _MATRIX_JOB, job_level=True))
        if kind == "atoms" and type(kind) is str:
            atoms = body.pop("atoms", None)
            if atoms is None:
                raise _Unsure
            return AtomsJobForm(atoms=_atoms_input(atoms), **_fields(body, _ATOMS_JOB, job_level=True))
    except (_Unsure, fv.FieldValueError):
        return None
    return None


def form_of(request: Any) -> JobForm:
    """The same request, from the models' validated objects (attribute for attribute)."""
    from tilefan.domain.spec.request_models import AtomsRequest, StoredAtomsRequest, StoredMatrixRequest

    def matrix(m: Any) -> MatrixInputForm:
        if isinstance(m, StoredMatrixRequest):
            return StoredMatrixForm(m.file, m.shape, m.dtype)
        return RandomMatrixForm(m.shape, m.seed, m.dtype, m.stream)

    if isinstance(request, AtomsRequest):
        a = request.atoms
        atoms: AtomsInputForm = (StoredAtomsForm(a.file, a.count) if isinstance(a, StoredAtomsRequest)
                                 else RandomAtomsForm(a.count, a.seed))
        around = None if request.around is None else AroundForm(request.around.margin, request.around.file)
        return AtomsJobForm(
            grid=request.grid, atoms=atoms, origin=request.origin, around=around, units=request.units,
            spacing=request.spacing, softening=request.softening, precision=request.precision,
            field_out=request.field_out, tile=request.tile, verify=request.verify, route=request.route)
    return MatrixJobForm(
        kind=request.kind, a=matrix(request.a), b=matrix(request.b), seed=request.seed,
        dtype=request.dtype, out=request.out, tile=request.tile, verify=request.verify, route=request.route)


def read_request(raw: Any) -> JobForm:
    """Check a body's forms, or raise InvalidSpecError naming the first field at fault."""
    form = quick_form(raw)
    if form is not None:
        return form
    # Something is off, or merely unusual: the models name the fault, or accept it.
    from tilefan.domain.spec.request_models import validate_request

    return form_of(validate_request(raw))

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
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from tilefan.domain.routing import AUTO
from tilefan.domain.spec import field_values as fv

Reader = Callable[[Any], Any]


def _read(convert: Reader, default: Any = MISSING) -> Any:
    """A form's field as the quick reader reads it: its conversion (the models' own, from
    ``field_values``) and its default (none: the field is required). A field declared
    without one (a job's ``kind``, ``around``) is read by hand, or left to the models."""
    return field(default=default, metadata={"read": convert})


@dataclass(frozen=True)
class RandomMatrixForm:
    """A matrix input drawn at random: its shape, dtype, seed and stream."""

    shape: tuple[int, int] = _read(fv.shape2)
    dtype: str | None = _read(fv.dtype, None)
    seed: int | None = _read(fv.seed, None)
    stream: int | None = _read(fv.stream, None)


@dataclass(frozen=True)
class StoredMatrixForm:
    """A matrix input read from a file or upload; the shape and dtype a stored spec records (on
    submission the file's header is what counts)."""

    file: str = _read(fv.path)
    shape: tuple[int, int] | None = _read(fv.shape2, None)
    dtype: str | None = _read(fv.dtype, None)


@dataclass(frozen=True)
class RandomAtomsForm:
    """Atoms drawn at random: how many, and the seed."""

    count: int = _read(fv.count)
    seed: int | None = _read(fv.seed, None)


@dataclass(frozen=True)
class StoredAtomsForm:
    """Atoms read from a file or upload; the count a stored spec records (on submission the
    file's rows are what count)."""

    file: str = _read(fv.path)
    count: int | None = _read(fv.count, None)


MatrixInputForm = RandomMatrixForm | StoredMatrixForm
AtomsInputForm = RandomAtomsForm | StoredAtomsForm


class _Unsure(Exception):
    """The quick reader does not handle this request: the models decide."""


def _fields(raw: Any, form: type) -> dict[str, Any]:
    """``raw``'s values of the fields ``form`` reads, converted. None is a value only where
    it is the default, as the models' ``X | None`` fields keep it; elsewhere the models
    decide (they name a missing field, and refuse None where the default is not None)."""
    readers = {f.name: f for f in fields(form) if "read" in f.metadata}
    if type(raw) is not dict or not all(type(k) is str for k in raw) or not set(raw) <= set(readers):
        raise _Unsure
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None and readers[name].default is not None:
            raise _Unsure
        out[name] = None if value is None else readers[name].metadata["read"](value)
    for name, f in readers.items():
        if name not in out and f.default is MISSING:
            raise _Unsure
    return out


def _matrix_input(raw: Any) -> MatrixInputForm:
    """A matrix input, as a job's ``a`` or ``b``."""
    if type(raw) is dict and "file" in raw:
        return StoredMatrixForm(**_fields(raw, StoredMatrixForm))
    if type(raw) is dict and "shape" in raw:
        return RandomMatrixForm(**_fields(raw, RandomMatrixForm))
    raise _Unsure


def _atoms_input(raw: Any) -> AtomsInputForm:
    """An atoms input, as an atoms job's ``atoms``."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = {"count": raw}  # "atoms": 100 is short for {"count": 100}
    if type(raw) is dict and "file" in raw:
        return StoredAtomsForm(**_fields(raw, StoredAtomsForm))
    if type(raw) is dict and "count" in raw:
        return RandomAtomsForm(**_fields(raw, RandomAtomsForm))
    raise _Unsure


@dataclass(frozen=True)
class MatrixJobForm:
    """matmul or add, as requested (defaults as in ``tilefan.domain.spec.request_models``)."""

    kind: str
    a: MatrixInputForm = _read(_matrix_input)
    b: MatrixInputForm = _read(_matrix_input)
    seed: int | None = _read(fv.seed, None)
    dtype: str = _read(fv.dtype, "float64")
    out: str | None = _read(fv.path, None)
    tile: tuple[int, int] | None = _read(fv.matrix_tile, None)
    verify: bool = _read(fv.flag, False)
    route: str = _read(fv.route, AUTO)


@dataclass(frozen=True)
class AroundForm:
    """The grid placed around a molecule: its bounding box plus ``margin``."""

    margin: float
    file: str | None = None


@dataclass(frozen=True)
class AtomsJobForm:
    """An atoms job, as requested (defaults as in ``tilefan.domain.spec.request_models``).

    ``grid`` is None when ``around`` places the grid, and ``origin`` None when not given
    (the origin 0, 0, 0 then, unless ``around`` sets it). A request with ``around`` is left
    to the models: the quick reader has no nested form for it."""

    atoms: AtomsInputForm = _read(_atoms_input)
    grid: tuple[int, int, int] | None = _read(fv.grid, None)
    origin: tuple[float, float, float] | None = _read(fv.origin, None)
    around: AroundForm | None = None
    units: str = _read(fv.units, "e/A")
    spacing: float = _read(fv.spacing, 1.0)
    softening: float = _read(fv.softening, 0.0)
    precision: str = _read(fv.dtype, "float64")
    field_out: str | None = _read(fv.path, None)
    tile: tuple[int, int, int] | None = _read(fv.grid_tile, None)
    verify: bool = _read(fv.flag, False)
    route: str = _read(fv.route, AUTO)

    kind = "atoms"


JobForm = MatrixJobForm | AtomsJobForm


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
            return MatrixJobForm(kind=kind, **_fields(body, MatrixJobForm))
        if kind == "atoms" and type(kind) is str:
            return AtomsJobForm(**_fields(body, AtomsJobForm))
    except (_Unsure, fv.FieldValueError):
        return None
    return None


def form_of(request: Any) -> JobForm:
    """The same request, from the models' validated objects (attribute for attribute)."""
    from tilefan.domain.spec.request_models import AtomsRequest, StoredAtomsRequest, StoredMatrixRequest

    def matrix(m: Any) -> MatrixInputForm:
        if isinstance(m, StoredMatrixRequest):
            return StoredMatrixForm(m.file, m.shape, m.dtype)
        return RandomMatrixForm(m.shape, m.dtype, m.seed, m.stream)

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

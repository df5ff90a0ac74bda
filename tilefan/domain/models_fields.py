"""The leaf fields of a job spec: each accepted form, its JSON schema, and its conversion.

A field is an ``Annotated`` type whose validator turns every form a user may send (an
integer, an integral string from the command line, ``"32x48x64"``, ``"1,2,3"``...) into one
canonical value, or fails with the message the user sees. ``json_schema_input_type``
states the same forms for the generated schema, so what is accepted and what is
documented come from this one module. Limits that depend on configuration (largest
dimension, tile edge, atom count) are checked later, when the spec is resolved.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, NoReturn

from pydantic import Field, PlainValidator
from pydantic_core import PydanticCustomError

from tilefan.domain.routing import ROUTES
from tilefan.domain.units import UNITS

FLOAT_DTYPES = ("float32", "float64")
MAX_SEED = 2**63 - 1

# Text forms, as JSON-schema patterns; the converters accept text only in these forms.
# Digits are ASCII ([0-9], not \d) so every client's regex engine reads them alike.
_POS = r"\+?0*[1-9][0-9]*"  # an integer >= 1
_DIGITS = r"[0-9](?:_?[0-9])*"
_NUM = rf"[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?"  # as float() reads it
POSITIVE_INT_TEXT = rf"^\s*{_POS}\s*$"
NONNEG_INT_TEXT = r"^\s*(?:\+?[0-9]+|-0+)\s*$"
NUMBER_TEXT = rf"^\s*{_NUM}\s*$"
SHAPE2_TEXT = rf"^\s*{_POS}\s*[xX]\s*{_POS}\s*$"
GRID_TEXT = rf"^\s*{_POS}\s*(?:[xX]\s*{_POS}\s*[xX]\s*{_POS}\s*)?$"
ORIGIN_TEXT = rf"^\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*$"
PATH_TEXT = r"\S"

_INT_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")
_NUMBER_TEXT = re.compile(NUMBER_TEXT)
# Text float() reads as NaN or infinity: refused as not finite, which says more than "not a number".
_NOT_FINITE_TEXT = re.compile(r"\s*[+-]?(?:nan|inf|infinity)\s*", re.IGNORECASE)


def _fail(message: str) -> NoReturn:
    """Reject a value; the message reaches the user after the field's name."""
    raise PydanticCustomError("invalid_spec", "{message}", {"message": message})


def _is_whole(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _integer(value: Any, minimum: int, maximum: int | None = None) -> int:
    """An int from an int, an integral float, or integral text (the CLI passes text)."""
    if _is_whole(value) or (isinstance(value, str) and _INT_TEXT.fullmatch(value)):
        value = int(value)
    else:
        _fail(f"must be an integer, got {value!r}")
    if value < minimum:
        _fail(f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        _fail(f"must be at most {maximum}, got {value}")
    return int(value)


def _number(value: Any, *, positive: bool = False, nonneg: bool = False) -> float:
    """A finite float from a number or numeric text (the CLI passes text)."""
    if isinstance(value, bool) or (
        isinstance(value, str) and not (_NUMBER_TEXT.fullmatch(value) or _NOT_FINITE_TEXT.fullmatch(value))
    ):
        _fail(f"must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        _fail(f"must be a number, got {value!r}")
    if not math.isfinite(out):
        _fail(f"must be finite, got {value!r}")
    if positive and out <= 0:
        _fail(f"must be greater than 0, got {value!r}")
    if nonneg and out < 0:
        _fail(f"must be 0 or more, got {value!r}")
    return out


def _sizes(value: Any, ndim: int) -> tuple[int, ...]:
    """``ndim`` positive sizes from "AxB[xC]", a list, or (in 3-D) one edge for a cube."""
    items: Any = None
    if isinstance(value, str):
        items = value.lower().split("x")
        if len(items) == 1 and ndim == 3:
            items = items * 3
    elif isinstance(value, (list, tuple)):
        items = list(value)
    elif ndim == 3 and _is_whole(value):
        items = [value] * 3
    if items is None or len(items) != ndim:
        _fail(f"must be {ndim} sizes like {'x'.join(['N'] * ndim)}, got {value!r}")
    return tuple(_integer(v, 1) for v in items)


def _matrix_tile(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (_integer(value[0], 1), _integer(value[1], 1))
    edge = _integer(value, 1)
    return (edge, edge)


def _grid_tile(value: Any) -> tuple[int, int, int]:
    if isinstance(value, (list, tuple)):
        x, y, z = _sizes(value, 3)
        return (x, y, z)
    edge = _integer(value, 1)
    return (edge, edge, edge)


def _origin(value: Any) -> tuple[float, float, float]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or len(items) != 3:
        _fail(f"must be three numbers x,y,z, got {value!r}")
    x, y, z = (_number(v) for v in items)
    return (x, y, z)


def _dtype(value: Any) -> str:
    text = str(value)
    if text not in FLOAT_DTYPES:
        _fail(f"unsupported dtype {text!r}; use float32 or float64")
    return text


def _route(value: Any) -> str:
    if value not in ROUTES:
        _fail(f"must be one of {', '.join(ROUTES)}; got {value!r}")
    return str(value)


def _units(value: Any) -> str:
    if value not in UNITS:
        _fail(f"must be one of {', '.join(UNITS)}; got {value!r}")
    return str(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(f"must be true or false, got {value!r}")
    return value


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail("must be a non-empty string")
    return value


# --------------------------------------------------------------------------- forms (for the schema)

PositiveInt = Annotated[int, Field(ge=1)]
PositiveIntForm = PositiveInt | Annotated[str, Field(pattern=POSITIVE_INT_TEXT)]
NonNegIntText = Annotated[str, Field(pattern=NONNEG_INT_TEXT)]
NumberText = Annotated[str, Field(pattern=NUMBER_TEXT)]
NumberForm = float | NumberText


def _list_of(item: Any, n: int) -> Any:
    """The schema of a JSON array of exactly ``n`` items."""
    return Annotated[list[item], Field(min_length=n, max_length=n)]


def _field(convert: Callable[[Any], Any], *forms: Any) -> PlainValidator:
    """Convert with ``convert``; document the input as any of ``forms``."""
    return PlainValidator(convert, json_schema_input_type=functools.reduce(operator.or_, forms))


# --------------------------------------------------------------------------- the fields

Count = Annotated[int, _field(lambda v: _integer(v, 1), PositiveIntForm)]
Seed = Annotated[
    int, _field(lambda v: _integer(v, 0, MAX_SEED), Annotated[int, Field(ge=0, le=MAX_SEED)], NonNegIntText)
]
Stream = Annotated[int, _field(lambda v: _integer(v, 0), Annotated[int, Field(ge=0)], NonNegIntText)]
Shape2 = Annotated[
    tuple[int, int],
    _field(lambda v: _sizes(v, 2), Annotated[str, Field(pattern=SHAPE2_TEXT)], _list_of(PositiveIntForm, 2)),
]
Grid = Annotated[
    tuple[int, int, int],
    _field(lambda v: _sizes(v, 3), PositiveInt, Annotated[str, Field(pattern=GRID_TEXT)], _list_of(PositiveIntForm, 3)),
]
MatrixTile = Annotated[tuple[int, int], _field(_matrix_tile, PositiveIntForm, _list_of(PositiveIntForm, 2))]
GridTile = Annotated[tuple[int, int, int], _field(_grid_tile, PositiveIntForm, _list_of(PositiveIntForm, 3))]
Origin = Annotated[
    tuple[float, float, float],
    _field(_origin, Annotated[str, Field(pattern=ORIGIN_TEXT)], _list_of(NumberForm, 3)),
]
Spacing = Annotated[float, _field(lambda v: _number(v, positive=True), Annotated[float, Field(gt=0)], NumberText)]
Softening = Annotated[float, _field(lambda v: _number(v, nonneg=True), Annotated[float, Field(ge=0)], NumberText)]
Dtype = Annotated[str, _field(_dtype, Literal["float32", "float64"])]
Route = Annotated[str, _field(_route, Literal["auto", "lambda", "spot"])]
Margin = Annotated[float, _field(lambda v: _number(v, nonneg=True), Annotated[float, Field(ge=0)], NumberText)]
UnitsField = Annotated[str, _field(_units, Literal["e/A", "kcal/mol/e", "kT/e"])]
Flag = Annotated[bool, _field(_flag, bool)]
Path = Annotated[str, _field(_path, Annotated[str, Field(pattern=PATH_TEXT)])]

"""The leaf fields of a job spec: each accepted form, its JSON schema, and its conversion.

A field is an ``Annotated`` type whose validator is the field's plain conversion
(``tilefan.domain.spec.field_values``: every form a user may send turned into one canonical
value, or the message the user sees), raised as pydantic's error. ``json_schema_input_type``
states the same forms for the generated schema, so what is accepted and what is
documented come from this one module. Limits that depend on configuration (largest
dimension, tile edge, atom count) are checked later, when the spec is resolved.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator
from pydantic_core import PydanticCustomError

from tilefan.domain.spec import field_values as fv
from tilefan.domain.spec.field_values import (
    FLOAT_DTYPES,
    GRID_TEXT,
    MAX_SEED,
    NONNEG_INT_TEXT,
    NUMBER_TEXT,
    ORIGIN_TEXT,
    PATH_TEXT,
    POSITIVE_INT_TEXT,
    SHAPE2_TEXT,
)

__all__ = ["FLOAT_DTYPES", "MAX_SEED"]


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

    def checked(value: Any) -> Any:
        try:
            return convert(value)
        except fv.FieldValueError as exc:
            raise PydanticCustomError("invalid_spec", "{message}", {"message": str(exc)}) from None

    return PlainValidator(checked, json_schema_input_type=functools.reduce(operator.or_, forms))


# --------------------------------------------------------------------------- the fields

Count = Annotated[int, _field(fv.count, PositiveIntForm)]
Seed = Annotated[int, _field(fv.seed, Annotated[int, Field(ge=0, le=MAX_SEED)], NonNegIntText)]
Stream = Annotated[int, _field(fv.stream, Annotated[int, Field(ge=0)], NonNegIntText)]
Shape2 = Annotated[
    tuple[int, int],
    _field(fv.shape2, Annotated[str, Field(pattern=SHAPE2_TEXT)], _list_of(PositiveIntForm, 2)),
]
Grid = Annotated[
    tuple[int, int, int],
    _field(fv.grid, PositiveInt, Annotated[str, Field(pattern=GRID_TEXT)], _list_of(PositiveIntForm, 3)),
]
MatrixTile = Annotated[tuple[int, int], _field(fv.matrix_tile, PositiveIntForm, _list_of(PositiveIntForm, 2))]
GridTile = Annotated[tuple[int, int, int], _field(fv.grid_tile, PositiveIntForm, _list_of(PositiveIntForm, 3))]
Origin = Annotated[
    tuple[float, float, float],
    _field(fv.origin, Annotated[str, Field(pattern=ORIGIN_TEXT)], _list_of(NumberForm, 3)),
]
Spacing = Annotated[float, _field(fv.spacing, Annotated[float, Field(gt=0)], NumberText)]
Softening = Annotated[float, _field(fv.softening, Annotated[float, Field(ge=0)], NumberText)]
Dtype = Annotated[str, _field(fv.dtype, Literal["float32", "float64"])]
Route = Annotated[str, _field(fv.route, Literal["auto", "lambda", "spot"])]
Margin = Annotated[float, _field(fv.margin, Annotated[float, Field(ge=0)], NumberText)]
UnitsField = Annotated[str, _field(fv.units, Literal["e/A", "kcal/mol/e", "kT/e"])]
Flag = Annotated[bool, _field(fv.flag, bool)]
Path = Annotated[str, _field(fv.path, Annotated[str, Field(pattern=PATH_TEXT)])]

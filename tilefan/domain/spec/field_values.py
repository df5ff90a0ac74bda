"""The leaf fields' conversions, in plain Python: every form a user may send (an integer,
an integral string from the command line, ``"32x48x64"``, ``"1,2,3"``...) turned into one
canonical value, or ``FieldValueError`` with the message the user sees.

The pydantic request models (``tilefan.domain.spec.fields``) wrap these same functions
for the REST door and the OpenAPI schema; the quick reader of well-formed requests
(``tilefan.domain.spec.requests``) calls them directly, so the CLI and the stores never import
pydantic. One function per field means both accept exactly the same values.
"""

from __future__ import annotations

import math
import re
from typing import Any, NoReturn

from tilefan.domain.routing import ROUTES
from tilefan.domain.units import UNITS

FLOAT_DTYPES = ("float32", "float64")


def file_dtype_refusal(uri: str, dtype: str) -> str | None:
    """Why an array read from a file cannot be used, or None: one rule for matrices and atoms
    tables alike. Only float32 and float64 are read; integers are refused, not converted,
    because a silent conversion would change a matrix job's output type and can round
    integers above 2**53."""
    if dtype in FLOAT_DTYPES:
        return None
    return f"{uri} has unsupported dtype {dtype}; use float32 or float64"

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


class FieldValueError(ValueError):
    """A field's value is not one of its accepted forms; the message names what is wrong."""


def _fail(message: str) -> NoReturn:
    """Reject a value; the message reaches the user after the field's name."""
    raise FieldValueError(message)


def _is_whole(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def integer(value: Any, minimum: int, maximum: int | None = None) -> int:
    """An int from an int, an integral float, or integral text (the CLI passes text).

    >>> integer(" 12 ", 1), integer(3.0, 1)
    (12, 3)
    """
    if _is_whole(value) or (isinstance(value, str) and _INT_TEXT.fullmatch(value)):
        value = int(value)
    else:
        _fail(f"must be an integer, got {value!r}")
    if value < minimum:
        _fail(f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        _fail(f"must be at most {maximum}, got {value}")
    return int(value)


def number(value: Any, *, positive: bool = False, nonneg: bool = False) -> float:
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


def sizes(value: Any, ndim: int) -> tuple[int, ...]:
    """``ndim`` positive sizes from "AxB[xC]", a list, or (in 3-D) one edge for a cube.

    >>> sizes("32x48x64", 3), sizes(16, 3), sizes([3, "2"], 2)
    ((32, 48, 64), (16, 16, 16), (3, 2))
    """
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
    return tuple(integer(v, 1) for v in items)


def count(value: Any) -> int:
    return integer(value, 1)


def seed(value: Any) -> int:
    return integer(value, 0, MAX_SEED)


def stream(value: Any) -> int:
    return integer(value, 0)


def shape2(value: Any) -> tuple[int, int]:
    rows, cols = sizes(value, 2)
    return (rows, cols)


def grid(value: Any) -> tuple[int, int, int]:
    x, y, z = sizes(value, 3)
    return (x, y, z)


def matrix_tile(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (integer(value[0], 1), integer(value[1], 1))
    edge = integer(value, 1)
    return (edge, edge)


def grid_tile(value: Any) -> tuple[int, int, int]:
    if isinstance(value, (list, tuple)):
        x, y, z = sizes(value, 3)
        return (x, y, z)
    edge = integer(value, 1)
    return (edge, edge, edge)


def origin(value: Any) -> tuple[float, float, float]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or len(items) != 3:
        _fail(f"must be three numbers x,y,z, got {value!r}")
    x, y, z = (number(v) for v in items)
    return (x, y, z)


def spacing(value: Any) -> float:
    return number(value, positive=True)


def softening(value: Any) -> float:
    return number(value, nonneg=True)


def margin(value: Any) -> float:
    return number(value, nonneg=True)


def units(value: Any) -> str:
    if value not in UNITS:
        _fail(f"must be one of {', '.join(UNITS)}; got {value!r}")
    return str(value)


def dtype(value: Any) -> str:
    text = str(value)
    if text not in FLOAT_DTYPES:
        _fail(f"unsupported dtype {text!r}; use float32 or float64")
    return text


def route(value: Any) -> str:
    if value not in ROUTES:
        _fail(f"must be one of {', '.join(ROUTES)}; got {value!r}")
    return str(value)


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(f"must be true or false, got {value!r}")
    return value


def path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail("must be a non-empty string")
    return value

"""Atom tables: parsing, validation, and the atom-on-a-grid-point check.

The check needs only a grid's geometry (``GridGeometry``), which a resolved atoms spec
has, so this module depends on no spec type and the spec resolver can call it.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Protocol

import numpy as np

from tilefan.domain.spec.field_values import file_dtype_refusal
from tilefan.errors import InvalidSpecError

CSV_COLUMNS = ("x", "y", "z", "energy")


def parse_csv(text: str, field: str = "atoms.file") -> np.ndarray:
    """An N×4 float64 table from CSV text with columns x, y, z, energy.

    A first row of column names is allowed. Errors name the line.

    >>> parse_csv("x,y,z,energy\\n0.5,1,2,-1\\n").tolist()
    [[0.5, 1.0, 2.0, -1.0]]
    """
    rows: list[list[float]] = []
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if lineno == 1 and [c.strip().lower() for c in row] == list(CSV_COLUMNS):
            continue
        if len(row) != 4:
            raise InvalidSpecError(field, f"line {lineno}: expected 4 columns (x, y, z, energy), got {len(row)}")
        try:
            values = [float(cell) for cell in row]
        except ValueError:
            raise InvalidSpecError(field, f"line {lineno}: not a number in {','.join(row)!r}") from None
        rows.append(values)
    if not rows:
        raise InvalidSpecError(field, "holds no atoms")
    return validate_table(np.asarray(rows, dtype=np.float64), field)


def validate_table(table: np.ndarray, field: str = "atoms.file", uri: str = "the atoms table") -> np.ndarray:
    if table.ndim != 2 or table.shape[1] != 4:
        raise InvalidSpecError(field, f"must be an N×4 table (x, y, z, energy), got shape {table.shape}")
    if table.shape[0] == 0:
        raise InvalidSpecError(field, "holds no atoms")
    refusal = file_dtype_refusal(uri, table.dtype.name)  # the same rule, and words, as for matrices
    if refusal:
        raise InvalidSpecError(field, refusal)
    table = table.astype(np.float64, copy=False)
    bad = ~np.isfinite(table)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise InvalidSpecError(field, f"atom {row} has a NaN or inf {CSV_COLUMNS[col]}")
    return table


class GridGeometry(Protocol):
    """Where a grid's points are, and how the kernel sees them."""

    @property
    def grid(self) -> tuple[int, int, int]: ...
    @property
    def origin(self) -> tuple[float, float, float]: ...
    @property
    def spacing(self) -> float: ...
    @property
    def softening(self) -> float: ...
    @property
    def precision(self) -> str: ...


def find_atom_on_grid(table: np.ndarray, spec: GridGeometry) -> tuple[int, tuple[int, int, int]] | None:
    """The first atom that sits exactly on a grid point (in the working precision), or None.

    Only matters with zero softening, where such an atom would make φ infinite.
    """
    pos = table[:, :3]
    origin = np.asarray(spec.origin)
    idx = np.rint((pos - origin) / spec.spacing)
    inside = np.flatnonzero(np.all((idx >= 0) & (idx < np.asarray(spec.grid)), axis=1))
    # All atoms at once (a loop over atoms was most of a 256³ plan's 70 ms): compare as the
    # kernel sees them, both rounded once to the working precision, and the squared
    # distance summed there in the kernel's order, so a distance whose square underflows
    # is zero too.
    point = origin + spec.spacing * idx[inside]
    diff = point.astype(spec.precision) - pos[inside].astype(spec.precision)
    with np.errstate(under="ignore"):
        sq = diff * diff
        hits = ~np.any(diff, axis=1) | ((sq[:, 0] + sq[:, 1]) + sq[:, 2] == 0)
    if not hits.any():
        return None
    a = int(inside[int(np.argmax(hits))])
    i, j, k = (int(v) for v in idx[a])
    return a, (i, j, k)


def check_no_atom_on_grid(table: np.ndarray, spec: GridGeometry, field: str = "atoms") -> None:
    if spec.softening > 0:
        return
    hit = find_atom_on_grid(table, spec)
    if hit is not None:
        a, (i, j, k) = hit
        x, y, z = (float(v) for v in table[a, :3])
        point = np.asarray(spec.origin) + spec.spacing * np.array([i, j, k])
        where = ("sits exactly on" if np.array_equal(point.astype(spec.precision), table[a, :3].astype(spec.precision))
                 else f"is too close for {spec.precision} (the distance squared underflows) to")
        raise InvalidSpecError(
            field,
            f"atom {a} at ({x:g}, {y:g}, {z:g}) {where} grid point ({i}, {j}, {k}); "
            "move it or set a softening length > 0",
        )


def atoms_rtol(precision: str, n_atoms: int) -> float:
    """Tolerance of a computed φ against the float64 reference, relative to Σ|e|/d.

    Rounding grows like sqrt(n) for a sum of n terms; the constant leaves room for the
    reciprocal-square-root approximation in the compiled kernel.

    >>> atoms_rtol("float64", 1000) < 1e-13
    True
    """
    eps = float(np.finfo(precision).eps)
    return 8 * eps * (math.sqrt(n_atoms) + 16)

"""Molecules as atom tables: strict readers for PQR and extended XYZ, and a grid around them.

Both readers turn text into the N×4 float64 table (x, y, z, energy) every atoms job uses,
with the atom's charge (e) as its energy and positions in Å. They are our own, small and
dependency-free so they fit in the Lambda package; tests cross-check the PQR reader against
MDAnalysis on the files MDAnalysisTests ships. A bad file is refused with an error naming
its line and column (1-based, as editors count), never echoing the file's content.

PQR (pdb2pqr, APBS) is whitespace-separated: ``ATOM``/``HETATM``, serial, atom name,
residue name, an optional chain, residue number (an insertion code may follow it), x, y, z,
charge, radius. Other records (REMARK, TER, END...) are skipped.

Extended XYZ: a count line, a comment line whose ``Properties=`` names the columns
(``species:S:1:pos:R:3:charge:R:1``), then one line per atom.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import numpy as np

from tilefan.errors import InvalidSpecError

PQR_FIELDS = ("record", "serial", "atom name", "residue name", "chain", "residue number",
              "x", "y", "z", "charge", "radius")
# A residue number, optionally followed by a one-letter insertion code ("14L").
_RESNUM = re.compile(r"[+-]?[0-9]+[A-Za-z]?")
_TOKEN = re.compile(r"\S+")
# Names extended XYZ writers give the charge column (ASE writes initial_charges).
CHARGE_NAMES = ("charge", "charges", "initial_charges")
_PROPERTIES = re.compile(r"""(?:^|\s)properties=(?:"([^"]*)"|'([^']*)'|(\S+))""", re.IGNORECASE)


class _Bad(Exception):
    """A problem at (line, column); turned into InvalidSpecError by the reader."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


def _tokens(line: str) -> list[tuple[int, str]]:
    """Whitespace-separated tokens with their 1-based columns."""
    return [(m.start() + 1, m.group()) for m in _TOKEN.finditer(line)]


def _number(token: tuple[int, str], lineno: int, what: str) -> float:
    column, text = token
    try:
        value = float(text)
    except ValueError:
        raise _Bad(lineno, column, f"the {what} is not a number") from None
    if not math.isfinite(value):
        raise _Bad(lineno, column, f"the {what} is not finite")
    return value


def _lines(text: str) -> Iterator[tuple[int, str]]:
    yield from enumerate(text.splitlines(), start=1)


def _finish(rows: list[list[float]], field: str, what: str) -> np.ndarray:
    if not rows:
        raise InvalidSpecError(field, f"holds no atoms (no {what})")
    return np.asarray(rows, dtype=np.float64)


def parse_pqr(text: str, field: str = "atoms.file") -> np.ndarray:
    """The N×4 table (x, y, z, charge) of a PQR file's ATOM and HETATM records.

    >>> parse_pqr("REMARK x\\nATOM  1  N   MET  1  1.0 2.0 3.0 -0.30 1.85\\n"
    ...           "HETATM 2 O HOH A 14L 0 0 0.5 0.41 1.4\\nEND\\n").tolist()
    [[1.0, 2.0, 3.0, -0.3], [0.0, 0.0, 0.5, 0.41]]
    >>> try:
    ...     parse_pqr("ATOM 1 N MET 1 1.0 2.0 3.0 1.85\\n")
    ... except InvalidSpecError as exc:
    ...     print(exc.message[:60])
    line 1, column 32: an ATOM record has 9 fields, a PQR one 10
    """
    rows: list[list[float]] = []
    models = 0
    try:
        for lineno, line in _lines(text):
            tokens = _tokens(line)
            if not tokens:
                continue
            record = tokens[0][1].upper()
            if record == "MODEL":
                models += 1
                if models > 1:
                    raise _Bad(lineno, tokens[0][0], "a second MODEL: tilefan reads one structure per file")
            if record not in ("ATOM", "HETATM"):
                continue
            rows.append(_pqr_atom(tokens, lineno, len(line)))
    except _Bad as bad:
        raise InvalidSpecError(field, f"line {bad.line}, column {bad.column}: {bad.message}") from None
    return _finish(rows, field, "ATOM or HETATM records")


def _pqr_atom(tokens: list[tuple[int, str]], lineno: int, width: int) -> list[float]:
    record = tokens[0][1].upper()
    if len(tokens) not in (10, 11):
        # Past the last field for a short record (where the missing one would be).
        column = width + 1 if len(tokens) < 10 else tokens[11][0]
        hint = ": is a column missing, the charge perhaps?" if len(tokens) < 10 else ""
        raise _Bad(lineno, column, f"an {record} record has {len(tokens)} fields, a PQR one 10 or 11 (record, "
                                   "serial, atom name, residue name, [chain,] residue number, x, y, z, charge, "
                                   f"radius){hint}")
    serial, resnum = tokens[1], tokens[-6]
    if not serial[1].lstrip("+-").isdigit():
        raise _Bad(lineno, serial[0], "the serial number is not an integer")
    if not _RESNUM.fullmatch(resnum[1]):
        raise _Bad(lineno, resnum[0], "the residue number is not an integer (with an optional insertion code)")
    # Split from the right: the chain may be absent, the last five fields never are.
    x, y, z, charge, radius = (_number(t, lineno, what) for t, what in
                               zip(tokens[-5:], ("x coordinate", "y coordinate", "z coordinate", "charge",
                                                 "radius"), strict=True))
    if radius < 0:
        raise _Bad(lineno, tokens[-1][0], "the radius is negative")
    return [x, y, z, charge]


def parse_xyz(text: str, field: str = "atoms.file") -> np.ndarray:
    """The N×4 table (x, y, z, charge) of a one-frame extended XYZ file.

    >>> parse_xyz("2\\nProperties=species:S:1:pos:R:3:charge:R:1 pbc=\\"F F F\\"\\n"
    ...           "O 0 0 0.1 -0.8\\nH 0.9 0 0 0.4\\n").tolist()
    [[0.0, 0.0, 0.1, -0.8], [0.9, 0.0, 0.0, 0.4]]
    """
    lines = text.splitlines()
    try:
        return _xyz(lines)
    except _Bad as bad:
        raise InvalidSpecError(field, f"line {bad.line}, column {bad.column}: {bad.message}") from None


def _xyz(lines: list[str]) -> np.ndarray:
    head = _tokens(lines[0]) if lines else []
    if len(head) != 1 or not head[0][1].isdigit() or int(head[0][1]) < 1:
        raise _Bad(1, head[0][0] if head else 1, "the first line must be the number of atoms (an integer >= 1)")
    count = int(head[0][1])
    if len(lines) < 2:
        raise _Bad(2, 1, "the file ends before the comment line (truncated)")
    pos_col, charge_col, width = _xyz_columns(lines[1])
    rows: list[list[float]] = []
    for n in range(count):
        lineno = 3 + n
        if lineno > len(lines):
            raise _Bad(lineno, 1, f"the file ends after {n} of {count} atoms (truncated)")
        tokens = _tokens(lines[lineno - 1])
        if len(tokens) != width:
            column = len(lines[lineno - 1]) + 1 if len(tokens) < width else tokens[width][0]
            raise _Bad(lineno, column, f"an atom line has {len(tokens)} fields; Properties names {width}")
        x, y, z = (_number(tokens[pos_col + i], lineno, f"{'xyz'[i]} coordinate") for i in range(3))
        rows.append([x, y, z, _number(tokens[charge_col], lineno, "charge")])
    for lineno in range(3 + count, len(lines) + 1):
        extra = _tokens(lines[lineno - 1])
        if extra:
            raise _Bad(lineno, extra[0][0], f"more lines after the {count} atoms the first line counts; "
                                            "tilefan reads one frame per file")
    return np.asarray(rows, dtype=np.float64)


def _xyz_columns(comment: str) -> tuple[int, int, int]:
    """(first position column, charge column, columns per line) from the Properties key."""
    match = _PROPERTIES.search(comment)
    if match is None:
        raise _Bad(2, 1, "no Properties= key, so no charge column: write extended XYZ, e.g. "
                         "Properties=species:S:1:pos:R:3:charge:R:1")
    column = match.start(match.lastindex or 1) + 1
    spec = next(g for g in match.groups() if g is not None).split(":")
    if len(spec) % 3:
        raise _Bad(2, column, "Properties must be name:type:count triplets")
    cols: dict[str, tuple[int, str, int]] = {}
    at = 0
    for i in range(0, len(spec), 3):
        name, kind, count = spec[i].lower(), spec[i + 1].upper(), spec[i + 2]
        if kind not in ("S", "R", "I", "L") or not count.isdigit() or int(count) < 1:
            raise _Bad(2, column, f"property {spec[i]!r} has an unknown type or count")
        cols[name] = (at, kind, int(count))
        at += int(count)
    pos = cols.get("pos") or cols.get("positions")
    if pos is None or pos[1:] != ("R", 3):
        raise _Bad(2, column, "Properties has no pos:R:3 column")
    charge = next((cols[n] for n in CHARGE_NAMES if n in cols), None)
    if charge is None or charge[1:] != ("R", 1):
        raise _Bad(2, column, f"Properties has no charge column ({':R:1, '.join(CHARGE_NAMES)}:R:1)")
    return pos[0], charge[0], at


def grid_around(positions: np.ndarray, spacing: float, margin: float) -> tuple[tuple[int, int, int],
                                                                              tuple[float, float, float]]:
    """Grid size and origin covering the atoms' bounding box plus ``margin`` on every side.

    Each axis gets the fewest points spaced ``spacing`` apart that span the box and both
    margins, centred on the box (as APBS and VMD's volmap do), so the atoms at the box's
    faces do not land on grid planes by construction.

    >>> grid_around(np.array([[0.0, 0.0, 0.0], [10.0, 4.0, 0.0]]), 1.0, 2.0)
    ((15, 9, 5), (-2.0, -2.0, -2.0))
    >>> grid_around(np.array([[0.0, 0.0, 0.0], [3.5, 0.0, 0.0]]), 1.0, 0.0)[1]
    (-0.25, 0.0, 0.0)
    """
    lo, hi = positions.min(axis=0), positions.max(axis=0)
    extent = hi - lo + 2 * margin
    # The 1e-9 keeps a span that is a whole number of spacings from gaining a point to rounding.
    counts = [math.ceil(float(e) / spacing - 1e-9) + 1 for e in extent]
    centre = (lo + hi) / 2
    origin = [float(c - spacing * (n - 1) / 2) for c, n in zip(centre, counts, strict=True)]
    return (counts[0], counts[1], counts[2]), (origin[0], origin[1], origin[2])

"""A potential field as a map molecular viewers open: OpenDX (``.dx``) or CCP4/MRC (``.mrc``, ``.ccp4``).

Both carry the grid's origin and spacing, so VMD, ChimeraX and PyMOL place the map on the
molecule. The field is read in slabs and written to a temporary file beside the target,
which is renamed into place only when complete: a failure leaves nothing half-written, and
a map bigger than memory streams.

- DX is text: 3 values a line (VMD's reader needs that), 9 significant digits (a float32
  round-trips), written here with NumPy. It is refused above ``DX_MAX_POINTS``.
- MRC is binary float32 (mode 2) with the conventional axis order (x fastest), written with
  ``mrcfile`` from the ``formats`` extra; the origin is in the header's origin field.
"""

from __future__ import annotations

import io
import os
import tempfile
import uuid
from pathlib import Path
from typing import IO, Any

import numpy as np

from tilefan.errors import InvalidSpecError

MAP_FORMATS = {".dx": "dx", ".mrc": "mrc", ".ccp4": "mrc"}
# 128³: 25.5 MB of text (measured, benchmarks/map_formats.py); beyond it DX is slow to write and to read.
DX_MAX_POINTS = 128**3
FORMATS_HINT = "pip install 'tilefan[formats]'"
# Bytes of field read at once while writing (whole z-slabs for MRC, C-order runs for DX).
_SLAB_BYTES = 32 << 20


def map_format(path: str | os.PathLike[str] | None) -> str | None:
    """"dx" or "mrc" for a map path, None for anything else (a ``.npy``).

    >>> map_format("adk.DX"), map_format("adk.ccp4"), map_format("phi.npy")
    ('dx', 'mrc', None)
    """
    if path is None:
        return None
    return MAP_FORMATS.get(Path(path).suffix.lower())


def check_map(fmt: str, grid: tuple[int, int, int], field: str = "field_out") -> None:
    """Refuse what cannot be written: a DX map over the size limit, an MRC map without mrcfile."""
    points = grid[0] * grid[1] * grid[2]
    if fmt == "dx" and points > DX_MAX_POINTS:
        raise InvalidSpecError(field, f"a {'x'.join(map(str, grid))} grid has {points} points, over the "
                                      f"{DX_MAX_POINTS} (128³) a text DX map is written for; write .mrc instead")
    if fmt == "mrc":
        try:
            import mrcfile  # noqa: F401
        except ModuleNotFoundError:
            raise InvalidSpecError(field, f"MRC maps need the formats extra: {FORMATS_HINT}") from None


def write_map(target: str | os.PathLike[str], field: np.ndarray, origin: tuple[float, float, float],
              spacing: float) -> Path:
    """Write ``field`` (i, j, k → x, y, z; a memmap is fine) as the map ``target``'s suffix names."""
    fmt = map_format(target)
    if fmt is None:
        raise ValueError(f"{target} is not a .dx, .mrc or .ccp4 path")
    check_map(fmt, _grid(field))
    target = Path(target)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        if fmt == "dx":
            with open(partial, "w", encoding="ascii") as out:
                write_dx(out, field, origin, spacing)
        else:
            _write_mrc(partial, field, origin, spacing)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def map_bytes(fmt: str, field: np.ndarray, origin: tuple[float, float, float], spacing: float) -> bytes:
    """The map as bytes (a server's download)."""
    check_map(fmt, _grid(field), "format")
    if fmt == "dx":
        out = io.StringIO()
        write_dx(out, field, origin, spacing)
        return out.getvalue().encode("ascii")
    with tempfile.TemporaryDirectory(prefix="tilefan-map-") as tmp:
        path = Path(tmp) / "field.mrc"
        _write_mrc(path, field, origin, spacing)
        return path.read_bytes()


def _grid(field: np.ndarray) -> tuple[int, int, int]:
    if field.ndim != 3:
        raise ValueError(f"a map needs a 3-D field, got shape {field.shape}")
    return (int(field.shape[0]), int(field.shape[1]), int(field.shape[2]))


def write_dx(out: IO[str], field: np.ndarray, origin: tuple[float, float, float], spacing: float) -> None:
    """OpenDX as APBS writes it: positions, connections, then the values in C order (z fastest)."""
    nx, ny, nz = _grid(field)
    s = repr(float(spacing))
    out.write("# tilefan potential map\n"
              f"object 1 class gridpositions counts {nx} {ny} {nz}\n"
              f"origin {' '.join(repr(float(v)) for v in origin)}\n"
              f"delta {s} 0 0\ndelta 0 {s} 0\ndelta 0 0 {s}\n"
              f"object 2 class gridconnections counts {nx} {ny} {nz}\n"
              f"object 3 class array type double rank 0 items {nx * ny * nz} data follows\n")
    rows = max(1, _SLAB_BYTES // max(1, ny * nz * field.itemsize))
    carry: np.ndarray = np.empty(0, dtype=np.float64)
    for i in range(0, nx, rows):
        values = np.concatenate([carry, np.asarray(field[i:i + rows], dtype=np.float64).ravel()])
        whole = len(values) - len(values) % 3
        np.savetxt(out, values[:whole].reshape(-1, 3), fmt="%.9g")
        carry = values[whole:]
    if len(carry):
        out.write(" ".join(f"{v:.9g}" for v in carry) + "\n")
    out.write('attribute "dep" string "positions"\n'
              'object "potential" class field\n'
              'component "positions" value 1\ncomponent "connections" value 2\ncomponent "data" value 3\n')


def _write_mrc(path: Path, field: np.ndarray, origin: tuple[float, float, float], spacing: float) -> None:
    import mrcfile

    nx, ny, nz = _grid(field)
    # MRC's default axes (mapc, mapr, maps = 1, 2, 3): x varies fastest, so the data block
    # is indexed [z, y, x], the transpose of our [i, j, k]; written a slab of z at a time.
    mrc: Any = mrcfile.new_mmap(str(path), shape=(nz, ny, nx), mrc_mode=2, overwrite=True)
    with mrc:
        step = max(1, _SLAB_BYTES // max(1, nx * ny * field.itemsize))
        for k in range(0, nz, step):
            mrc.data[k:k + step] = np.asarray(field[:, :, k:k + step], dtype=np.float32).transpose(2, 1, 0)
        mrc.voxel_size = float(spacing)
        mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = (float(v) for v in origin)
        mrc.update_header_stats()

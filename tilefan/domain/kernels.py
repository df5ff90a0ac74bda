"""NumPy kernels: the reference implementation, and what tile Lambdas run.

Every kernel works on one tile. The C kernel (``ckernel``) must agree with
these within ``atoms.atoms_rtol`` (they sum the same terms in the same atom order, but
with different rounding of 1/sqrt).
"""

from __future__ import annotations

import math

import numpy as np

from tilefan.domain.tiling import Region

# Points per chunk in the NumPy atoms kernel: temporaries of this size stay in L2 cache.
_CHUNK_POINTS = 1 << 15


def matmul_block(a: np.ndarray, b: np.ndarray, dtype: str, out: np.ndarray | None = None) -> np.ndarray:
    """A·B in ``dtype``, into ``out`` when given (a view with unit column stride stays
    BLAS's own output, with no temporary)."""
    return np.matmul(a.astype(dtype, copy=False), b.astype(dtype, copy=False), out=out)


def block_checksums(block: np.ndarray) -> dict[str, float]:
    """A 2-D block's sum and sum of squares, accumulated in float64 row by row.

    Row by row, so the bits are the same whether the block is an array of its own or a
    strided view into a larger output (an output held in memory), and no copy is made
    (flattening such a view copied it: 24 ms for a 2048² float64 block).

    >>> block_checksums(np.arange(6.0).reshape(2, 3))
    {'sum': 15.0, 'sumsq': 55.0}
    """
    sumsq = np.empty(len(block))
    for i, row in enumerate(block):
        row64 = row if row.dtype == np.float64 else row.astype(np.float64)
        sumsq[i] = np.dot(row64, row64)
    return {"sum": float(block.sum(axis=1, dtype=np.float64).sum()), "sumsq": float(sumsq.sum())}


def add_block(a: np.ndarray, b: np.ndarray, dtype: str, out: np.ndarray | None = None) -> np.ndarray:
    return np.add(a, b, out=out, dtype=dtype)


def grid_axes(
    origin: tuple[float, float, float], spacing: float, region: Region, precision: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates of the region's points along each axis, computed in float64 and then
    rounded once to the working precision (so every kernel sees the same points)."""
    axes = []
    for axis, (start, stop) in enumerate(region):
        coords = origin[axis] + spacing * np.arange(start, stop, dtype=np.float64)
        axes.append(coords.astype(precision))
    return axes[0], axes[1], axes[2]


def atoms_potential(
    table: np.ndarray,
    origin: tuple[float, float, float],
    spacing: float,
    softening: float,
    region: Region,
    precision: str,
) -> np.ndarray:
    """φ over ``region`` by per-atom broadcasting, in ``precision``."""
    xs, ys, zs = grid_axes(origin, spacing, region, precision)
    atoms = table.astype(precision)
    eps2 = np.asarray(softening * softening, dtype=precision)
    phi = np.zeros((len(xs), len(ys), len(zs)), dtype=precision)
    plane = len(ys) * len(zs)
    step = max(1, _CHUNK_POINTS // plane)
    for i0 in range(0, len(xs), step):
        x = xs[i0 : i0 + step]
        out = phi[i0 : i0 + step]
        tmp = np.empty_like(out)
        for ax, ay, az, e in atoms:
            dx2 = (x - ax) ** 2
            dy2 = (ys - ay) ** 2
            dz2 = (zs - az) ** 2 + eps2
            np.add(dx2[:, None, None], dy2[None, :, None], out=tmp)
            tmp += dz2[None, None, :]
            np.sqrt(tmp, out=tmp)
            # A distance of 0 gives inf (or nan with opposite charges): the tile step checks
            # the field and reports it in words, so NumPy's warnings would only add noise.
            with np.errstate(divide="ignore", invalid="ignore"):
                np.divide(e, tmp, out=tmp)
                out += tmp
    return phi


def potential_reference(
    table: np.ndarray, points: np.ndarray, softening: float
) -> tuple[np.ndarray, np.ndarray]:
    """φ and Σ|e|/d at arbitrary points (P×3), in float64: the verification yardstick."""
    pos = table[:, :3]
    energy = table[:, 3]
    d2 = ((points[:, None, :] - pos[None, :, :]) ** 2).sum(axis=2) + softening * softening
    inv = 1.0 / np.sqrt(d2)
    return inv @ energy, inv @ np.abs(energy)


def block_min(phi: np.ndarray, region: Region, grid: tuple[int, int, int]) -> tuple[float, int]:
    """Minimum of a tile's field and its global C-order flat index (lowest on ties).

    Lexicographic (i, j, k) order inside a box is the global C order restricted to it, so
    the first argmin of the block is the lowest global index among the block's minima.
    """
    local = int(np.argmin(phi))
    li, lj, lk = np.unravel_index(local, phi.shape)
    gi, gj, gk = region[0][0] + int(li), region[1][0] + int(lj), region[2][0] + int(lk)
    flat = (gi * grid[1] + gj) * grid[2] + gk
    return float(phi.flat[local]), flat


def finite_block_min(phi: np.ndarray, region: Region, grid: tuple[int, int, int]) -> tuple[float, int] | None:
    """``block_min`` of a tile's field, or None if any value is NaN or infinite.

    Two vectorised passes and no temporary, where ``np.isfinite(phi).all()`` then
    ``block_min`` allocate a mask as large as the field and make three: ``argmin`` stops at
    the first NaN (NumPy orders NaN first) or finds -inf as the minimum, and with neither
    present, only +inf is left, which the maximum shows.

    >>> grid = (1, 2, 3)
    >>> finite_block_min(np.array([[[3.0, -1.0, 2.0], [-1.0, 0.0, 5.0]]]), ((0, 1), (0, 2), (0, 3)), grid)
    (-1.0, 1)
    >>> finite_block_min(np.array([[[3.0, np.inf, 2.0]]]), ((0, 1), (1, 2), (0, 3)), grid) is None
    True
    >>> finite_block_min(np.array([[[3.0, np.nan, -np.inf]]]), ((0, 1), (1, 2), (0, 3)), grid) is None
    True
    """
    value, flat = block_min(phi, region, grid)
    if not math.isfinite(value) or not math.isfinite(float(phi.max())):
        return None
    return value, flat

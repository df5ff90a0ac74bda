"""A real protein's potential map, checked independently of tilefan.

``adk_open.pqr`` from MDAnalysisTests (3,341 atoms, total charge −4 e) is read by
MDAnalysis, not by our reader; φ = Σq/r is summed directly in float64 NumPy over the whole
grid; a written map is read back by GridDataFormats. Every door (CLI, Python API, REST on
both backends, the web page) is checked with ``assert_adk_map``.

Tolerance: |map − φ| ≤ 1e-6 · Σ|q|/r + 4e-6 Å · Σ|q|/r² at every sampled point. The
first term covers MRC's float32 and DX's 9 digits (the kernels agree to ``atoms_rtol``,
far less); the second the float32 positions MDAnalysis keeps (up to 1.9e-6 Å off the
file's three decimals, per coordinate), which move φ most next to an atom.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

SPACING, MARGIN = 1.0, 8.0
TOLERANCE = 1e-6
POSITION_ERROR = 4e-6  # Å: float32 rounding of |x| < 64 is at most 3.8e-6 Å over three coordinates


def adk_path() -> Path:
    from MDAnalysisTests.datafiles import PQR

    return Path(PQR)


@functools.lru_cache(maxsize=1)
def adk_atoms() -> tuple[np.ndarray, np.ndarray]:
    """Positions (Å) and charges (e) as MDAnalysis reads them, in float64."""
    import MDAnalysis

    atoms = MDAnalysis.Universe(str(adk_path())).atoms
    return atoms.positions.astype(np.float64), atoms.charges.astype(np.float64)


def direct_sum(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """φ = Σq/r and the tolerance (see the module) at ``points`` (P×3), in float64."""
    pos, q = adk_atoms()
    # |p − r|² = |p|² + |r|² − 2 p·r about the molecule's centre: a matrix product, and the
    # cancellation it risks stays near 1e-13 relative for distances over 0.1 Å here.
    centre = pos.mean(axis=0)
    pos, points = pos - centre, np.asarray(points, dtype=np.float64) - centre
    rr = (pos**2).sum(axis=1)
    weights = np.stack([q, np.abs(q)], axis=1)
    out, slope = np.empty((len(points), 2)), np.empty(len(points))
    for start in range(0, len(points), 2048):
        chunk = points[start:start + 2048]
        d2 = (chunk**2).sum(axis=1)[:, None] + rr[None, :] - 2.0 * (chunk @ pos.T)
        out[start:start + 2048] = (1.0 / np.sqrt(d2)) @ weights
        slope[start:start + 2048] = (1.0 / d2) @ np.abs(q)
    return out[:, 0], TOLERANCE * out[:, 1] + POSITION_ERROR * slope


def expected_grid() -> tuple[tuple[int, int, int], np.ndarray]:
    """The grid around the molecule, worked out here: the box plus the margin, centred."""
    pos, _ = adk_atoms()
    lo, hi = pos.min(axis=0), pos.max(axis=0)
    counts = np.ceil((hi - lo + 2 * MARGIN) / SPACING - 1e-9).astype(int) + 1
    origin = (lo + hi) / 2 - SPACING * (counts - 1) / 2
    return (int(counts[0]), int(counts[1]), int(counts[2])), origin


def assert_adk_map(path: Path, result: dict[str, Any] | None = None, units_factor: float = 1.0) -> None:
    """``path`` (a .dx or .mrc map) holds φ around adk: origin, spacing, sampled values, minimum."""
    from gridData import Grid

    g = Grid(str(path))
    grid, origin = expected_grid()
    assert g.grid.shape == grid
    # Float32 in an MRC header; MDAnalysis' float32 positions move the box by ~1e-6 Å.
    np.testing.assert_allclose(g.origin, origin, atol=1e-4)
    np.testing.assert_allclose(g.delta, [SPACING] * 3, rtol=1e-7)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, grid, size=(400, 3))
    phi, tol = direct_sum(g.origin + SPACING * idx)
    got = g.grid[tuple(idx.T)] / units_factor
    assert np.all(np.abs(got - phi) <= tol), np.max(np.abs(got - phi) / tol)
    # The minimum: φ at the map's 2,000 lowest points, where any grid point within far more
    # than the tolerance of the minimum lies; its lowest must be the map's.
    low = np.argsort(g.grid, axis=None)[:2000]
    low_idx = np.stack(np.unravel_index(low, grid), axis=1)
    low_phi, low_tol = direct_sum(g.origin + SPACING * low_idx)
    assert g.grid.flat[low[-1]] / units_factor - low_phi.min() > 100 * low_tol.max()
    best = int(np.argmin(low_phi))
    where = tuple(int(v) for v in low_idx[best])
    assert np.unravel_index(int(np.argmin(g.grid)), grid) == where
    if result is not None:
        assert tuple(result["min_index"]) == where
        assert abs(result["min_value"] / units_factor - low_phi[best]) <= low_tol[best]
        np.testing.assert_allclose(result["min_point"], origin + SPACING * np.asarray(where), atol=1e-4)

"""Seeded random inputs that do not depend on how the job is tiled.

A random matrix is cut into fixed 256×256 generation blocks; block (bi, bj) draws from
its own generator keyed by (seed, stream, bi, bj). A tile builds only the blocks that
overlap its region, so every element is a pure function of (seed, stream, i, j, dtype)
whatever the tiling or backend, and no full matrix is ever built centrally.
"""

from __future__ import annotations

import numpy as np

from tilefan.domain.spec.parse import RandomAtoms

GEN_BLOCK = 256


def _block_rng(seed: int, stream: int, bi: int, bj: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream, bi, bj))))


def random_region(
    seed: int, stream: int, dtype: str, rows: tuple[int, int], cols: tuple[int, int]
) -> np.ndarray:
    """Elements [r0:r1, c0:c1] of the seeded matrix, uniform in [-1, 1).

    >>> full = random_region(7, 0, "float64", (0, 300), (0, 300))
    >>> bool((random_region(7, 0, "float64", (250, 300), (10, 270)) == full[250:300, 10:270]).all())
    True
    """
    r0, r1 = rows
    c0, c1 = cols
    out = np.empty((r1 - r0, c1 - c0), dtype=dtype)
    for bi in range(r0 // GEN_BLOCK, -(-r1 // GEN_BLOCK)):
        br0, br1 = bi * GEN_BLOCK, (bi + 1) * GEN_BLOCK
        for bj in range(c0 // GEN_BLOCK, -(-c1 // GEN_BLOCK)):
            bc0, bc1 = bj * GEN_BLOCK, (bj + 1) * GEN_BLOCK
            block = _block_rng(seed, stream, bi, bj).random((GEN_BLOCK, GEN_BLOCK), dtype=np.dtype(dtype).type)
            # Map [0, 1) to [-1, 1): signed inputs exercise cancellation like real data.
            block *= 2
            block -= 1
            ir0, ir1 = max(r0, br0), min(r1, br1)
            ic0, ic1 = max(c0, bc0), min(c1, bc1)
            out[ir0 - r0 : ir1 - r0, ic0 - c0 : ic1 - c0] = block[ir0 - br0 : ir1 - br0, ic0 - bc0 : ic1 - bc0]
    return out


def random_atoms(
    atoms: RandomAtoms, grid: tuple[int, int, int], origin: tuple[float, float, float], spacing: float
) -> np.ndarray:
    """N×4 float64 table: positions uniform inside the grid's box, energies in [-1, 1)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(atoms.seed, spawn_key=(0xA70,))))
    table = np.empty((atoms.count, 4), dtype=np.float64)
    lo = np.asarray(origin, dtype=np.float64)
    extent = spacing * (np.asarray(grid, dtype=np.float64) - 1)
    table[:, :3] = lo + rng.random((atoms.count, 3)) * extent
    table[:, 3] = rng.random(atoms.count) * 2 - 1
    return table

"""Compiled (numba) atoms kernel for the embedded backend and spot workers.

numba's LLVM is far too large for a Lambda package (hundreds of MB against Lambda's
250 MB unzipped limit), so this module is optional: ``load()`` returns None when numba is
missing, and ``kernel_choice`` decides whether to fall back to the NumPy kernel. The loop
is fused (no temporaries) and its inner loop runs over the contiguous last axis so it
vectorises; atoms are summed in the same order as the NumPy kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tilefan.domain.kernels import grid_axes
from tilefan.domain.tiling import Region

_kernel: Any = None


def _compile() -> Any:
    import math

    from numba import njit

    @njit(cache=True, fastmath=True, nogil=True, boundscheck=False, error_model="numpy")
    def phi_block(xs, ys, zs, ax, ay, az, ae, eps2, out):  # type: ignore[no-untyped-def]
        ni, nj, nk = out.shape
        na = ax.shape[0]
        for i in range(ni):
            for j in range(nj):
                row = out[i, j]
                for a in range(na):
                    dx = xs[i] - ax[a]
                    dy = ys[j] - ay[a]
                    dxy = dx * dx + dy * dy + eps2
                    e = ae[a]
                    for k in range(nk):
                        dz = zs[k] - az[a]
                        row[k] += e / math.sqrt(dxy + dz * dz)

    return phi_block


def load() -> Callable[..., np.ndarray] | None:
    """The compiled kernel, compiled (or loaded from numba's cache) on first use."""
    global _kernel
    if _kernel is None:
        try:
            _kernel = _compile()
        except ImportError:
            return None
    return atoms_potential_fast


def atoms_potential_fast(
    table: np.ndarray,
    origin: tuple[float, float, float],
    spacing: float,
    softening: float,
    region: Region,
    precision: str,
) -> np.ndarray:
    if _kernel is None and load() is None:
        raise RuntimeError("the compiled atoms kernel needs numba, which is not installed")
    xs, ys, zs = grid_axes(origin, spacing, region, precision)
    atoms = np.ascontiguousarray(table.T.astype(precision))
    eps2 = np.asarray(softening * softening, dtype=precision)[()]
    phi = np.zeros((len(xs), len(ys), len(zs)), dtype=precision)
    _kernel(xs, ys, zs, atoms[0], atoms[1], atoms[2], atoms[3], eps2, phi)
    return phi

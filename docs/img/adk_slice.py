"""Draws docs/img/adk-slice.png: a slice of the potential map of adk_open.pqr.

The map is the one ``tilefan run atoms --around adk_open.pqr --spacing 1 --margin 8
--field-out adk.mrc`` writes; GridDataFormats reads it, as a viewer would. Run from the
folder holding adk.mrc: ``python docs/img/adk_slice.py adk.mrc docs/img/adk-slice.png``.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from gridData import Grid


def main(source: str, target: str) -> None:
    g = Grid(source)
    k = g.grid.shape[2] // 2  # the plane through the middle of the molecule
    plane = g.grid[:, :, k].T  # rows y, columns x
    # Clip at the 2nd and 98th percentiles: φ spikes near every atom.
    lo, hi = np.percentile(plane, [2, 98])
    limit = max(abs(lo), abs(hi))
    x0, y0, z0 = g.origin
    step = g.delta[0]
    extent = (x0, x0 + step * (plane.shape[1] - 1), y0, y0 + step * (plane.shape[0] - 1))
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=110)
    image = ax.imshow(plane, origin="lower", extent=extent, cmap="RdBu", vmin=-limit, vmax=limit)
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    ax.set_title(f"adk_open.pqr: φ = Σq/r on the plane z = {z0 + step * k:.2f} Å")
    fig.colorbar(image, ax=ax, label="φ (e/Å), clipped at the 2nd/98th percentiles")
    fig.tight_layout()
    fig.savefig(target)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

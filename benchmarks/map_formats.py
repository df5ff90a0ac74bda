"""Writing a 128³ field as .npy, .mrc and .dx (the largest DX tilefan writes), and reading
adk_open.pqr with tilefan's reader and with MDAnalysis, side by side in one run.

    .venv/bin/python benchmarks/map_formats.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import MDAnalysis as mda
import numpy as np
from MDAnalysisTests.datafiles import PQR

from tilefan.adapters.maps import write_map
from tilefan.domain.molecules import parse_pqr


def main() -> None:
    field = np.random.default_rng(0).standard_normal((128, 128, 128))
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("phi.npy", "phi.mrc", "phi.dx"):
            path = Path(tmp) / name
            start = time.perf_counter()
            if path.suffix == ".npy":
                np.save(path, field)
            else:
                write_map(path, field, (0.0, 0.0, 0.0), 1.0)
            print(f"{name}: {time.perf_counter() - start:.2f} s, {path.stat().st_size / 1e6:.1f} MB")
    text = Path(PQR).read_text()
    start = time.perf_counter()
    parse_pqr(text)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    mda.Universe(PQR)
    theirs = time.perf_counter() - start
    print(f"adk_open.pqr: parse_pqr {ours:.3f} s, MDAnalysis.Universe {theirs:.3f} s")


if __name__ == "__main__":
    main()

"""Staging a matmul's stored B as column-panel pieces, and reading a tile's panel back.

The plan step cuts B once into pieces ``B[band, panel]`` (``tilefan.domain.bpanels``),
each its own contiguous ``.npy`` object in the job's space, so a tile reads its panel as
a few whole objects instead of whole rows of all of B. Each band is staged on its own
(``stage_band``: one read of the band's full rows, one write a piece), so a Map can fan the
bands out. A store that reads its arrays through memory maps (``Ports.mapped_reads``: the
embedded file store) stages no ``.npy`` B: there a tile's column block of B is already a
view of B's file (``staged_layout``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tilefan.domain.bpanels import PanelLayout, panel_layout
from tilefan.domain.chunks import chunked_ref
from tilefan.domain.spec.parse import JobSpec, MatrixSpec, StoredMatrix
from tilefan.errors import InvalidBlobError
from tilefan.pipeline.ports import BlobStore, Ports

# Pieces of a band written at once: S3's guidance for one function's throughput is 8–16
# concurrent requests; a band's pieces are 8 MiB each for the big matrices.
STAGE_WRITERS = 8


def panels_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/b-panels"


def piece_key(job_id: str, band: int, panel: int) -> str:
    """
    >>> piece_key("j", 3, 1)
    'jobs/j/b-panels/1/3.npy'
    """
    return f"{panels_prefix(job_id)}/{panel}/{band}.npy"


def stage_band(blobs: BlobStore, job_id: str, b: StoredMatrix, layout: PanelLayout, band: int) -> int:
    """Write band ``band`` of B as one piece per panel; the bytes written. Idempotent: a
    retry writes the same bytes."""
    rows = blobs.read_rows(b.file, layout.bands[band])  # full width: one contiguous read

    def write(panel: int) -> int:
        c0, c1 = layout.panels[panel]
        piece = np.ascontiguousarray(rows[:, c0:c1])
        blobs.write_array(piece_key(job_id, band, panel), piece)
        return piece.nbytes

    # One PUT streams at a fraction of a function's network; a few at once use it all.
    with ThreadPoolExecutor(min(STAGE_WRITERS, len(layout.panels))) as pool:
        return sum(pool.map(write, range(len(layout.panels))))


def staged_layout(ports: Ports, spec: JobSpec) -> PanelLayout | None:
    """The layout B is staged in for this job on these ports, or None: ``panel_layout``'s
    decision, except for a ``.npy`` B on a store that reads arrays through memory maps
    (``mapped_reads``), where a tile's column block is a view and staging would copy B for
    nothing. A Zarr or HDF5 B is decoded chunk by chunk there too, so it is staged as on
    S3. The plan step and each tile both ask this, so they agree without a message."""
    layout = panel_layout(spec)
    if layout is None or not ports.mapped_reads:
        return layout
    assert isinstance(spec, MatrixSpec) and isinstance(spec.b, StoredMatrix)  # what panel_layout checked
    return layout if chunked_ref(spec.b.file) is not None else None


def stage_panels(ports: Ports, job_id: str, spec: JobSpec) -> int:
    """Stage B's panels if ``staged_layout`` says so; the bytes written (0: not staged)."""
    layout = staged_layout(ports, spec)
    if layout is None:
        return 0
    assert isinstance(spec, MatrixSpec) and isinstance(spec.b, StoredMatrix)  # what panel_layout checked
    return sum(stage_band(ports.blobs, job_id, spec.b, layout, band) for band in range(len(layout.bands)))


def read_panel(blobs: BlobStore, job_id: str, layout: PanelLayout, cols: tuple[int, int]) -> np.ndarray:
    """The tile's B panel ``B[:, c0:c1]``, C-contiguous, from its pieces (one read each)."""
    panel = layout.panel_of(cols)
    width = cols[1] - cols[0]
    bands = layout.bands
    out: np.ndarray | None = None
    for band, (r0, r1) in enumerate(bands):
        key = piece_key(job_id, band, panel)
        piece = blobs.read_array(key)
        if piece.shape != (r1 - r0, width) or piece.dtype != np.dtype(layout.dtype):
            raise InvalidBlobError(key, f"holds {piece.shape} {piece.dtype}, not the staged piece of B it should")
        if len(bands) == 1:
            return piece
        if out is None:
            out = np.empty((layout.k, width), dtype=piece.dtype)
        out[r0:r1] = piece
    assert out is not None
    return out

"""B column panels: when a matmul stages its stored B as contiguous panel pieces, and how.

A tile of C = A·B needs B[:, c0:c1], all *k* rows of its columns. In a row-major ``.npy``
object those cells are scattered along every row, so on S3 a tile reads whole rows of B
(``routing.stored_read_bytes``): every tile reads all of B, and a job moves
(tiles) × size(B). Staging cuts B once into pieces ``B[r0:r1, c0:c1]`` (row bands × the
tiles' column ranges), each its own contiguous object in the job's space; a tile then
reads only its panel, the pieces of its column, and a job moves
(tile rows + 2) × size(B): one read and one write to stage, one panel per tile.

Pure: the layout and whether staging pays depend on the spec alone. Whether a job's B is
staged also depends on its store (``tilefan.pipeline.bpanels.staged_layout``: a store that
maps its files reads a ``.npy`` B's column blocks in place), which the plan step and every
tile share, so they agree without a message between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tilefan.domain.routing import LAMBDA_IO_MB_S, PANEL_READ_CHUNK_BYTES, stored_read_bytes
from tilefan.domain.spec.parse import JobSpec, Kind, MatrixInput, MatrixSpec, StoredMatrix
from tilefan.domain.tiling import num_tiles, split, tile_counts

# A band is this many bytes of B's full rows at most: one ranged GET, held in memory with
# one piece while it is cut. For a 65,536² float32 B and 2,048-wide tiles a band is 1,024
# rows and a piece 8 MiB, the part size S3's guidance names for parallel ranged reads.
STAGE_BAND_BYTES = 256 << 20
# The plan step stages B, so the pass (B read once and written once at one function's S3
# rate) must fit the plan function's time budget: its 300 s timeout (.chalice/config.json)
# times the planner's 0.5 margin, less the few seconds planning itself takes. Above it the
# tiles read whole rows as before; fanning the pass out over a Map lifts this ceiling.
PLAN_TIMEOUT_S = 300
STAGE_TIME_BUDGET_S = 0.5 * PLAN_TIMEOUT_S - 5.0
# The rate the decision is taken at: the planner's default per-function S3 rate, not a
# deployment's tuned one, because the plan and every tile must decide alike and tiles get
# no policy.
DECISION_IO_MB_S = LAMBDA_IO_MB_S


@dataclass(frozen=True)
class PanelLayout:
    """B (``k × n``, ``itemsize`` bytes a cell) cut into row bands of ``band_rows`` and
    column panels of ``panel_cols`` (the tiles' column edge): piece (band, panel)."""

    k: int
    n: int
    itemsize: int
    dtype: str
    band_rows: int
    panel_cols: int

    @property
    def bands(self) -> list[tuple[int, int]]:
        return split(self.k, self.band_rows)

    @property
    def panels(self) -> list[tuple[int, int]]:
        return split(self.n, self.panel_cols)

    @property
    def pieces(self) -> int:
        return len(self.bands) * len(self.panels)

    @property
    def nbytes(self) -> int:
        """Bytes of B: what staging reads once and writes once."""
        return self.k * self.n * self.itemsize

    def panel_of(self, cols: tuple[int, int]) -> int:
        """The panel holding a tile's columns (tiles and panels share their column edges).

        >>> PanelLayout(10, 10, 8, "float64", 4, 4).panel_of((4, 8))
        1
        """
        index, rest = divmod(cols[0], self.panel_cols)
        if rest or cols[1] != min(cols[0] + self.panel_cols, self.n):
            raise ValueError(f"columns {cols} are not one of the panels of {self.panel_cols}")
        return index


def input_read(
    m: MatrixInput, rows: int, cols: int, item: int, staged: PanelLayout | None = None
) -> tuple[int, int]:
    """Bytes a tile reads for a ``rows × cols`` block of input ``m``, and the memory that
    reading adds beyond the block itself. A stored matrix is read by whole rows (in chunks
    of PANEL_READ_CHUNK_BYTES when the block is narrower than the matrix), or, for a B
    ``staged`` as panels, as its panel's pieces (one piece at a time); a generated one
    reads nothing, but its block is charged as if read, as it always was."""
    if not isinstance(m, StoredMatrix):
        return rows * cols * item, 0
    size = np.dtype(m.dtype).itemsize
    if staged is not None:
        return rows * cols * size, staged.band_rows * cols * size
    width = m.shape[1]
    read = stored_read_bytes(rows, cols, width, size)
    chunk = min(read, max(PANEL_READ_CHUNK_BYTES, width * size)) if cols < width else 0
    return read, chunk


def a_bytes(spec: MatrixSpec) -> int:
    """What a matmul's tiles read of A, all told: each tile its row panel."""
    item = np.dtype(spec.dtype).itemsize
    k = spec.a.shape[1]
    return sum(input_read(spec.a, r1 - r0, k, item)[0] * len(split(spec.out_shape[1], spec.tile[1]))
               for r0, r1 in split(spec.out_shape[0], spec.tile[0]))


def pays(tile_rows: int, tile_cols: int) -> bool:
    """Whether staging moves fewer bytes than reading B's whole rows from every tile.

    Unstaged, each of the R × C tiles reads all of B when its panel is narrower than B
    (C ≥ 2); staged, B is read and written once and each tile reads its panel: R + 2
    times B. So it pays when R × (C − 1) > 2. One tile column is already the cheap case
    (each panel is whole rows, one contiguous read), so it never stages.

    >>> pays(32, 32), pays(1, 2), pays(2, 2), pays(3, 2), pays(1, 4), pays(8, 1)
    (True, False, False, True, True, False)
    """
    return tile_cols >= 2 and tile_rows * (tile_cols - 1) > 2


def stage_seconds(nbytes: int, io_mb_s: float) -> float:
    """Estimated time of the staging pass: B read once and written once.

    >>> round(stage_seconds(65_536 ** 2 * 4, 60.0), 1)  # a 65,536² float32 B at 60 MB/s
    572.7
    """
    return 2 * nbytes / (io_mb_s * 1e6)


def candidate_layout(spec: JobSpec) -> PanelLayout | None:
    """The layout B would be staged in: a matmul of a stored B where staging pays (``pays``),
    whether or not the pass fits the plan step (``panel_layout``).

    >>> from tilefan.domain.spec.parse import RandomMatrix
    >>> a = StoredMatrix(file="A.npy", shape=(4096, 4096), dtype="float32")
    >>> b = StoredMatrix(file="B.npy", shape=(4096, 4096), dtype="float32")
    >>> candidate_layout(MatrixSpec(Kind.MATMUL, a, b, None, (1024, 1024), False))
    PanelLayout(k=4096, n=4096, itemsize=4, dtype='float32', band_rows=4096, panel_cols=1024)
    >>> candidate_layout(MatrixSpec(Kind.MATMUL, a, b, None, (1024, 4096), False)) is None  # one tile column
    True
    >>> r = RandomMatrix(shape=(4096, 4096), dtype="float32", seed=1, stream=1)
    >>> candidate_layout(MatrixSpec(Kind.MATMUL, a, r, None, (1024, 1024), False)) is None
    True
    """
    if not isinstance(spec, MatrixSpec) or spec.kind is not Kind.MATMUL or not isinstance(spec.b, StoredMatrix):
        return None
    tile_rows, tile_cols = tile_counts(spec.out_shape, spec.tile)
    if not pays(tile_rows, tile_cols):
        return None
    k, n = spec.b.shape
    itemsize = np.dtype(spec.b.dtype).itemsize
    band_rows = max(1, min(k, STAGE_BAND_BYTES // max(1, n * itemsize)))
    return PanelLayout(k, n, itemsize, spec.b.dtype, band_rows, min(spec.tile[1], n))


def panel_layout(spec: JobSpec) -> PanelLayout | None:
    """The layout B is staged in for this job, or None when its tiles read whole rows of B
    as before: staging does not pay, or its pass would not fit the plan step's budget."""
    layout = candidate_layout(spec)
    if layout is None or stage_seconds(layout.nbytes, DECISION_IO_MB_S) > STAGE_TIME_BUDGET_S:
        return None
    return layout


@dataclass(frozen=True)
class StagingReport:
    """What staging B does to a job's reads: the plan's ``b_panels`` section."""

    layout: PanelLayout
    staged: bool
    est_s: float  # the staging pass, in the plan step (0 when not staged)
    pass_s: float  # what the pass would take, staged or not
    tiles: int
    tile_b_unstaged: int  # B bytes one full-width tile reads: whole rows of B
    tile_b_staged: int  # its panel
    a_bytes: int  # A bytes all tiles read (the same either way)

    @property
    def job_unstaged(self) -> int:
        return self.a_bytes + self.tiles * self.tile_b_unstaged

    @property
    def job_staged(self) -> int:
        """Tiles' reads plus the staging pass's read of B (its write is ``layout.nbytes`` more)."""
        return self.a_bytes + self._panels_total() + self.layout.nbytes

    def _panels_total(self) -> int:
        # Every tile row reads each panel once: all of B per tile row.
        return self.tiles // len(self.layout.panels) * self.layout.nbytes

    def to_dict(self) -> dict[str, object]:
        return {
            "staged": self.staged, "panels": len(self.layout.panels), "bands": len(self.layout.bands),
            "pieces": self.layout.pieces, "band_rows": self.layout.band_rows, "panel_cols": self.layout.panel_cols,
            "stage_bytes_read": self.layout.nbytes if self.staged else 0,
            "stage_bytes_written": self.layout.nbytes if self.staged else 0,
            "est_stage_s": round(self.est_s, 3), "stage_pass_s": round(self.pass_s, 3),
            "stage_budget_s": STAGE_TIME_BUDGET_S,
            "tile_b_bytes": {"unstaged": self.tile_b_unstaged, "staged": self.tile_b_staged},
            "job_bytes_in": {"unstaged": self.job_unstaged, "staged": self.job_staged},
        }


def staging_report(spec: JobSpec, a_read: int, io_mb_s: float) -> StagingReport | None:
    """The ``b_panels`` section of a plan whose B could be staged; None when it could not.
    ``a_read``: what the plan's tiles read of A. The pass is timed at ``io_mb_s`` (the
    policy's rate); whether it runs is ``panel_layout``'s decision.

    >>> from tilefan.domain.spec.parse import StoredMatrix as S
    >>> a, b = (S(file=f, shape=(8, 8), dtype="float64") for f in "AB")
    >>> m = MatrixSpec(Kind.MATMUL, a, b, None, (2, 2), False)
    >>> r = staging_report(m, 16 * 2 * 8 * 8, 60.0)
    >>> r.staged, r.tile_b_unstaged, r.tile_b_staged, r.job_unstaged, r.job_staged
    (True, 512, 128, 10240, 4608)
    """
    layout = candidate_layout(spec)
    if layout is None:
        return None
    assert isinstance(spec, MatrixSpec)
    staged = panel_layout(spec) is not None
    pass_s = stage_seconds(layout.nbytes, io_mb_s)
    return StagingReport(
        layout=layout, staged=staged, est_s=pass_s if staged else 0.0, pass_s=pass_s,
        tiles=num_tiles(spec.out_shape, spec.tile), tile_b_unstaged=layout.nbytes,
        tile_b_staged=layout.k * layout.panel_cols * layout.itemsize, a_bytes=a_read,
    )

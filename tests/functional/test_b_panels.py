"""A matmul of a stored B cuts B into column-panel pieces once, at plan time, on a store
whose reads are requests (S3 and DynamoDB in moto, memory): each tile then reads its A row
panel and only its own B panel's pieces, never B itself, the answer is the one the
unstaged tiles give, and the pieces are gone once the job has succeeded. On the store that
reads through memory maps (files and SQLite) a tile's column block of B is a view of B's
file: nothing is staged, and each tile reads A and B themselves, with the same answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from tests.functional.pipeline_storage import Storage
from tests.helpers import ForwardingBlobs, normal_pair, start_job
from tilefan.domain import bpanels
from tilefan.domain.bpanels import panel_layout
from tilefan.pipeline.bpanels import panels_prefix, piece_key
from tilefan.pipeline.ports import BlobStore, Ports
from tilefan.pipeline.reduce import reduce_job
from tilefan.pipeline.tile import TileOutcome, run_tile

SHAPE_A, SHAPE_B, TILE = (40, 50), (50, 36), 12  # 4 tile rows × 3 tile columns: staging pays


class ReadLog(ForwardingBlobs):
    """The blob store, with every read's key written down; writes and the rest go straight
    through (and the adapter set's capabilities stay the real store's)."""

    def __init__(self, blobs: BlobStore) -> None:
        super().__init__(blobs)
        self.keys: list[str] = []

    def read_rows(self, key: str, rows: tuple[int, int], cols: tuple[int, int] | None = None) -> np.ndarray:
        self.keys.append(key)
        return super().read_rows(key, rows, cols)

    def read_array(self, key: str) -> np.ndarray:
        self.keys.append(key)
        return super().read_array(key)


def run(storage: Storage, ports: Ports, a: np.ndarray, b: np.ndarray) -> tuple[str, np.ndarray, dict[int, list[str]]]:
    """Run the job: its id, its output and each tile's reads."""
    inputs = storage.inputs(a, b)
    out = storage.user_key("C.npy")
    job_id, tiles = start_job(ports, {"kind": "matmul", **inputs, "out": out, "tile": TILE})
    reads: dict[int, list[str]] = {}
    for tile_id in tiles:
        log = ReadLog(ports.blobs)
        assert run_tile(replace(ports, blobs=log), job_id, tile_id).outcome is TileOutcome.RECORDED
        reads[tile_id] = log.keys
    reduce_job(ports, job_id)
    return job_id, ports.blobs.read_array(out), reads


def staged_keys(storage: Storage, job_id: str) -> list[str]:
    return [k for k in storage.be.stored() if panels_prefix(job_id) in k]


def bands(monkeypatch: pytest.MonkeyPatch, rows: int, itemsize: int = 8) -> None:
    """Bands of ``rows`` rows of B, so a panel comes in several pieces."""
    monkeypatch.setattr(bpanels, "STAGE_BAND_BYTES", rows * SHAPE_B[1] * itemsize)


def test_each_tile_reads_only_its_own_panel_and_the_answer_is_unchanged(
    storage: Storage, ports: Ports, monkeypatch: pytest.MonkeyPatch,
) -> None:
    bands(monkeypatch, 16)  # 50 rows: bands of 16, 16, 16 and 2
    a, b = normal_pair(5, SHAPE_A, SHAPE_B)
    job_id, c, reads = run(storage, ports, a, b)
    np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12 * SHAPE_A[1])

    a_key, b_key = storage.inputs(a, b)["a"]["file"], storage.inputs(a, b)["b"]["file"]
    for tile_id, keys in reads.items():
        column = tile_id % 3
        if ports.mapped_reads:  # B's columns read in place: no pieces
            assert keys == [a_key, b_key], keys
            continue
        # A's row panel, then the tile's four pieces of B, in band order; never B itself.
        assert keys == [a_key] + [piece_key(job_id, band, column) for band in range(4)], keys
        assert b_key not in keys
    assert staged_keys(storage, job_id) == []  # dropped once the job succeeded, or never written

    # The same job with staging switched off reads B's whole rows and gets the same bits.
    monkeypatch.setattr(bpanels, "STAGE_TIME_BUDGET_S", -1.0)
    job_id, unstaged, reads = run(storage, ports, a, b)
    assert all(b_key in keys for keys in reads.values())
    np.testing.assert_array_equal(unstaged, c, strict=True)


def test_the_plan_step_writes_every_piece_once_and_exactly_the_columns_of_b(
    storage: Storage, ports: Ports, monkeypatch: pytest.MonkeyPatch,
) -> None:
    bands(monkeypatch, 20, itemsize=4)
    a, b = normal_pair(6, SHAPE_A, SHAPE_B, "float32", "float32")
    job_id, _ = start_job(ports, {"kind": "matmul", **storage.inputs(a, b), "tile": TILE})
    if ports.mapped_reads:
        assert staged_keys(storage, job_id) == []  # nothing to gain from a copy of B here
        return
    assert len(staged_keys(storage, job_id)) == 3 * 3  # bands of 20, 20, 10 × panels of 12
    for band, (r0, r1) in enumerate([(0, 20), (20, 40), (40, 50)]):
        for panel, (c0, c1) in enumerate([(0, 12), (12, 24), (24, 36)]):
            piece = ports.blobs.read_array(piece_key(job_id, band, panel))
            np.testing.assert_array_equal(piece, b[r0:r1, c0:c1], strict=True)
            assert piece.flags.c_contiguous


@pytest.mark.parametrize("tile", [[40, 18], [40, 36]])
def test_when_staging_does_not_pay_nothing_is_staged(storage: Storage, ports: Ports, tile: Sequence[int]) -> None:
    """One tile row of two tiles reads B twice either way (and staging would add a read and
    a write); one tile column reads B's full rows, already contiguous."""
    a, b = normal_pair(7, SHAPE_A, SHAPE_B)
    job_id, _ = start_job(ports, {"kind": "matmul", **storage.inputs(a, b), "tile": list(tile)})
    assert panel_layout(ports.jobs.get_job(job_id).spec) is None
    assert staged_keys(storage, job_id) == []


def test_pieces_a_job_was_staged_in_are_dropped_when_it_succeeds(storage: Storage, ports: Ports) -> None:
    """Whatever this store does now: a job an earlier version staged on a store that now
    reads B in place leaves none of its pieces behind either."""
    a, b = normal_pair(8, SHAPE_A, SHAPE_B)
    job_id, tiles = start_job(ports, {"kind": "matmul", **storage.inputs(a, b), "tile": TILE})
    layout = panel_layout(ports.jobs.get_job(job_id).spec)
    assert layout is not None and len(layout.bands) == 1
    ports.blobs.write_array(piece_key(job_id, 0, 0), np.ascontiguousarray(b[:, :TILE]))  # as staging writes it
    for tile_id in tiles:
        assert run_tile(ports, job_id, tile_id).outcome is TileOutcome.RECORDED
    assert reduce_job(ports, job_id).status.value == "SUCCEEDED"
    assert staged_keys(storage, job_id) == []

"""The planner charges what reading a stored matrix costs on S3: a block narrower than the
matrix is read as whole rows (in chunks), so its bytes, its time and its bill grow with the
matrix's width, and a big matmul from uploaded files is refused by the cost guardrail."""

from __future__ import annotations

from typing import Any

import pytest

from tilefan.domain.plan import plan
from tilefan.domain.routing import PANEL_READ_CHUNK_BYTES, RoutePolicy, stored_read_bytes
from tilefan.domain.spec import Limits, parse_spec
from tilefan.errors import InvalidSpecError
from tilefan.pipeline.guardrails import check_guardrails

N = 65_536
BIG = Limits(max_matrix_elements=1 << 40)


def stored(shape: tuple[int, int], dtype: str = "float32") -> Any:
    return lambda uri: (shape, dtype)


def matmul(files: bool, tile: int = 2048) -> Any:
    inputs = {"a": {"file": "uploads/A.npy"}, "b": {"file": "uploads/B.npy"}} if files else \
        {"a": {"shape": [N, N]}, "b": {"shape": [N, N]}}
    raw = {"kind": "matmul", **inputs, "dtype": "float32", "tile": tile}
    return parse_spec(raw, limits=BIG, inspect=stored((N, N)))


def test_a_stored_b_column_panel_is_charged_as_its_whole_rows() -> None:
    generated, uploaded = plan("g", matmul(files=False)).tiles[0], plan("u", matmul(files=True)).tiles[0]
    a_panel = 2048 * N * 4
    assert generated.bytes_in == a_panel + N * 2048 * 4  # the panels alone (1.07 GB)
    assert uploaded.bytes_in == a_panel + N * N * 4  # A's row panel and every row of B: 17.7 GB
    # Memory holds the panels (read in chunks), not B's 17.2 GB of full rows.
    assert uploaded.mem_bytes == generated.mem_bytes + PANEL_READ_CHUNK_BYTES
    assert uploaded.mem_bytes < RoutePolicy().lambda_memory_budget
    # 17.2 GB more at the function's S3 rate (300 MB/s: 55 s more a tile), 16 times the
    # generated tile's I/O.
    io_rate = RoutePolicy().lambda_io_mb_s * 1e6
    assert uploaded.lambda_s - generated.lambda_s == pytest.approx((N * N * 4 - N * 2048 * 4) / io_rate)


def test_a_big_matmul_from_uploaded_files_is_refused_by_the_cost_guardrail() -> None:
    limits = Limits(max_matrix_elements=1 << 40)
    check_guardrails(matmul(files=False), limits)  # $4.91: fits the $10 default
    with pytest.raises(InvalidSpecError, match="TILEFAN_MAX_COST_USD"):
        check_guardrails(matmul(files=True), limits)


def test_a_tile_as_wide_as_the_matrix_reads_only_its_rows() -> None:
    spec = parse_spec({"kind": "add", "a": {"file": "A.npy"}, "b": {"file": "B.npy"}, "tile": [64, 512]},
                      inspect=stored((512, 512), "float64"))
    assert {t.bytes_in for t in plan("w", spec).tiles} == {2 * 64 * 512 * 8}
    narrow = parse_spec({"kind": "add", "a": {"file": "A.npy"}, "b": {"file": "B.npy"}, "tile": [64, 128]},
                        inspect=stored((512, 512), "float64"))
    # Four column blocks a row band: each reads the band's whole rows of both inputs.
    assert {t.bytes_in for t in plan("n", narrow).tiles} == {2 * stored_read_bytes(64, 128, 512, 8)}
    assert stored_read_bytes(64, 128, 512, 8) == 4 * 64 * 128 * 8


def test_the_time_here_estimate_charges_the_blocks_a_local_read_touches() -> None:
    from tilefan.domain.local_estimate import LocalRates, estimate_here

    files = parse_spec({"kind": "matmul", "a": {"file": "A.npy"}, "b": {"file": "B.npy"}, "tile": 256},
                       inspect=stored((1024, 1024), "float64"))
    generated = parse_spec({"kind": "matmul", "a": {"shape": [1024, 1024]}, "b": {"shape": [1024, 1024]},
                            "tile": 256})
    assert plan("f", files).tiles[0].bytes_in > plan("g", generated).tiles[0].bytes_in  # on S3: whole rows
    here = [estimate_here(plan(n, s), s, 2, LocalRates()) for n, s in (("f", files), ("g", generated))]
    assert here[0].tiles_s == pytest.approx(here[1].tiles_s)  # here: memory-mapped panels

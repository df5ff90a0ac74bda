"""The planner charges what reading a stored matrix costs on S3: a block narrower than the
matrix is read as whole rows (in chunks), so its bytes, its time and its bill grow with the
matrix's width, and a big matmul from uploaded files is refused by the cost guardrail."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tilefan.domain import bpanels
from tilefan.domain.plan import plan
from tilefan.domain.routing import PANEL_READ_CHUNK_BYTES, stored_read_bytes
from tilefan.domain.spec.parse import Limits, parse_spec
from tilefan.errors import InvalidSpecError
from tilefan.pipeline.guardrails import check_guardrails
from tilefan.settings import list_policy

POLICY = list_policy()  # the planner's defaults at the list prices
N = 65_536
BIG = Limits(max_matrix_elements=1 << 40)


def stored(shape: tuple[int, int], dtype: str = "float32") -> Any:
    return lambda uri: (shape, dtype)


def matmul(files: bool, tile: int = 2048) -> Any:
    inputs = {"a": {"file": "uploads/A.npy"}, "b": {"file": "uploads/B.npy"}} if files else \
        {"a": {"shape": [N, N]}, "b": {"shape": [N, N]}}
    raw = {"kind": "matmul", **inputs, "dtype": "float32", "tile": tile}
    return parse_spec(raw, limits=BIG, inspect=stored((N, N)))


@pytest.fixture
def unstaged(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 60 MB/s the 65,536² staging pass (17.2 GB read and written) no longer fits the
    plan step's budget, so B is not staged and each tile reads whole rows of it."""
    monkeypatch.setattr(bpanels, "DECISION_IO_MB_S", 60.0)


def test_a_staged_b_is_read_as_its_panel_alone() -> None:
    generated = plan("g", matmul(files=False), POLICY).tiles[0]
    uploaded = plan("u", matmul(files=True), POLICY).tiles[0]
    assert uploaded.bytes_in == generated.bytes_in == 2048 * N * 4 + N * 2048 * 4


@pytest.mark.usefixtures("unstaged")
def test_a_stored_b_column_panel_is_charged_as_its_whole_rows() -> None:
    generated = plan("g", matmul(files=False), POLICY).tiles[0]
    uploaded = plan("u", matmul(files=True), POLICY).tiles[0]
    a_panel = 2048 * N * 4
    assert generated.bytes_in == a_panel + N * 2048 * 4  # the panels alone (1.07 GB)
    assert uploaded.bytes_in == a_panel + N * N * 4  # A's row panel and every row of B: 17.7 GB
    # Memory holds the panels (read in chunks), not B's 17.2 GB of full rows.
    assert uploaded.mem_bytes == generated.mem_bytes + PANEL_READ_CHUNK_BYTES
    assert uploaded.mem_bytes < POLICY.lambda_memory_budget
    # 17.2 GB more at the function's S3 rate (300 MB/s: 55 s more a tile), 16 times the
    # generated tile's I/O.
    io_rate = POLICY.lambda_io_mb_s * 1e6
    assert uploaded.lambda_s - generated.lambda_s == pytest.approx((N * N * 4 - N * 2048 * 4) / io_rate)


def test_a_big_matmul_from_uploaded_files_fits_the_cost_guardrail_once_b_is_staged() -> None:
    limits = Limits(max_matrix_elements=1 << 40)
    check_guardrails(matmul(files=False), limits)
    check_guardrails(matmul(files=True), limits)  # B staged: tiles read their panels alone


@pytest.mark.usefixtures("unstaged")
def test_a_big_matmul_from_uploaded_files_is_refused_by_the_cost_guardrail_when_b_is_not_staged() -> None:
    limits = Limits(max_matrix_elements=1 << 40)
    check_guardrails(matmul(files=False), limits)
    with pytest.raises(InvalidSpecError, match="TILEFAN_MAX_COST_USD"):
        check_guardrails(matmul(files=True), limits)


def test_a_tile_as_wide_as_the_matrix_reads_only_its_rows() -> None:
    spec = parse_spec({"kind": "add", "a": {"file": "A.npy"}, "b": {"file": "B.npy"}, "tile": [64, 512]},
                      inspect=stored((512, 512), "float64"))
    assert {t.bytes_in for t in plan("w", spec, POLICY).tiles} == {2 * 64 * 512 * 8}
    narrow = parse_spec({"kind": "add", "a": {"file": "A.npy"}, "b": {"file": "B.npy"}, "tile": [64, 128]},
                        inspect=stored((512, 512), "float64"))
    # Four column blocks a row band: each reads the band's whole rows of both inputs.
    assert {t.bytes_in for t in plan("n", narrow, POLICY).tiles} == {2 * stored_read_bytes(64, 128, 512, 8)}
    assert stored_read_bytes(64, 128, 512, 8) == 4 * 64 * 128 * 8


def test_the_time_here_estimate_charges_the_blocks_a_local_read_touches() -> None:
    from tilefan.domain.local_estimate import LocalRates, estimate_here

    # One tile row of two tiles: B is not staged as panels (it would not pay), so on S3
    # each tile reads whole rows of B.
    files = parse_spec({"kind": "matmul", "a": {"file": "A.npy"}, "b": {"file": "B.npy"}, "tile": [1024, 512]},
                       inspect=stored((1024, 1024), "float64"))
    generated = parse_spec({"kind": "matmul", "a": {"shape": [1024, 1024]}, "b": {"shape": [1024, 1024]},
                            "tile": [1024, 512]})
    # On S3: whole rows.
    assert plan("f", files, POLICY).tiles[0].bytes_in > plan("g", generated, POLICY).tiles[0].bytes_in
    here = [estimate_here(plan(n, s, POLICY), s, 2, LocalRates()) for n, s in (("f", files), ("g", generated))]
    assert here[0].tiles_s == pytest.approx(here[1].tiles_s)  # here: memory-mapped panels


def test_a_staged_b_is_charged_its_panel_and_the_pass_is_charged_to_the_plan_step() -> None:
    n = 32_768
    spec = parse_spec({"kind": "matmul", "a": {"file": "A.npy"}, "b": {"file": "B.npy"}, "tile": 2048},
                      limits=BIG, inspect=stored((n, n)))
    staged = plan("s", spec, POLICY)
    b = staged.b_panels
    assert b is not None and b.staged and (len(b.layout.panels), len(b.layout.bands)) == (16, 16)
    tile = staged.tiles[0]
    assert tile.bytes_in == 2048 * n * 4 + n * 2048 * 4  # A's row panel and B's column panel
    # One 16.8 MB piece, no 64 MiB chunk.
    assert tile.mem_bytes < plan("g", matmul(files=False), POLICY).tiles[0].mem_bytes
    # The pass, B read and written once at one function's S3 rate, is the plan function's:
    # in its GB-s.
    assert b.est_s == pytest.approx(2 * n * n * 4 / (POLICY.lambda_io_mb_s * 1e6))
    assert staged.cost is not None
    tiles_gb_s = sum(t.lambda_s for t in staged.tiles) * 10
    assert staged.cost.lambda_gb_s == pytest.approx(tiles_gb_s + b.est_s * 3008 / 1024)
    manifest = staged.manifest()["b_panels"]
    assert manifest["tile_b_bytes"] == {"unstaged": n * n * 4, "staged": n * 2048 * 4}
    assert manifest["job_bytes_in"]["unstaged"] == sum(2048 * n * 4 + n * n * 4 for _ in staged.tiles)
    assert manifest["job_bytes_in"]["staged"] == sum(t.bytes_in for t in staged.tiles) + n * n * 4


@pytest.mark.usefixtures("unstaged")
def test_a_b_whose_pass_would_overrun_the_plan_step_is_not_staged_but_the_plan_says_what_it_would_save() -> None:
    the_plan = plan("u", matmul(files=True), POLICY)  # 65,536²: 34.4 GB through one function, 573 s at 60 MB/s
    b = the_plan.b_panels
    assert b is not None and not b.staged and b.est_s == 0.0
    assert the_plan.tiles[0].bytes_in == 2048 * N * 4 + N * N * 4  # whole rows, as before
    assert b.job_unstaged == sum(t.bytes_in for t in the_plan.tiles)
    assert b.job_unstaged / b.job_staged == pytest.approx(16.2, abs=0.1)


@pytest.mark.parametrize(("b_file", "mapped", "staged"), [
    ("uploads/B.npy", False, True),  # S3: staging pays
    ("uploads/B.npy", True, False),  # a mapped file: a tile's columns are a view of it
    ("uploads/B.zarr", True, True),  # chunks are decoded, not mapped: staged as on S3
    ("uploads/B.h5:/B", True, True),
])
def test_a_store_that_maps_its_files_stages_only_a_chunked_b(b_file: str, mapped: bool, staged: bool) -> None:
    from tilefan.adapters.memory import memory_ports
    from tilefan.pipeline.bpanels import staged_layout

    raw = {"kind": "matmul", "a": {"file": "uploads/A.npy"}, "b": {"file": b_file}, "tile": 1024}
    spec = parse_spec(raw, inspect=stored((4096, 4096)))
    assert bpanels.panel_layout(spec) is not None  # 4 × 4 tiles: staging pays on the spec alone
    ports = replace(memory_ports(), mapped_reads=mapped)
    assert (staged_layout(ports, spec) is not None) is staged

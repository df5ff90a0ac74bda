"""The dry run's "time here": the pool's start, the tiles on the workers, the merge."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tilefan.domain.local_estimate import LocalRates, estimate_here, makespan
from tilefan.domain.plan import plan
from tilefan.domain.spec.parse import parse_spec
from tilefan.entrypoints.report.plan_table import plan_table, time_here
from tilefan.settings import list_policy

POLICY = list_policy()  # the planner's defaults at the list prices
MATMUL = {"kind": "matmul", "a": {"shape": [3000, 2000]}, "b": {"shape": [2000, 1000]}, "seed": 7}


@given(st.lists(st.floats(0.001, 100.0), min_size=1, max_size=40), st.integers(1, 8))
def test_the_makespan_is_between_the_even_share_and_the_even_share_plus_the_longest(
    durations: list[float], workers: int
) -> None:
    span = makespan(sorted(durations, reverse=True), workers)
    share = sum(durations) / min(workers, len(durations))
    assert max(durations) - 1e-9 <= span and share - 1e-6 <= span <= share + max(durations) + 1e-6


def test_a_one_tile_job_starts_no_pool_and_more_tiles_do() -> None:
    rates = LocalRates()
    one = parse_spec({**MATMUL, "tile": 4096})
    many = parse_spec({**MATMUL, "tile": 500})
    single = estimate_here(plan("j", one, POLICY), one, 2, rates)
    spread = estimate_here(plan("j", many, POLICY), many, 2, rates)
    assert (single.pool_s, single.workers) == (0.0, 1)
    assert (spread.pool_s, spread.workers) == (rates.pool_start_s, 2)
    # Every tile pays the fixed cost: 24 tiles of the same work cost more than one.
    assert spread.tiles_s * 2 > single.tiles_s


def test_verification_is_counted_in_the_merge_by_the_bytes_it_reads() -> None:
    rates = LocalRates()
    plain, checked = parse_spec(MATMUL), parse_spec({**MATMUL, "verify": True})
    a = estimate_here(plan("j", plain, POLICY), plain, 2, rates)
    b = estimate_here(plan("j", checked, POLICY), checked, 2, rates)
    read = 8 * (3000 * 2000 + 2000 * 1000 + 3000 * 1000)
    assert abs((b.merge_s - a.merge_s) - read / (rates.verify_mb_s * 1e6)) < 1e-9
    assert a.tiles_s == b.tiles_s


def test_the_compiled_atoms_kernel_is_estimated_faster() -> None:
    spec = parse_spec({"kind": "atoms", "grid": 64, "atoms": {"count": 500, "seed": 1}})
    the_plan = plan("j", spec, POLICY)
    numpy, compiled = (estimate_here(the_plan, spec, 2, LocalRates(), compiled=c).tiles_s for c in (False, True))
    assert compiled < numpy
    assert time_here(the_plan, spec, 2, "numpy").tiles_s == numpy


def test_the_table_shows_the_parts_of_the_time_here() -> None:
    spec = parse_spec({**MATMUL, "verify": True})
    the_plan = plan("j", spec, POLICY)
    here = time_here(the_plan, spec, 2, "numpy")
    line = next(x for x in plan_table(the_plan.manifest(), here).splitlines() if x.startswith("time"))
    assert f"~{here.total_s:.2f} s here (2 workers: {here.pool_s:.2f} s start" in line
    assert "on AWS" in plan_table(the_plan.manifest()) and "here" not in plan_table(the_plan.manifest())

"""The dry run's "time here": the pool's start, the tiles on the workers, the merge."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tilefan.domain.inline_tiles import runs_inline
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
    add = {**MATMUL, "kind": "add", "b": {"shape": [3000, 2000]}}
    one = parse_spec({**add, "tile": 4096})
    many = parse_spec({**add, "tile": 500})
    single = estimate_here(plan("j", one, POLICY), one, 2, rates)
    spread = estimate_here(plan("j", many, POLICY), many, 2, rates)
    assert (single.pool_s, single.workers, single.inline) == (0.0, 1, True)
    assert (spread.pool_s, spread.workers, spread.inline) == (rates.pool_start_s, 2, False)
    # Every tile pays the fixed cost: 24 tiles of the same work cost more than one.
    assert spread.tiles_s * 2 > single.tiles_s


def test_the_estimate_runs_tiles_where_the_scheduler_does() -> None:
    """A small matmul and atoms on the C kernel run in the calling process on every core;
    a big matmul and atoms on NumPy's kernel on the pool, a core a worker."""
    rates = LocalRates()
    small = parse_spec({**MATMUL, "tile": 1000})
    big = parse_spec({**MATMUL, "a": {"shape": [6000, 4000]}, "b": {"shape": [4000, 3000]}, "tile": 1000})
    atoms = parse_spec({"kind": "atoms", "grid": 64, "atoms": {"count": 500, "seed": 1}, "tile": 32})
    cases = ((small, False, True), (big, False, False), (atoms, True, True), (atoms, False, False))
    for spec, compiled, inline in cases:
        the_plan = plan("j", spec, POLICY)
        here = estimate_here(the_plan, spec, 2, rates, compiled=compiled, cores=2)
        assert here.inline is inline and here.inline is runs_inline(spec, len(the_plan.tiles), compiled)
        assert (here.cores, here.workers) == ((2, 1) if inline else (1, 2))
        # More cores speed up tiles that run on every core, and not a pool of one-core workers.
        wider = estimate_here(the_plan, spec, 2, rates, compiled=compiled, cores=4)
        assert (wider.tiles_s < here.tiles_s) is inline


def test_more_workers_than_cores_take_turns_on_the_cores() -> None:
    add = parse_spec({**MATMUL, "kind": "add", "b": {"shape": [3000, 2000]}, "tile": 500})
    the_plan = plan("j", add, POLICY)
    rates = LocalRates()
    two = estimate_here(the_plan, add, 2, rates, cores=2)
    eight_on_two = estimate_here(the_plan, add, 8, rates, cores=2)
    eight = estimate_here(the_plan, add, 8, rates, cores=8)
    assert eight_on_two.tiles_s == pytest.approx(two.tiles_s)
    assert eight.tiles_s < two.tiles_s


def test_a_tile_on_every_core_is_estimated_faster_than_on_one() -> None:
    spec = parse_spec({"kind": "atoms", "grid": 128, "atoms": {"count": 1000, "seed": 1}, "precision": "float32"})
    the_plan = plan("j", spec, POLICY)
    rates = LocalRates(tile_overhead_s=0.0, data_mb_s=1e12)
    one, two = (estimate_here(the_plan, spec, n, rates, compiled=True, cores=n) for n in (1, 2))
    assert one.inline and two.inline
    assert two.tiles_s == pytest.approx(one.tiles_s / 2)
    pairs = 128**3 * 1000
    assert one.tiles_s == pytest.approx(pairs / (rates.c_f32_gpairs * 1e9))


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


def test_float32_atoms_are_estimated_at_their_own_rate() -> None:
    rates = LocalRates()
    times = {}
    for precision in ("float32", "float64"):
        spec = parse_spec({"kind": "atoms", "grid": 64, "atoms": {"count": 500, "seed": 1}, "precision": precision})
        times[precision] = estimate_here(plan("j", spec, POLICY), spec, 2, rates, compiled=True).tiles_s
    assert (times["float32"] < times["float64"]) is (rates.c_f32_gpairs > rates.c_f64_gpairs)
    assert rates.c_f32_gpairs != rates.c_f64_gpairs  # measured apart


def test_the_table_shows_the_parts_of_the_time_here() -> None:
    spec = parse_spec({**MATMUL, "verify": True})
    the_plan = plan("j", spec, POLICY)
    here = time_here(the_plan, spec, 2, "numpy")
    line = next(x for x in plan_table(the_plan.manifest(), here).splitlines() if x.startswith("time"))
    assert here.inline and f"~{here.total_s:.2f} s here (in this process on {here.cores} core" in line
    pooled = parse_spec({**MATMUL, "kind": "add", "b": {"shape": [3000, 2000]}, "tile": 1000})
    the_plan = plan("j", pooled, POLICY)
    here = time_here(the_plan, pooled, 2, "numpy")
    line = next(x for x in plan_table(the_plan.manifest(), here).splitlines() if x.startswith("time"))
    assert f"~{here.total_s:.2f} s here (2 workers: {here.pool_s:.2f} s start" in line
    assert "on AWS" in plan_table(the_plan.manifest()) and "here" not in plan_table(the_plan.manifest())

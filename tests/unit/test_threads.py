"""Threads inside a tile: the atoms field is bit-for-bit the same on any number of
threads, every row is computed exactly once, and a shared core budget bounds how many
slabs compute at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from tilefan.compute import ckernel, threads
from tilefan.compute.threads import ComputeBudget, for_each_slab, row_segments


@pytest.fixture(autouse=True)
def restore_budget() -> Iterator[None]:
    before = threads.budget()
    yield
    threads.configure(before)


def _table(n: int, size: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0, size, (n, 3)), rng.uniform(-1, 1, n)])


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("region", [((0, 24), (0, 20), (0, 37)),   # many i: whole-i slabs
                                    # fewer i than threads: slabs of j starting at odd and even j,
                                    # so rows change partners (the AVX2 float64 build takes rows in
                                    # pairs); 95 points a row end in a 4-wide step and 3 single ones,
                                    # and 95 x 700 a row is enough work that the slabs go to threads
                                    ((3, 5), (1, 30), (2, 97)),
                                    ((0, 1), (0, 1), (0, 64))])    # one row
def test_threaded_field_is_identical_to_one_thread(precision: str, region: tuple) -> None:  # type: ignore[type-arg]
    table = _table(700, 30.0, 5)
    for build in range(1, ckernel.level() + 1):  # every build this CPU runs, not only its best
        kernel = ckernel.load(use_level=build)
        assert kernel is not None
        threads.configure(ComputeBudget(1))
        one = kernel(table, (-1.0, 0.5, 0.25), 0.8, 0.1, region, precision)
        for n in (2, 3, 6):
            threads.configure(ComputeBudget(n))
            many = kernel(table, (-1.0, 0.5, 0.25), 0.8, 0.1, region, precision)
            assert many.dtype == one.dtype and many.shape == one.shape
            assert np.array_equal(many, one), f"build {build}: {n} threads differ from one"


def test_every_row_is_computed_exactly_once_on_many_threads() -> None:
    threads.configure(ComputeBudget(4))
    ni, nj = 7, 13
    seen = np.zeros((ni, nj), dtype=int)
    lock = threading.Lock()

    def rows(i0: int, i1: int, j0: int, j1: int) -> None:
        with lock:
            seen[i0:i1, j0:j1] += 1

    for_each_slab(ni, nj, rows, work_per_row=1e9)
    assert (seen == 1).all()


@pytest.mark.parametrize("ni,nj,start,stop", [(3, 4, 0, 12), (3, 4, 5, 6), (5, 1, 1, 4), (2, 7, 3, 14)])
def test_row_segments_cover_exactly_the_rows_asked_for(ni: int, nj: int, start: int, stop: int) -> None:
    rows = [i * nj + j for i0, i1, j0, j1 in row_segments(ni, nj, start, stop)
            for i in range(i0, i1) for j in range(j0, j1)]
    assert rows == list(range(start, stop))


def test_core_tokens_bound_the_slabs_computing_at_once() -> None:
    tokens = threading.BoundedSemaphore(2)
    threads.configure(ComputeBudget(6, tokens))
    running = 0
    most = 0
    lock = threading.Lock()

    def rows(i0: int, i1: int, j0: int, j1: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.002)
        with lock:
            running -= 1

    for_each_slab(12, 10, rows, work_per_row=1e9)
    assert most == 2  # six threads, two tokens: never more than two at once, and two reached


def test_a_small_region_stays_on_the_calling_thread() -> None:
    threads.configure(ComputeBudget(4))
    names: set[str] = set()
    for_each_slab(4, 4, lambda *box: names.add(threading.current_thread().name), work_per_row=10.0)
    assert names == {threading.current_thread().name}

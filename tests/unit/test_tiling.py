"""Property tests for the pure tile math in ``tilefan.domain.tiling`` and ``regions``.

The tiling is what makes a fan-out correct: if the tile regions do not cover every output
element exactly once, a job silently loses or double-writes part of its answer. These
tests check that for arbitrary 2-D and 3-D shapes and tile edges, and that the default tile
choosers always return usable (positive) edges. The region algebra the blob stores build
outputs with is checked against NumPy's own slicing and byte layout.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilefan.domain import regions
from tilefan.domain.tiling import (
    TILE_WORKING_SET_BYTES,
    default_grid_tile,
    default_matrix_tile,
    num_tiles,
    region_size,
    region_slices,
    split,
    tile_counts,
    tile_region,
)

FAST = settings(max_examples=50, deadline=None)


@st.composite
def shapes_and_tiles(draw: st.DrawFn, ndim: int, max_tiles_per_axis: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A shape with 1..300 per axis and tile edges from small (many tiles) to larger than
    the axis (one short tile); the lower bound keeps the tile count small enough to check
    every element of the output."""
    shape = tuple(draw(st.integers(1, 300)) for _ in range(ndim))
    tile = tuple(draw(st.integers(max(1, n // max_tiles_per_axis), n + 50)) for n in shape)
    return shape, tile


@st.composite
def small_shapes_and_tiles(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Tiny shapes where any tile edge, 1 included, is allowed."""
    ndim = draw(st.sampled_from([2, 3]))
    shape = tuple(draw(st.integers(1, 12)) for _ in range(ndim))
    tile = tuple(draw(st.integers(1, 15)) for _ in range(ndim))
    return shape, tile


def _assert_exact_partition(shape: tuple[int, ...], tile: tuple[int, ...]) -> None:
    total = num_tiles(shape, tile)
    coverage = np.zeros(shape, dtype=np.uint16)
    sizes = 0
    for tile_id in range(total):
        region = tile_region(shape, tile, tile_id)
        assert len(region) == len(shape)
        for (start, stop), n, t in zip(region, shape, tile, strict=True):
            assert 0 <= start < stop <= n
            assert stop - start <= t
        coverage[region_slices(region)] += 1
        sizes += region_size(region)
    assert int(coverage.min()) == 1, "some element is covered by no tile"
    assert int(coverage.max()) == 1, "some element is covered by two tiles"
    assert sizes == math.prod(shape)


@FAST
@given(shapes_and_tiles(ndim=2, max_tiles_per_axis=64))
def test_2d_tiles_partition_the_array_exactly(case: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    _assert_exact_partition(*case)


@FAST
@given(shapes_and_tiles(ndim=3, max_tiles_per_axis=16))
def test_3d_tiles_partition_the_array_exactly(case: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    _assert_exact_partition(*case)


@FAST
@given(small_shapes_and_tiles())
def test_tiny_shapes_with_any_tile_partition_exactly(case: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    _assert_exact_partition(*case)


@FAST
@given(st.sampled_from([2, 3]).flatmap(lambda nd: shapes_and_tiles(ndim=nd, max_tiles_per_axis=40)))
def test_tile_region_and_num_tiles_agree_with_split(case: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    shape, tile = case
    pieces = [split(n, t) for n, t in zip(shape, tile, strict=True)]
    assert tile_counts(shape, tile) == tuple(len(p) for p in pieces)
    assert num_tiles(shape, tile) == math.prod(len(p) for p in pieces)
    # Tile ids run in C order over the tile grid: the product of the per-axis splits.
    expected = list(itertools.product(*pieces))
    got = [tile_region(shape, tile, t) for t in range(num_tiles(shape, tile))]
    assert got == expected


@FAST
@given(st.integers(1, 10_000), st.integers(1, 10_000))
def test_split_covers_the_range_in_order(n: int, size: int) -> None:
    pieces = split(n, size)
    assert pieces[0][0] == 0
    assert pieces[-1][1] == n
    for (_, stop), (start, _) in itertools.pairwise(pieces):
        assert stop == start
    assert all(stop - start == size for start, stop in pieces[:-1])
    assert 1 <= pieces[-1][1] - pieces[-1][0] <= size


@pytest.mark.parametrize("n, size", [(0, 4), (4, 0), (-1, 3), (3, -2)])
def test_split_rejects_empty_ranges_and_sizes(n: int, size: int) -> None:
    with pytest.raises(ValueError):
        split(n, size)


@pytest.mark.parametrize("bad_id", [-1, 6, 100])
def test_tile_region_rejects_ids_outside_the_grid(bad_id: int) -> None:
    # (10, 7) cut by (4, 4) has 3 × 2 = 6 tiles.
    with pytest.raises(ValueError, match=r"outside 0\.\.5"):
        tile_region((10, 7), (4, 4), bad_id)


@FAST
@given(
    kind=st.sampled_from(["matmul", "add"]),
    m=st.integers(1, 1 << 20),
    n=st.integers(1, 1 << 20),
    k=st.integers(1, 1 << 24),
    itemsize=st.sampled_from([4, 8]),
)
def test_default_matrix_tile_is_always_positive(kind: str, m: int, n: int, k: int, itemsize: int) -> None:
    tile = default_matrix_tile(kind, (m, n), k, itemsize)
    assert len(tile) == 2
    assert all(isinstance(t, int) and t >= 1 for t in tile)
    assert num_tiles((m, n), tile) >= 1
    if kind == "add":
        # Full-width row panels, never taller than the matrix.
        assert tile[1] == n
        assert tile[0] <= m
    else:
        assert tile[0] == tile[1]


@FAST
@given(
    m=st.integers(1, 1 << 20),
    n=st.integers(1, 1 << 20),
    k=st.integers(1, 1 << 24),
    itemsize=st.sampled_from([4, 8]),
)
def test_default_matmul_tile_keeps_its_documented_form(m: int, n: int, k: int, itemsize: int) -> None:
    # The docstring: square, a multiple of 256 (BLAS-friendly), at most 2048, shrunk for the
    # working-set budget; the loop stops shrinking at 256.
    edge, other = default_matrix_tile("matmul", (m, n), k, itemsize)
    assert edge == other
    assert edge % 256 == 0 and 256 <= edge <= 2048
    # Only the smallest edge may exceed the working-set budget (it cannot shrink further).
    assert edge == 256 or 2 * edge * k * itemsize <= TILE_WORKING_SET_BYTES


def test_default_matmul_tile_for_a_deep_product_stays_a_multiple_of_256() -> None:
    # 3000×200000 · 200000×3000 in float64: the start edge 1536 must not halve to 768, 384, 192.
    edge, _ = default_matrix_tile("matmul", (3000, 3000), 200_000, 8)
    assert edge % 256 == 0 and edge >= 256, edge


@FAST
@given(st.tuples(st.integers(1, 4096), st.integers(1, 4096), st.integers(1, 4096)))
def test_default_grid_tile_is_always_positive(grid: tuple[int, int, int]) -> None:
    tile = default_grid_tile(grid)
    assert len(tile) == 3
    assert all(isinstance(t, int) and 1 <= t <= n for t, n in zip(tile, grid, strict=True))
    # The last axis is the vectorised loop; it is never cut.
    assert tile[2] == grid[2]
    assert num_tiles(grid, tile) >= 1


# --------------------------------------------------------------------------- region algebra


@st.composite
def region_of(draw: st.DrawFn, shape: tuple[int, ...], inside: bool = True) -> tuple[tuple[int, int], ...]:
    """A non-empty region of ``shape``; ``inside=False`` lets it run past the array's
    end, as a ragged last tile asks for."""
    spans = []
    for n in shape:
        a = draw(st.integers(0, n - 1))
        spans.append((a, draw(st.integers(a + 1, n if inside else n + 5))))
    return tuple(spans)


@st.composite
def shape_and_region(draw: st.DrawFn, inside: bool = True) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """A 1-D to 3-D shape and a region of it."""
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=1, max_size=3)))
    return shape, draw(region_of(shape, inside))


def _cells(shape: tuple[int, ...], region: tuple[tuple[int, int], ...] | None) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    if region is not None:
        mask[region_slices(region)] = True
    return mask


@FAST
@given(shape_and_region(inside=False))
def test_clip_selects_what_numpy_slicing_selects(case: tuple[tuple[int, ...], tuple[tuple[int, int], ...]]) -> None:
    shape, region = case
    array = np.arange(math.prod(shape)).reshape(shape)
    clipped = regions.clip(region, shape)
    np.testing.assert_array_equal(array[region_slices(clipped)], array[region_slices(region)], strict=True)
    assert regions.sizes(clipped) == array[region_slices(region)].shape
    assert regions.fit_block(region, shape, regions.sizes(clipped)) == clipped
    with pytest.raises(ValueError, match="does not fill"):
        regions.fit_block(region, shape, tuple(n + 1 for n in regions.sizes(clipped)))


@FAST
@given(shape_and_region(), st.data())
def test_intersect_is_the_overlap_of_the_cells(
    case: tuple[tuple[int, ...], tuple[tuple[int, int], ...]], data: st.DataObject
) -> None:
    shape, a = case
    b = data.draw(region_of(shape))
    overlap = regions.intersect(a, b)
    np.testing.assert_array_equal(_cells(shape, overlap), _cells(shape, a) & _cells(shape, b))
    if overlap is not None:
        # The overlap, cut out of a block holding ``a``, is the same cells as cut from the array.
        array = np.arange(math.prod(shape)).reshape(shape)
        block = array[region_slices(a)]
        np.testing.assert_array_equal(block[regions.slices_within(overlap, a)], array[region_slices(overlap)])


@FAST
@given(small_shapes_and_tiles())
def test_row_bands_cover_the_rows_once_and_never_straddle_a_tile(
    case: tuple[tuple[int, ...], tuple[int, ...]],
) -> None:
    shape, tile = case
    tiles = [tile_region(shape, tile, t) for t in range(num_tiles(shape, tile))]
    bands = list(regions.row_bands(shape, tiles))
    assert [b[1:] for b in bands] == [regions.whole(shape[1:])] * len(bands)
    assert bands[0][0][0] == 0 and bands[-1][0][1] == shape[0]
    assert all(x[0][1] == y[0][0] for x, y in itertools.pairwise(bands))
    for band in bands:
        for region in tiles:
            overlap = regions.intersect(band, region)
            # A band meets a tile in all of the band's rows or none.
            assert overlap is None or overlap[0] == band[0]


@FAST
@given(shape_and_region())
def test_run_offsets_place_a_block_where_numpy_assignment_does(
    case: tuple[tuple[int, ...], tuple[tuple[int, int], ...]],
) -> None:
    shape, region = case
    block = np.arange(1, region_size(region) + 1).reshape(regions.sizes(region))
    flat = np.zeros(math.prod(shape), dtype=block.dtype)
    cut = regions.run_axis(shape, region)
    runs = block.reshape((*block.shape[:cut], -1))
    for idx, start in regions.run_offsets(shape, region):
        flat[start : start + runs[idx].size] = runs[idx]
    expected = np.zeros(shape, dtype=block.dtype)
    expected[region_slices(region)] = block
    np.testing.assert_array_equal(flat.reshape(shape), expected)


@FAST
@given(st.integers(1, 20), st.integers(1, 6), st.data())
def test_row_byte_range_is_where_the_rows_lie_in_a_npy_file(rows: int, cols: int, data: st.DataObject) -> None:
    from tilefan.adapters.npy_header import parse_header, to_npy

    array = np.arange(rows * cols, dtype="<f8").reshape(rows, cols)
    start = data.draw(st.integers(0, rows - 1))
    stop = data.draw(st.integers(start + 1, rows))
    content = to_npy(array)
    header = parse_header(content, "a.npy")
    first, last = regions.row_byte_range((start, stop), header.row_bytes, header.offset)
    assert content[first : last + 1] == array[start:stop].tobytes()

"""The multipart plan of an assembled output (``tilefan.domain.assembly``): S3's part rules
hold for any tiling, copies lie inside one full-width tile, built parts read each tile
once where they can, and a 100,000-tile job fits the 10,000-part limit through groups."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tilefan.domain.assembly import MIB, BuildPart, CopyPart, PartLimits, full_width, group_copies, groups, plan_parts
from tilefan.domain.tiling import num_tiles, tile_region

SMALL = PartLimits(min_part_bytes=64, build_bytes=128, build_cap_bytes=512, max_part_bytes=1024, max_parts=5)


def tiles(shape: tuple[int, ...], tile: tuple[int, ...]) -> list[tuple[tuple[int, int], ...]]:
    return [tile_region(shape, tile, t) for t in range(num_tiles(shape, tile))]


def check_rules(parts: list[CopyPart | BuildPart], shape: tuple[int, ...], itemsize: int, header: int,
                limits: PartLimits, regions: list[tuple[tuple[int, int], ...]]) -> None:
    row_bytes = math.prod(shape[1:]) * itemsize
    # In order, every row once, the header first.
    assert parts[0].rows[0] == 0 and parts[-1].rows[1] == shape[0]
    assert all(a.rows[1] == b.rows[0] for a, b in itertools.pairwise(parts))
    assert isinstance(parts[0], BuildPart) and parts[0].header
    assert not any(isinstance(p, BuildPart) and p.header for p in parts[1:])
    assert sum(p.size for p in parts) == header + shape[0] * row_bytes
    for p in parts:
        assert p.size == (header if isinstance(p, BuildPart) and p.header else 0) + (p.rows[1] - p.rows[0]) * row_bytes
        assert p.size <= limits.max_part_bytes
    # S3 refuses a part under the minimum unless it is the last.
    assert all(p.size >= limits.min_part_bytes for p in parts[:-1])
    for p in parts:
        if isinstance(p, CopyPart):
            assert p.region in regions and full_width(shape, p.region)
            assert p.region[0][0] <= p.rows[0] < p.rows[1] <= p.region[0][1]


@settings(max_examples=150, deadline=None)
@given(
    rows=st.integers(1, 200), cols=st.integers(1, 40), tile_rows=st.integers(1, 60), tile_cols=st.integers(1, 40),
    itemsize=st.sampled_from([4, 8]), header=st.sampled_from([64, 128]),
)
def test_any_tiling_meets_s3s_part_rules(rows: int, cols: int, tile_rows: int, tile_cols: int, itemsize: int,
                                          header: int) -> None:
    shape = (rows, cols)
    regions = tiles(shape, (tile_rows, tile_cols))
    limits = PartLimits(min_part_bytes=64, build_bytes=128, build_cap_bytes=512,
                        max_part_bytes=max(1024, header + cols * itemsize))
    check_rules(plan_parts(shape, itemsize, header, regions, limits), shape, itemsize, header, limits, regions)


def test_full_width_tiles_over_the_minimum_are_copied_and_only_the_head_is_sent() -> None:
    shape, itemsize, header = (1000, 2000), 8, 128  # tiles of 400 rows: 6.4 MB each
    regions = tiles(shape, (400, 2000))
    parts = plan_parts(shape, itemsize, header, regions, PartLimits())
    assert [(type(p).__name__, p.rows) for p in parts] == [
        ("BuildPart", (0, 400)), ("CopyPart", (400, 800)), ("BuildPart", (800, 1000))]
    check_rules(parts, shape, itemsize, header, PartLimits(), regions)


def test_a_big_full_width_tile_is_sent_only_as_far_as_the_first_part_needs() -> None:
    shape, itemsize, header = (4000, 1000), 8, 128  # one 32 MB tile
    parts = plan_parts(shape, itemsize, header, tiles(shape, shape), PartLimits())
    first, rest = parts
    assert isinstance(first, BuildPart) and isinstance(rest, CopyPart)
    assert first.size >= 5 * MIB and first.size - 8000 < 16 * MIB  # the build target, to a row
    assert rest.rows == (first.rows[1], 4000)


def test_built_parts_end_at_tile_row_edges_so_each_tile_is_read_once() -> None:
    shape, itemsize, header = (2048, 2048), 8, 128  # 256 x 256 tiles: bands of 4 MiB
    regions = tiles(shape, (256, 256))
    parts = plan_parts(shape, itemsize, header, regions, PartLimits())
    edges = {r[0][0] for r in regions} | {shape[0]}
    assert all(isinstance(p, BuildPart) and p.rows[1] in edges for p in parts)
    assert all(p.size <= PartLimits().build_cap_bytes for p in parts)
    assert len(parts) == 2  # 32 MiB in parts of 16 MiB and more


def test_a_100000_tile_job_fits_s3s_part_limit_through_groups() -> None:
    # 100,000 full-width tiles of 8 MiB: 100,000 copy parts, ten times one upload's limit.
    row_bytes = 8 * MIB
    shape, itemsize = (100_000, row_bytes // 8), 8
    regions = [((t, t + 1), (0, shape[1])) for t in range(100_000)]
    limits = PartLimits()
    parts = plan_parts(shape, itemsize, 128, regions, limits)
    assert sum(isinstance(p, CopyPart) for p in parts) >= 99_998
    runs = groups(parts, limits)
    assert len(runs) == 10 and all(len(r) == limits.max_parts for r in runs)
    final = group_copies([sum(p.size for p in run) for run in runs], limits)
    assert len(final) <= limits.max_parts
    assert all(last - first + 1 <= limits.max_part_bytes for _, first, last in final)
    assert all(last - first + 1 >= limits.min_part_bytes for _, first, last in final[:-1])


def test_groups_keep_every_part_and_its_order() -> None:
    shape = (300, 10)
    regions = tiles(shape, (7, 10))
    parts = plan_parts(shape, 8, 64, regions, SMALL)
    runs = groups(parts, SMALL)
    assert [p for run in runs for p in run] == parts and all(len(r) <= 5 for r in runs)
    sizes = [sum(p.size for p in run) for run in runs]
    pieces = group_copies(sizes, SMALL)
    assert sum(last - first + 1 for _, first, last in pieces) == sum(sizes)

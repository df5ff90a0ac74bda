"""Pure planning of an output assembled from tile blocks by a multipart upload.

An object store that cannot write into the middle of an object (S3) keeps each tile's
block as its own object and builds the output ``.npy`` at the end as one multipart upload.
Its parts are cut here, in whole rows of the output:

- a **copy** part is a range of rows of one full-width tile (every axis but the first
  whole), which is one contiguous byte range of both the tile's block and the output: the
  store copies it server-side (S3 UploadPartCopy), and no byte passes through the reducer;
- a **build** part is a range of rows assembled in memory from ranged reads of the tiles
  it crosses. The output's header always starts the first part, so that part is built.
  Build parts end at tile row edges where they can, so each tile is read in one request.

Every part but the last is at least ``min_part_bytes`` (S3 refuses a smaller one), none is
over ``max_part_bytes``. A multipart upload takes at most ``max_parts`` parts; a plan with
more is uploaded in ``groups`` of consecutive parts, each its own object, and the output is
then copied together from those (``group_copies``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tilefan.domain.tiling import Region

MIB = 2**20


@dataclass(frozen=True)
class PartLimits:
    """S3's multipart rules, and the reducer's memory for a part it builds."""

    min_part_bytes: int = 5 * MIB  # every part but the last
    max_part_bytes: int = 5 * 2**30
    max_parts: int = 10_000
    build_bytes: int = 16 * MIB  # a built part is at least this (bigger means fewer requests)
    build_cap_bytes: int = 128 * MIB  # ... and at most this, unless one row is bigger

    def __post_init__(self) -> None:
        if not 0 < self.min_part_bytes <= self.build_bytes <= self.build_cap_bytes <= self.max_part_bytes \
                or self.max_part_bytes < 2 * self.min_part_bytes:
            raise ValueError(f"inconsistent part limits: {self}")


@dataclass(frozen=True)
class CopyPart:
    """Output rows ``rows``, copied from the stored block of the full-width tile ``region``."""

    region: Region
    rows: tuple[int, int]
    size: int


@dataclass(frozen=True)
class BuildPart:
    """Output rows ``rows`` built from the tiles' blocks, after the header if ``header``."""

    rows: tuple[int, int]
    header: bool
    size: int


Part = CopyPart | BuildPart


def full_width(shape: Sequence[int], region: Region) -> bool:
    """Whether ``region`` spans every axis but the first whole (then its rows are contiguous).

    >>> full_width((10, 4), ((0, 5), (0, 4))), full_width((10, 4), ((0, 5), (0, 2)))
    (True, False)
    """
    return all(tuple(span) == (0, n) for span, n in zip(region[1:], shape[1:], strict=True))


def plan_parts(
    shape: Sequence[int], itemsize: int, header_bytes: int, regions: Iterable[Region], limits: PartLimits
) -> list[Part]:
    """The output's parts in order, covering the header and every row once.

    >>> lim = PartLimits(min_part_bytes=100, build_bytes=100, build_cap_bytes=400, max_part_bytes=1000)
    >>> tiles = [((0, 2), (0, 10)), ((2, 30), (0, 10)), ((30, 32), (0, 10))]  # rows of 10 bytes
    >>> [(type(p).__name__, p.rows, p.size) for p in plan_parts((32, 10), 1, 8, tiles, lim)]
    [('BuildPart', (0, 10), 108), ('CopyPart', (10, 30), 200), ('BuildPart', (30, 32), 20)]
    """
    if not shape:
        raise ValueError("an output assembled by rows needs at least one axis")
    rows_total = shape[0]
    row_bytes = math.prod(shape[1:]) * itemsize
    regions = list(regions)
    if rows_total == 0 or row_bytes == 0:
        return [BuildPart((0, rows_total), True, header_bytes)]
    if header_bytes + row_bytes > limits.max_part_bytes:
        raise ValueError(f"one row of {row_bytes} bytes does not fit a part of {limits.max_part_bytes}")
    copyable = sorted((r for r in regions if full_width(shape, r)), key=lambda r: r[0][0])
    spans = [r[0] for r in copyable]
    starts = [a for a, _ in spans]
    edges = sorted({0, rows_total, *(e for r in regions for e in r[0])})
    # Built parts are large enough that the whole output needs at most max_parts of them.
    build = max(limits.build_bytes, -(-(header_bytes + rows_total * row_bytes) // limits.max_parts))
    cap = max(limits.build_cap_bytes, build)
    parts: list[Part] = []
    pos = 0
    while pos < rows_total:
        head = header_bytes if pos == 0 else 0
        at = bisect.bisect_right(starts, pos) - 1
        tile = copyable[at] if at >= 0 and copyable[at][0][1] > pos else None
        if tile is not None and not head and (tile[0][1] - pos) * row_bytes >= limits.min_part_bytes:
            stop = tile[0][1]
            # Even pieces when the rows exceed one part (S3 copies at most 5 GiB a part).
            pieces = -(-(stop - pos) * row_bytes // limits.max_part_bytes)
            end = pos + min(-(-(stop - pos) // pieces), limits.max_part_bytes // row_bytes)
            parts.append(CopyPart(tile, (pos, end), (end - pos) * row_bytes))
            pos = end
            continue
        end = _build_end(pos, head, row_bytes, rows_total, edges, spans, build, cap, limits.min_part_bytes)
        parts.append(BuildPart((pos, end), bool(head), head + (end - pos) * row_bytes))
        pos = end
    return parts


def _build_end(
    pos: int, head: int, row_bytes: int, rows_total: int, edges: Sequence[int],
    copyable: Sequence[tuple[int, int]], build: int, cap: int, min_part: int,
) -> int:
    """Where a built part starting at row ``pos`` ends: at the first tile row edge that
    makes it ``build`` bytes, but not past ``cap`` bytes, and early where the rest of a
    full-width tile (``copyable``: row spans, sorted) can be a copy part."""
    def size(end: int) -> int:
        return head + (end - pos) * row_bytes

    at_least = pos + max(1, -(-(build - head) // row_bytes))
    i = bisect.bisect_left(edges, min(at_least, rows_total))
    end = edges[i] if i < len(edges) else rows_total
    if size(end) > cap:
        end = pos + max(1, (cap - head) // row_bytes)
    end = min(end, rows_total)
    # Stop where the rest of a full-width tile can be copied instead of read and sent.
    enough = pos + max(1, -(-(min_part - head) // row_bytes))
    for start, stop in copyable[max(0, bisect.bisect_right(copyable, pos, key=lambda s: s[0]) - 1):]:
        if start >= end:
            break
        cut = max(start, enough)
        if pos < cut < stop and (stop - cut) * row_bytes >= min_part:
            return min(cut, end)
    return end


def groups(parts: Sequence[Part], limits: PartLimits) -> list[list[Part]]:
    """Consecutive runs of at most ``max_parts`` parts: one upload each (one run: the output).

    >>> lim = PartLimits(min_part_bytes=1, build_bytes=1, build_cap_bytes=1, max_part_bytes=2, max_parts=2)
    >>> [len(g) for g in groups([BuildPart((i, i + 1), i == 0, 1) for i in range(5)], lim)]
    [2, 2, 1]
    """
    n = limits.max_parts
    return [list(parts[i : i + n]) for i in range(0, len(parts), n)]


def group_copies(sizes: Sequence[int], limits: PartLimits) -> list[tuple[int, int, int]]:
    """The output's parts when it is copied together from group objects of ``sizes``
    bytes: ``(group, first byte, last byte)``, each at most ``max_part_bytes``.

    >>> group_copies([10, 25], PartLimits(min_part_bytes=1, build_bytes=1, build_cap_bytes=1, max_part_bytes=10))
    [(0, 0, 9), (1, 0, 8), (1, 9, 17), (1, 18, 24)]
    """
    out: list[tuple[int, int, int]] = []
    for g, size in enumerate(sizes):
        pieces = max(1, -(-size // limits.max_part_bytes))
        step = -(-size // pieces)
        out.extend((g, first, min(first + step, size) - 1) for first in range(0, size, step))
    return out

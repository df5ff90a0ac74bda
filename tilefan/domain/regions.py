"""Pure region algebra for the blob stores: clipping, overlaps, row bands and file runs.

A region is a tuple of half-open ``(start, stop)`` pairs, one per axis, in whole-array
coordinates (see ``tiling``). The stores use these to place a tile's block in an output
(a file written in place, objects written part by part, an array in memory) without each
working the arithmetic out again.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence

from tilefan.domain.tiling import Region

Spans = Sequence[tuple[int, int]]


def clip(region: Spans, shape: Sequence[int]) -> Region:
    """A region cut to the array, as NumPy slicing would cut it.

    >>> clip([(2, 9), (0, 3)], (5, 3))
    ((2, 5), (0, 3))
    >>> clip([(4, 2)], (9,))
    ((4, 4),)
    """
    if len(region) != len(shape):
        raise ValueError(f"region {tuple(region)} has {len(region)} axes; the array has {len(shape)}")
    out = []
    for (a, b), n in zip(region, shape, strict=True):
        start, stop, _ = slice(a, b).indices(n)
        out.append((start, max(start, stop)))
    return tuple(out)


def sizes(region: Spans) -> tuple[int, ...]:
    """The block shape a region holds.

    >>> sizes(((2, 5), (0, 3)))
    (3, 3)
    """
    return tuple(b - a for a, b in region)


def fit_block(region: Spans, shape: Sequence[int], block_shape: Sequence[int]) -> Region:
    """``region`` clipped to an array of ``shape``; ValueError unless a block of
    ``block_shape`` fills it exactly (a tile writing the wrong block is a bug, not data).

    >>> fit_block([(8, 12), (0, 4)], (10, 4), (2, 4))
    ((8, 10), (0, 4))
    >>> fit_block([(0, 2)], (10,), (3,))
    Traceback (most recent call last):
    ...
    ValueError: block of shape (3,) does not fill region ((0, 2),)
    """
    clipped = clip(region, shape)
    if tuple(block_shape) != sizes(clipped):
        raise ValueError(f"block of shape {tuple(block_shape)} does not fill region {clipped}")
    return clipped


def intersect(a: Spans, b: Spans) -> Region | None:
    """The overlap of two regions, or None if they do not overlap.

    >>> intersect([(0, 4), (0, 4)], [(2, 6), (3, 9)])
    ((2, 4), (3, 4))
    >>> intersect([(0, 4)], [(4, 8)]) is None
    True
    """
    spans = tuple((max(x0, y0), min(x1, y1)) for (x0, x1), (y0, y1) in zip(a, b, strict=True))
    return spans if all(lo < hi for lo, hi in spans) else None


def slices_within(spans: Spans, within: Spans) -> tuple[slice, ...]:
    """Where ``spans`` (whole-array coordinates) lie in a block that holds ``within``.

    >>> slices_within([(2, 4), (3, 4)], [(2, 6), (0, 9)])
    (slice(0, 2, None), slice(3, 4, None))
    """
    return tuple(slice(a - w0, b - w0) for (a, b), (w0, _) in zip(spans, within, strict=True))


def whole(shape: Sequence[int]) -> Region:
    """The region of the entire array.

    >>> whole((3, 4))
    ((0, 3), (0, 4))
    """
    return tuple((0, n) for n in shape)


def row_bands(shape: Sequence[int], regions: Iterable[Spans]) -> Iterator[Region]:
    """The array in full-width bands of rows, cut at every region's row edges, so each
    region lies in whole bands: building an output band by band then reads each part
    once and holds one band at a time.

    >>> list(row_bands((10, 3), [((0, 4), (0, 2)), ((4, 10), (0, 3)), ((0, 4), (2, 3))]))
    [((0, 4), (0, 3)), ((4, 10), (0, 3))]
    >>> list(row_bands((5, 2), []))
    [((0, 5), (0, 2))]
    """
    edges = sorted({0, shape[0], *(e for region in regions for e in region[0])})
    for r0, r1 in itertools.pairwise(edges):
        yield ((r0, r1), *whole(shape[1:]))


def row_byte_range(rows: tuple[int, int], row_bytes: int, offset: int) -> tuple[int, int]:
    """The first and last byte (inclusive, as an HTTP Range) of rows ``rows`` of a
    C-ordered array whose data starts ``offset`` bytes in.

    >>> row_byte_range((10, 12), 400, 128)
    (4128, 4927)
    """
    return offset + rows[0] * row_bytes, offset + rows[1] * row_bytes - 1


def run_axis(shape: Sequence[int], region: Spans) -> int:
    """The axis from which ``region`` is one contiguous run in a C-ordered array: every
    axis after it is covered whole.

    >>> run_axis((4, 6), ((1, 3), (0, 6)))
    0
    >>> run_axis((4, 6), ((1, 3), (2, 4)))
    1
    >>> run_axis((2, 3, 4), ((0, 1), (0, 3), (0, 4)))
    0
    """
    cut = len(shape) - 1
    while cut > 0 and tuple(region[cut]) == (0, shape[cut]):
        cut -= 1
    return cut


def run_offsets(shape: Sequence[int], region: Spans) -> Iterator[tuple[tuple[int, ...], int]]:
    """Each contiguous run of ``region`` in a C-ordered array of ``shape``: its index
    over the block's axes before ``run_axis`` and its offset in elements from the start
    of the array. The run holds the rest of the block at that index.

    >>> list(run_offsets((4, 6), ((1, 3), (0, 6))))
    [((), 6)]
    >>> list(run_offsets((4, 6), ((1, 3), (2, 4))))
    [((0,), 8), ((1,), 14)]
    """
    cut = run_axis(shape, region)
    strides = [math.prod(shape[a + 1 :]) for a in range(len(shape))]
    starts = [a for a, _ in region]
    base = starts[cut] * strides[cut]
    for idx in itertools.product(*(range(b - a) for a, b in region[:cut])):
        yield idx, base + sum((starts[a] + idx[a]) * strides[a] for a in range(cut))

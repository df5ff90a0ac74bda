"""Pure tile math: how an N-D output is cut into rectangular tiles.

Tiles are numbered in C order over the grid of tiles, so a tile id alone (with the shape
and the tile edges) gives its region. Regions are tuples of half-open ``(start, stop)``
pairs, one per axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Region = tuple[tuple[int, int], ...]

# A tile's working set is kept under this so it fits comfortably in a Lambda or a pool
# worker next to its neighbours (a Lambda has at most 10,240 MB, and about 1,769 MB per vCPU).
TILE_WORKING_SET_BYTES = 1 << 30


def split(n: int, size: int) -> list[tuple[int, int]]:
    """Cut ``range(n)`` into consecutive pieces of ``size`` (the last may be short).

    >>> split(10, 4)
    [(0, 4), (4, 8), (8, 10)]
    >>> split(3, 8)
    [(0, 3)]
    """
    if n < 1 or size < 1:
        raise ValueError(f"split needs n >= 1 and size >= 1, got n={n}, size={size}")
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def tile_counts(shape: Sequence[int], tile: Sequence[int]) -> tuple[int, ...]:
    """Number of tiles along each axis.

    >>> tile_counts((10, 7), (4, 7))
    (3, 1)
    """
    return tuple(-(-n // t) for n, t in zip(shape, tile, strict=True))


def num_tiles(shape: Sequence[int], tile: Sequence[int]) -> int:
    """
    >>> num_tiles((4096, 4096), (2048, 2048))
    4
    """
    return math.prod(tile_counts(shape, tile))


def tile_region(shape: Sequence[int], tile: Sequence[int], tile_id: int) -> Region:
    """The region of tile ``tile_id`` (C order over the tile grid).

    >>> tile_region((10, 7), (4, 4), 0)
    ((0, 4), (0, 4))
    >>> tile_region((10, 7), (4, 4), 5)
    ((8, 10), (4, 7))
    """
    counts = tile_counts(shape, tile)
    total = math.prod(counts)
    if not 0 <= tile_id < total:
        raise ValueError(f"tile id {tile_id} is outside 0..{total - 1}")
    coords = []
    rest = tile_id
    for count in reversed(counts):
        coords.append(rest % count)
        rest //= count
    coords.reverse()
    return tuple(
        (c * t, min((c + 1) * t, n)) for c, t, n in zip(coords, tile, shape, strict=True)
    )


def region_size(region: Region) -> int:
    """
    >>> region_size(((0, 4), (2, 5)))
    12
    """
    return math.prod(stop - start for start, stop in region)


def region_slices(region: Region) -> tuple[slice, ...]:
    """
    >>> region_slices(((0, 4), (2, 5)))
    (slice(0, 4, None), slice(2, 5, None))
    """
    return tuple(slice(start, stop) for start, stop in region)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def default_matrix_tile(kind: str, out_shape: tuple[int, int], k: int, itemsize: int) -> tuple[int, int]:
    """Tile edges when the user gives none.

    matmul: square blocks, a multiple of 256 (BLAS-friendly), at most 2048, at least two
    tiles along the longer side once it exceeds 256, and shrunk until the A row panel plus
    the B column panel fit the working-set budget.
    add: full-width row panels of about 4 Mi elements, which are contiguous in memory.

    >>> default_matrix_tile("matmul", (4096, 4096), 4096, 8)
    (2048, 2048)
    >>> default_matrix_tile("matmul", (100, 80), 50, 8)
    (256, 256)
    >>> default_matrix_tile("add", (8192, 8192), 0, 8)
    (512, 8192)
    """
    m, n = out_shape
    if kind == "add":
        rows = max(1, (4 << 20) // n)
        return (min(m, rows), n)
    edge = min(2048, max(256, _round_up(-(-max(m, n) // 2), 256)))
    while edge > 256 and 2 * edge * k * itemsize > TILE_WORKING_SET_BYTES:
        edge = max(256, edge // 2 // 256 * 256)
    return (edge, edge)


def default_grid_tile(grid: tuple[int, int, int]) -> tuple[int, int, int]:
    """Atoms tiles: blocks that keep the last axis whole (it is the vectorised loop) and
    cut the first two until there are at least 16 tiles or the blocks get small.

    >>> default_grid_tile((256, 256, 256))
    (64, 64, 256)
    >>> default_grid_tile((16, 16, 16))
    (16, 16, 16)
    >>> default_grid_tile((64, 64, 64))
    (16, 16, 64)
    """
    ni, nj, nk = grid
    ti, tj = ni, nj
    # Small grids are one tile: splitting them costs more than it saves.
    if ni * nj * nk <= 1 << 16:
        return (ni, nj, nk)
    while num_tiles(grid, (ti, tj, nk)) < 16 and (ti > 8 or tj > 8):
        if ti >= tj and ti > 8:
            ti = -(-ti // 2)
        else:
            tj = -(-tj // 2)
    return (ti, tj, nk)

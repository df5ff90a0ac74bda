"""Chunked arrays (Zarr, HDF5): how a key names one, and the pure chunk-grid math.

A key that ends in ``.zarr`` (optionally ``.zarr:member`` for an array inside a Zarr
group) names a Zarr array; ``file.h5:dataset`` (also ``.hdf5``, ``.hdf``, ``.he5``)
names an HDF5 dataset. Every other key is a ``.npy`` array as before.

A Zarr output's chunks are the job's tiles, so tile ``t`` writes exactly chunk ``t`` (both
are numbered in C order over their grid) and nothing is assembled. Zarr stores an edge
chunk at full chunk size, padded with the fill value, so a reader slices it back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tilefan.domain.tiling import Region

ZARR = "zarr"
HDF5 = "hdf5"
_ZARR_KEY = re.compile(r"^(?P<path>.+?\.zarr)/?(?::(?P<member>[^:]*))?$", re.IGNORECASE)
_HDF5_KEY = re.compile(r"^(?P<path>.+?\.(?:h5|hdf5|hdf|he5))(?::(?P<member>.*))?$", re.IGNORECASE)


@dataclass(frozen=True)
class ChunkedRef:
    """Where a chunked array lives: its container (``path``) and the array inside it."""

    format: str
    path: str
    member: str = ""


def chunked_ref(key: str) -> ChunkedRef | None:
    """The chunked array ``key`` names, or None for a ``.npy`` key.

    >>> chunked_ref("/data/C.zarr")
    ChunkedRef(format='zarr', path='/data/C.zarr', member='')
    >>> chunked_ref("s3://b/run.zarr:matrices/A")
    ChunkedRef(format='zarr', path='s3://b/run.zarr', member='matrices/A')
    >>> chunked_ref("inputs/A.h5:/group/A")
    ChunkedRef(format='hdf5', path='inputs/A.h5', member='/group/A')
    >>> chunked_ref("A.npy") is None, chunked_ref("notes.zarr.npy") is None
    (True, True)
    """
    for fmt, pattern in ((ZARR, _ZARR_KEY), (HDF5, _HDF5_KEY)):
        match = pattern.match(key)
        if match:
            return ChunkedRef(fmt, match["path"], (match["member"] or "").strip("/") if fmt == ZARR
                              else match["member"] or "")
    return None


def is_zarr(key: str) -> bool:
    """
    >>> is_zarr("out/C.zarr"), is_zarr("out/C.npy"), is_zarr("A.h5:x")
    (True, False, False)
    """
    ref = chunked_ref(key)
    return ref is not None and ref.format == ZARR


def chunk_counts(shape: Sequence[int], chunks: Sequence[int]) -> tuple[int, ...]:
    """Chunks along each axis.

    >>> chunk_counts((10, 7), (4, 4))
    (3, 2)
    """
    return tuple(-(-n // c) for n, c in zip(shape, chunks, strict=True))


def all_chunks(shape: Sequence[int], chunks: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every chunk index in C order: chunk number ``t`` is tile ``t`` when chunks are tiles.

    >>> list(all_chunks((10, 7), (4, 4)))
    [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    """
    counts = chunk_counts(shape, chunks)
    for flat in range(math.prod(counts)):
        index = []
        for count in reversed(counts):
            index.append(flat % count)
            flat //= count
        yield tuple(reversed(index))


def chunk_number(index: Sequence[int], shape: Sequence[int], chunks: Sequence[int]) -> int:
    """The C-order number of a chunk (its tile id when chunks are tiles).

    >>> chunk_number((2, 1), (10, 7), (4, 4))
    5
    """
    number = 0
    for i, count in zip(index, chunk_counts(shape, chunks), strict=True):
        number = number * count + i
    return number


def chunk_region(index: Sequence[int], shape: Sequence[int], chunks: Sequence[int]) -> Region:
    """The part of the array a chunk holds (an edge chunk is cut to the array).

    >>> chunk_region((2, 1), (10, 7), (4, 4))
    ((8, 10), (4, 7))
    """
    return tuple((i * c, min((i + 1) * c, n)) for i, c, n in zip(index, chunks, shape, strict=True))


def chunk_of(region: Sequence[tuple[int, int]], shape: Sequence[int], chunks: Sequence[int]) -> tuple[int, ...]:
    """The one chunk a region fills exactly; ValueError for any other region (a tile that
    straddles chunks would race its neighbours for them).

    >>> chunk_of([(8, 10), (4, 7)], (10, 7), (4, 4))
    (2, 1)
    >>> chunk_of([(0, 2), (0, 4)], (10, 7), (4, 4))
    Traceback (most recent call last):
    ...
    ValueError: region ((0, 2), (0, 4)) is not one chunk of (4, 4)
    """
    index = tuple(a // c for (a, _), c in zip(region, chunks, strict=True))
    if all(a % c == 0 for (a, _), c in zip(region, chunks, strict=True)) and \
            chunk_region(index, shape, chunks) == tuple(tuple(span) for span in region):
        return index
    raise ValueError(f"region {tuple(tuple(s) for s in region)} is not one chunk of {tuple(chunks)}")


def chunks_crossing(region: Sequence[tuple[int, int]], chunks: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """The chunks a region overlaps, in C order.

    >>> list(chunks_crossing([(3, 5), (0, 4)], (4, 4)))
    [(0, 0), (1, 0)]
    >>> list(chunks_crossing([(3, 3), (0, 4)], (4, 4)))
    []
    """
    ranges = [range(a // c, -(-b // c)) if a < b else range(0) for (a, b), c in zip(region, chunks, strict=True)]
    yield from _product(ranges)


def _product(ranges: Sequence[range]) -> Iterator[tuple[int, ...]]:
    if not ranges:
        yield ()
        return
    for first in ranges[0]:
        for rest in _product(ranges[1:]):
            yield (first, *rest)


def v3_chunk_key(index: Sequence[int], separator: str = "/") -> str:
    """A chunk's key in Zarr v3's default encoding.

    >>> v3_chunk_key((2, 1)), v3_chunk_key((0, 3), ".")
    ('c/2/1', 'c.0.3')
    """
    return separator.join(["c", *(str(i) for i in index)])


def v2_chunk_key(index: Sequence[int], separator: str = ".") -> str:
    """A chunk's key in Zarr v2.

    >>> v2_chunk_key((2, 1)), v2_chunk_key((2, 1), "/")
    ('2.1', '2/1')
    """
    return separator.join(str(i) for i in index)

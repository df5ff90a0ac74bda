"""How a function moves bytes to and from S3: concurrent ranged requests, and the rate that buys.

One S3 request stream is bound by its latency to first byte and by one connection's
bandwidth (about 60 MB/s, the figure a single GET of a big object reaches in a Lambda).
S3's performance guidance is to fetch byte ranges of 8–16 MB over several connections
at once; a function then moves bytes at many times one stream's rate, up to what its
network allows. This module holds that arithmetic, pure: how many streams a function of
a given memory keeps in flight, how a byte range is cut into parts, and the I/O rate the
planner charges for a given number of streams (docs/cost-model.md says how uncertain it is).
"""

from __future__ import annotations

from collections.abc import Iterator

MIB = 1 << 20
# The size of one ranged GET, of one part of a multipart PUT, and of the chunk of whole
# rows a column panel is read in: the low end of S3's advice (8–16 MB), so a tile's
# block of a few tens of MB still splits over many streams.
PART_BYTES = 8 * MIB
MIN_STREAMS = 8
MAX_STREAMS = 16
# Lambda's memory per vCPU (and, roughly, its share of the network): 10,240 MB gets 16.
MB_PER_STREAM = 640
# Parts in flight may take at most this share of the function's memory.
MEMORY_SHARE = 16
# Modelled, not measured here: one stream's rate (a single GET in a Lambda reaches
# 50–90 MB/s in published tests) and the most one function's network moves at once.
STREAM_MB_S = 60.0
FUNCTION_MB_S = 300.0


def io_streams(memory_mb: int) -> int:
    """Concurrent S3 requests a function with ``memory_mb`` of memory keeps in flight:
    8 up to about 5 GB, 16 at Lambda's top size; fewer only where 8 MiB parts in flight
    would take more than a 16th of its memory.

    >>> io_streams(10_240), io_streams(5_120), io_streams(3_008), io_streams(1_024), io_streams(512), io_streams(128)
    (16, 8, 8, 8, 4, 1)
    """
    by_size = min(MAX_STREAMS, max(MIN_STREAMS, memory_mb // MB_PER_STREAM))
    by_memory = max(1, memory_mb * MIB // MEMORY_SHARE // PART_BYTES)
    return min(by_size, by_memory)


def function_io_mb_s(streams: int) -> float:
    """The S3 rate, MB/s, of a function with ``streams`` requests in flight: one stream's
    rate each, up to the function's network.

    >>> function_io_mb_s(1), function_io_mb_s(4), function_io_mb_s(8), function_io_mb_s(16)
    (60.0, 240.0, 300.0, 300.0)
    """
    return min(max(1, streams) * STREAM_MB_S, FUNCTION_MB_S)


def read_part_bytes(nbytes: int, streams: int, smallest: int = PART_BYTES) -> int:
    """The part size for reading ``nbytes`` over ``streams``: an even share per stream, kept
    within S3's advised 8–16 MB (``smallest`` to twice it), so a read takes as few waves
    of requests, each paying the first-byte latency, as that range allows.

    >>> MIB = 1 << 20
    >>> [read_part_bytes(128 * MIB, n) // MIB for n in (2, 8, 16)]
    [16, 16, 8]
    >>> read_part_bytes(20 * MIB, 16) // MIB, read_part_bytes(100, 4, smallest=8)
    (8, 16)
    """
    share = -(-nbytes // max(1, streams))
    return min(2 * smallest, max(smallest, share))


def byte_parts(first: int, last: int, part_bytes: int = PART_BYTES) -> Iterator[tuple[int, int]]:
    """The inclusive byte ranges of at most ``part_bytes`` that cover ``first``..``last``.

    >>> list(byte_parts(0, 9, 4))
    [(0, 3), (4, 7), (8, 9)]
    >>> list(byte_parts(100, 103, 4)), list(byte_parts(5, 5, 4))
    ([(100, 103)], [(5, 5)])
    """
    for start in range(first, last + 1, part_bytes):
        yield start, min(start + part_bytes, last + 1) - 1


def row_chunks(rows: tuple[int, int], row_bytes: int, chunk_bytes: int = PART_BYTES) -> Iterator[tuple[int, int]]:
    """``rows`` cut into runs of whole rows of about ``chunk_bytes`` (at least one row each).

    >>> list(row_chunks((0, 10), 3, 12))
    [(0, 4), (4, 8), (8, 10)]
    >>> list(row_chunks((5, 7), 100, 12))
    [(5, 6), (6, 7)]
    """
    step = max(1, chunk_bytes // max(1, row_bytes))
    for start in range(rows[0], rows[1], step):
        yield start, min(start + step, rows[1])

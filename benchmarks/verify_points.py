"""The merge's check of a verified atoms field on S3: its sampled points read one region at
a time, N at a time, and from the parts, on the S3 stand-in.

A verified atoms job with a field recomputes φ at the minimum and 64 random grid points and
compares the field there (``tilefan.pipeline.verify.field_at``). On S3 the field is still in
parts when the merge checks it, so each point is a read of its own through the real store
code (``S3BlobStore.read_region``): four requests (the output's metadata, the listing of its
parts, the header of the part holding the point and a ranged GET of it), each paying a
first-byte latency. ``field_at`` does that N at a time; ``field_at_parts``, what the merge
does, reads the metadata and the listing once and then one ranged GET a point, the
store's streams at once.

What is measured: wall time of the 65 reads at each concurrency, through a real boto3 client
over HTTP to ``benchmarks/s3_standin.py``, interleaved round by round. What is modelled: the
latency and per-stream bandwidth (the stand-in's parameters), and a listing that answers in
one page (a field of up to 1,000 tiles).

    PYTHONPATH=. .venv/bin/python benchmarks/verify_points.py [--latency-ms 30] [--stream-mb-s 80] [--repeat 3]

``--zarr``: the field is a Zarr output instead (a 256³ float64 field, one 8 MiB chunk a
tile), whose points ``field_at`` reads 16 at a time through ``read_region`` (the metadata
and the chunk a point), each chunk whole (the span set to 0) or each point's 8 bytes
(``s3_zarr.SPAN_OF_CHUNK``), and through ``zarr_region_reader``, what the merge does: the
metadata read once, then a ranged GET a point.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import numpy as np

from benchmarks.s3_standin import serving
from tilefan.adapters.aws import s3_zarr
from tilefan.adapters.aws.s3_store import S3BlobStore
from tilefan.domain.tiling import num_tiles, tile_region
from tilefan.pipeline.verify import ATOMS_SAMPLES, field_at, field_at_parts

BUCKET = "standin-bucket"
KEY = "fields/phi.npy"
JOB = "0123456789abcdef"
GRID, TILE = (64, 64, 64), (16, 16, 64)
ZARR_KEY, ZARR_GRID, ZARR_TILE = "fields/phi.zarr", (256, 256, 256), (64, 64, 256)


def _whole_chunks(read: Callable[[], np.ndarray]) -> np.ndarray:
    """``read`` with every chunk read whole, as before points were read in part."""
    span, s3_zarr.SPAN_OF_CHUNK = s3_zarr.SPAN_OF_CHUNK, 0.0
    try:
        return read()
    finally:
        s3_zarr.SPAN_OF_CHUNK = span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--stream-mb-s", type=float, default=80.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--zarr", action="store_true", help="a Zarr field: its points read in part or chunk by chunk")
    args = parser.parse_args()
    counts = (1, 4, 8, 16)
    key, grid, tile = (ZARR_KEY, ZARR_GRID, ZARR_TILE) if args.zarr else (KEY, GRID, TILE)
    rng = np.random.default_rng(4)
    field = rng.standard_normal(grid)
    points = np.stack(np.unravel_index(rng.choice(field.size, ATOMS_SAMPLES + 1, replace=False), grid), axis=1)
    with serving(args.latency_ms / 1e3, args.stream_mb_s) as standin:
        store = S3BlobStore(standin.client(max_pool_connections=max(counts) + 4), BUCKET, streams=max(counts))
        store.create_array(key, grid, "float64", JOB, chunks=tile if args.zarr else None)
        tiles = num_tiles(grid, tile)
        for t in range(tiles):
            region = tile_region(grid, tile, t)
            store.write_region(key, JOB, region, field[tuple(slice(a, b) for a, b in region)])
        ways: dict[str, Callable[[], np.ndarray]]
        if args.zarr:
            ranged = functools.partial(field_at, functools.partial(store.read_region, key, JOB), points, 16)
            ways = {"`field_at`, 16 in flight, each chunk whole": functools.partial(_whole_chunks, ranged),
                    "`field_at`, 16 in flight, each point's bytes": ranged,
                    "`field_at` of `zarr_region_reader`, 16 in flight":
                        lambda: field_at(store.zarr_region_reader(key, JOB), points, 16)}
        else:
            ways = {
                **{f"`field_at`, {n} in flight":
                   functools.partial(field_at, functools.partial(store.read_region, key, JOB), points, n)
                   for n in counts},
                f"`field_at_parts`, {store.io_streams()} in flight":
                    lambda: field_at_parts(store, key, JOB, points, tile),
            }
        runs: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.repeat):
            for name, read in ways.items():
                started = time.perf_counter()
                got = read()
                runs[name].append(time.perf_counter() - started)
                assert np.array_equal(got, field[tuple(points.T)]), f"{name} read other values"
    print(f"{len(points)} points of a {grid} float64 field in {tiles} {'chunks' if args.zarr else 'parts'}; stand-in: "
          f"{args.latency_ms:g} ms to first byte, {args.stream_mb_s:g} MB/s a stream; {args.repeat} rounds\n")
    print("| reads | best s | median s | x the first row (median) |")
    print("|---|---|---|---|")
    one = statistics.median(next(iter(runs.values())))
    for name, spent in runs.items():
        median = statistics.median(spent)
        print(f"| {name} | {min(spent):.3f} | {median:.3f} | {one / median:.1f} |")


if __name__ == "__main__":
    main()

"""Throughput of a tile's block read from an S3 stand-in with N = 1, 2, 4, 8, 16 streams.

The read is the real store code path: ``S3BlobStore.read_rows`` of a row block of a stored
``.npy`` matrix (a tile's A row panel, say), through a real boto3 client, over HTTP, from
``benchmarks/s3_standin.py``, a local object server that holds every response back by a
first-byte latency and paces each connection at one stream's bandwidth. What is measured:
wall time of the read and its throughput, and its ratio to one stream, in one run. What
is modelled: the latency and the per-stream bandwidth (the stand-in's parameters, printed),
and that connections do not share a bottleneck (a Lambda's network would cap the sum).

    PYTHONPATH=. .venv/bin/python benchmarks/s3_streams.py [--mib 128] [--latency-ms 30] [--stream-mb-s 80]

Each stream count is read ``--repeat`` times (interleaved, so a burst of load on this
shared machine hits every count alike); the best and the median are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from benchmarks.s3_standin import serving
from tilefan.adapters.aws.s3_store import S3BlobStore
from tilefan.adapters.npy_header import to_npy
from tilefan.domain.transfer import PART_BYTES, read_part_bytes

BUCKET = "standin-bucket"


def modelled_s(nbytes: int, streams: int, latency_s: float, stream_mb_s: float) -> float:
    """What the stand-in's parameters alone allow: the header probe, then waves of part
    reads, each paying the latency and then its part at one stream's rate (one GET of
    everything for 1 stream)."""
    header = latency_s + 4096 / (stream_mb_s * 1e6)
    if streams == 1:
        return header + latency_s + nbytes / (stream_mb_s * 1e6)
    part = read_part_bytes(nbytes, streams)
    parts = -(-nbytes // part)
    waves = -(-parts // streams)
    return header + waves * (latency_s + min(part, nbytes) / (stream_mb_s * 1e6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=128, help="size of the block read, MiB (default 128)")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="stand-in first-byte latency (default 30)")
    parser.add_argument("--stream-mb-s", type=float, default=80.0, help="stand-in bandwidth per stream (default 80)")
    parser.add_argument("--streams", default="1,2,4,8,16", help="stream counts (default 1,2,4,8,16)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    counts = [int(n) for n in args.streams.split(",")]
    # A tile's A row panel: 2,048 rows of float32, as wide as makes --mib MiB.
    rows = 2048
    matrix = np.random.default_rng(0).standard_normal((rows, args.mib * (1 << 20) // (rows * 4)), dtype=np.float32)
    block = (0, rows)
    with serving(args.latency_ms / 1000, args.stream_mb_s) as server:
        client = server.client(max_pool_connections=max(counts))
        client.put_object(Bucket=BUCKET, Key="A.npy", Body=to_npy(matrix))
        stores = {n: S3BlobStore(client, BUCKET, streams=n) for n in counts}
        times: dict[int, list[float]] = {n: [] for n in counts}
        for _ in range(args.repeat):
            for n in counts:
                started = time.perf_counter()
                got = stores[n].read_rows("A.npy", block)
                times[n].append(time.perf_counter() - started)
                if not np.array_equal(got, matrix):
                    raise SystemExit(f"{n} streams read different bytes")
    nbytes = matrix.nbytes
    print(f"S3 stand-in: {args.latency_ms:g} ms to first byte, {args.stream_mb_s:g} MB/s per stream; "
          f"block {rows} x {matrix.shape[1]} float32 = {nbytes / 1e6:.1f} MB; parts of {PART_BYTES >> 20}-"
          f"{PART_BYTES >> 19} MiB; "
          f"{args.repeat} reads per count, interleaved")
    print("| streams | best s | median s | MB/s (best) | x one stream (best) | x (median) | modelled s |")
    print("|---|---|---|---|---|---|---|")
    base_best, base_median = min(times[counts[0]]), statistics.median(times[counts[0]])
    for n in counts:
        best, median = min(times[n]), statistics.median(times[n])
        model = modelled_s(nbytes, n, args.latency_ms / 1000, args.stream_mb_s)
        print(f"| {n} | {best:.3f} | {median:.3f} | {nbytes / 1e6 / best:.0f} | {base_best / best:.2f} | "
              f"{base_median / median:.2f} | {model:.3f} |")


if __name__ == "__main__":
    main()

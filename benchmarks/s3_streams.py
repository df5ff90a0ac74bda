"""Throughput of a tile's block read from, and written to, an S3 stand-in with N = 1, 2, 4, 8, 16 streams.

Reads and writes go through the real store code path: ``S3BlobStore.read_rows`` of a row
block of a stored ``.npy`` matrix (a tile's A row panel, say) and ``S3BlobStore.write_array``
of the same block (a multipart upload above one part), through a real boto3 client, over
HTTP, to ``benchmarks/s3_standin.py``: a local object server that holds every request back
by a first-byte latency and paces each connection at one stream's bandwidth.

What is measured: wall time and throughput of each read and write, and their ratio to
one stream, in one run. What is modelled: the latency and the per-stream bandwidth (the
stand-in's parameters, printed), and that connections share no bottleneck (a Lambda's
network caps the sum; docs/cost-model.md).

    PYTHONPATH=. .venv/bin/python benchmarks/s3_streams.py [--mib 128] [--latency-ms 30] [--stream-mb-s 80]

Each stream count runs ``--repeat`` times, interleaved with the others, so a burst of load
on this shared machine hits every count alike; the best and the median are printed.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from benchmarks.s3_standin import serving
from tilefan.adapters.aws.s3_store import HEADER_PROBE_BYTES, S3BlobStore
from tilefan.adapters.npy_header import to_npy
from tilefan.domain.transfer import PART_BYTES, read_part_bytes

BUCKET = "standin-bucket"
T = TypeVar("T")


def modelled_read_s(nbytes: int, streams: int, latency_s: float, rate: float) -> float:
    """What the stand-in's parameters alone allow a read: the header probe, then waves of
    part reads, each paying the latency and then its part at one stream's rate (one GET
    of everything for one stream)."""
    header = latency_s + HEADER_PROBE_BYTES / rate
    if streams == 1:
        return header + latency_s + nbytes / rate
    part = read_part_bytes(nbytes, streams)
    waves = math.ceil(math.ceil(nbytes / part) / streams)
    return header + waves * (latency_s + min(part, nbytes) / rate)


def modelled_write_s(nbytes: int, streams: int, latency_s: float, rate: float) -> float:
    """A write: create the upload, waves of 8 MiB parts, complete it."""
    waves = math.ceil(math.ceil(nbytes / PART_BYTES) / streams)
    return 2 * latency_s + waves * (latency_s + min(PART_BYTES, nbytes) / rate)


def timed(runs: dict[int, list[float]], n: int, action: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = action()
    runs[n].append(time.perf_counter() - started)
    return result


def table(title: str, runs: dict[int, list[float]], nbytes: int, model: Callable[[int], float]) -> None:
    counts = list(runs)
    print(f"\n{title}\n")
    print("| streams | best s | median s | MB/s (best) | x one stream (best) | x (median) | modelled s |")
    print("|---|---|---|---|---|---|---|")
    base_best, base_median = min(runs[counts[0]]), statistics.median(runs[counts[0]])
    for n in counts:
        best, median = min(runs[n]), statistics.median(runs[n])
        print(f"| {n} | {best:.3f} | {median:.3f} | {nbytes / 1e6 / best:.0f} | {base_best / best:.2f} | "
              f"{base_median / median:.2f} | {model(n):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=128, help="size of the block, MiB (default 128)")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="stand-in first-byte latency (default 30)")
    parser.add_argument("--stream-mb-s", type=float, default=80.0, help="stand-in bandwidth per stream (default 80)")
    parser.add_argument("--streams", default="1,2,4,8,16", help="stream counts (default 1,2,4,8,16)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    counts = [int(n) for n in args.streams.split(",")]
    latency, rate = args.latency_ms / 1000, args.stream_mb_s * 1e6
    # A tile's A row panel: 2,048 rows of float32, as wide as makes --mib MiB.
    rows = 2048
    matrix = np.random.default_rng(0).standard_normal((rows, args.mib * (1 << 20) // (rows * 4)), dtype=np.float32)
    npy = to_npy(matrix)
    reads: dict[int, list[float]] = {n: [] for n in counts}
    writes: dict[int, list[float]] = {n: [] for n in counts}
    with serving(latency, args.stream_mb_s) as server:
        client = server.client(max_pool_connections=max(counts))
        client.put_object(Bucket=BUCKET, Key="A.npy", Body=npy)
        stores = {n: S3BlobStore(client, BUCKET, streams=n) for n in counts}
        for _ in range(args.repeat):
            for n in counts:
                got = timed(reads, n, functools.partial(stores[n].read_rows, "A.npy", (0, rows)))
                if not np.array_equal(got, matrix):
                    raise SystemExit(f"{n} streams read different bytes")
                timed(writes, n, functools.partial(stores[n].write_array, f"out-{n}.npy", matrix))
        for n in counts:
            if stores[max(counts)].read_bytes(f"out-{n}.npy") != npy:
                raise SystemExit(f"{n} streams wrote different bytes")
    print(f"S3 stand-in: {args.latency_ms:g} ms to first byte, {args.stream_mb_s:g} MB/s per stream. Block: "
          f"{rows} x {matrix.shape[1]} float32 = {matrix.nbytes / 1e6:.1f} MB. Reads: ranged GETs of 8-16 MiB "
          f"(one GET for one stream); writes: multipart uploads of {PART_BYTES >> 20} MiB parts. "
          f"{args.repeat} runs per count, interleaved.")
    table("Read (S3BlobStore.read_rows):", reads, matrix.nbytes,
          lambda n: modelled_read_s(matrix.nbytes, n, latency, rate))
    table("Write (S3BlobStore.write_array):", writes, len(npy),
          lambda n: modelled_write_s(len(npy), n, latency, rate))


if __name__ == "__main__":
    main()

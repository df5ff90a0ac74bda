"""The merge of a verified atoms job whose field is a Zarr output on S3, on the S3 stand-in.

The merge recomputes φ at the minimum and 64 sampled grid points and reads the field
there: each point a ranged GET of its chunk, and the array's metadata once (or, in a
revision before that, once a point). This times ``reduce_job`` alone, the tiles run
untimed before it, each round a new job, through a real boto3 client over HTTP to
``benchmarks/s3_standin.py``. It uses only the pipeline's entry points (submit, plan,
tile, reduce), so it runs against another revision's package too: put that checkout
first on ``PYTHONPATH``.

What is measured: the reduce's wall time. What is modelled: S3's latency and per-stream
bandwidth (the stand-in's parameters).

    PYTHONPATH=. .venv/bin/python benchmarks/zarr_field_merge.py [--grid 128] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # the stand-in; a checkout earlier on PYTHONPATH supplies tilefan

from benchmarks.s3_standin import serving  # noqa: E402
from tilefan.adapters.aws.s3_store import S3BlobStore, s3_ports  # noqa: E402
from tilefan.adapters.memory import MemoryJobStore  # noqa: E402
from tilefan.pipeline.plan import plan_job  # noqa: E402
from tilefan.pipeline.reduce import reduce_job  # noqa: E402
from tilefan.pipeline.submit import submit_job  # noqa: E402
from tilefan.pipeline.tile import run_tile  # noqa: E402

BUCKET = "standin-bucket"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--stream-mb-s", type=float, default=80.0)
    args = parser.parse_args()
    n = args.grid
    spent = []
    with serving(args.latency_ms / 1e3, args.stream_mb_s) as standin:
        ports = s3_ports(S3BlobStore(standin.client(max_pool_connections=24), BUCKET, streams=16), MemoryJobStore())
        for r in range(args.rounds):
            job = f"{r:016x}"
            submit_job(ports, {"kind": "atoms", "grid": [n, n, n], "atoms": {"count": 200, "seed": 4},
                               "tile": [n // 4, n // 4, n], "verify": True, "field_out": f"jobs/{job}/phi.zarr"},
                       job_id=job)
            for tile in plan_job(ports, job).tiles:
                run_tile(ports, job, tile.tile_id)
            started = time.perf_counter()
            record = reduce_job(ports, job)
            spent.append(time.perf_counter() - started)
            assert record.result is not None and record.result["verification"]["passed"], record.result
    print(f"reduce of a verified atoms job, {n}³ float64 field in 16 Zarr chunks, 65 points; stand-in "
          f"{args.latency_ms:g} ms to first byte, {args.stream_mb_s:g} MB/s a stream; {args.rounds} rounds: "
          f"median {statistics.median(spent):.3f} s (best {min(spent):.3f} s)")


if __name__ == "__main__":
    main()

"""What the reducer does for a ``.npy`` output and for a Zarr one, side by side.

The same job runs twice per round on the S3 store under moto (S3's own part limits, a
memory job store): once to ``out.npy``, which the reducer assembles with a multipart
upload, and once to ``out.zarr``, whose chunks the tiles wrote. For each it prints the
reducer's S3 requests by operation, the bytes it sent in request bodies and read in
responses, and its wall time (moto's, in-process: compare the two, not with AWS). Then
the same job on this machine (``tilefan run``'s store: files), ``.npy`` against Zarr
(zarr's default zstd chunks), as whole-job wall time and tile time. Nothing reaches AWS.

    PYTHONPATH=. .venv/bin/python benchmarks/zarr_reduce.py [--edge 2048] [--tile 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _spec(edge: int, tile: int, out: str) -> dict[str, Any]:
    return {"kind": "matmul", "a": {"shape": [edge, edge]}, "b": {"shape": [edge, edge]}, "seed": 1,
            "tile": tile, "out": out}


def s3_round(edge: int, tile: int, suffix: str) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from tilefan.adapters.aws.s3_store import S3BlobStore, s3_ports
    from tilefan.adapters.memory import MemoryJobStore
    from tilefan.pipeline.plan import plan_job
    from tilefan.pipeline.reduce import reduce_job
    from tilefan.pipeline.submit import submit_job
    from tilefan.pipeline.tile import run_tile

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bench")
        ports = s3_ports(S3BlobStore(s3, "bench"), MemoryJobStore())
        submit_job(ports, _spec(edge, tile, f"jobs/job1/out.{suffix}"), job_id="job1")
        for t in plan_job(ports, "job1").tiles:
            run_tile(ports, "job1", t.tile_id)
        ops: Counter[str] = Counter()
        sent = [0]
        read = [0]

        def before(model: Any, params: Any, **_: Any) -> None:
            ops[model.name] += 1
            body = params.get("Body")  # the caller's own parameters: the bytes it sends
            sent[0] += len(body) if isinstance(body, bytes | bytearray) else 0

        def after(model: Any, parsed: Any, **_: Any) -> None:
            if model.name == "GetObject":
                read[0] += int(parsed.get("ContentLength") or 0)

        s3.meta.events.register("provide-client-params.s3", before)
        s3.meta.events.register("after-call.s3", after)
        start = time.perf_counter()
        reduce_job(ports, "job1")
        took = time.perf_counter() - start
        return {"ops": dict(sorted(ops.items())), "sent": sent[0], "read": read[0], "seconds": took}


def local_round(edge: int, tile: int, suffix: str, work: Path) -> dict[str, float]:
    from tilefan.bootstrap import build_scheduler, embedded_ports, load_config
    from tilefan.pipeline.submit import submit_job

    config = load_config({"TILEFAN_HOME": str(work / "home"), "TILEFAN_WORKERS": "2"})
    out = work / f"C.{suffix}"
    record = submit_job(embedded_ports(config.home), _spec(edge, tile, str(out)), limits=config.limits)
    final = build_scheduler(config, only={record.job_id}).run_until_done(record.job_id)
    timings = final.to_dict()["timings"]
    return {"wall": timings["wall_s"], "tiles": timings["tiles_s_sum"], "reduce": timings["reduce_s"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edge", type=int, default=2048)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    mb = args.edge * args.edge * 8 / 1e6
    print(f"matmul {args.edge}² float64 ({mb:.1f} MB out), tiles of {args.tile}²; {args.rounds} rounds, alternating")
    s3: dict[str, list[dict[str, Any]]] = {"npy": [], "zarr": []}
    local: dict[str, list[dict[str, float]]] = {"npy": [], "zarr": []}
    for _ in range(args.rounds):
        for suffix in ("npy", "zarr"):
            s3[suffix].append(s3_round(args.edge, args.tile, suffix))
            with tempfile.TemporaryDirectory() as tmp:
                local[suffix].append(local_round(args.edge, args.tile, suffix, Path(tmp)))
    print("\nS3 (moto) reducer")
    for suffix, runs in s3.items():
        first = runs[0]
        secs = statistics.median(r["seconds"] for r in runs)
        print(f"  out.{suffix:4}: requests {sum(first['ops'].values())} {first['ops']}; "
              f"sent {first['sent']:,} B, read {first['read']:,} B; median {secs:.3f} s")
    ratio = statistics.median(r["seconds"] for r in s3["npy"]) / statistics.median(r["seconds"] for r in s3["zarr"])
    print(f"  reduce time, npy / zarr: {ratio:.1f}x")
    print("\nthis machine (files, 2 pool workers), median of the rounds")
    for suffix, rows in local.items():
        print(f"  C.{suffix:4}: wall {statistics.median(r['wall'] for r in rows):.2f} s, "
              f"tile time {statistics.median(r['tiles'] for r in rows):.2f} s, "
              f"reduce {statistics.median(r['reduce'] for r in rows):.3f} s")


if __name__ == "__main__":
    main()

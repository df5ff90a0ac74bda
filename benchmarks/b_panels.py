"""B read once per tile column: what staging a matmul's stored B as column panels changes.

The same matmul of two stored ``.npy`` files runs twice per round, staged and not
(staging switched off by lowering ``bpanels.STAGE_TIME_BUDGET_S``), through the pipeline
steps in this process (plan, every tile, reduce):

* on S3 (moto, in memory): the bytes the job's GETs return, per tile and per job, and the
  requests, counted from the client's responses: what a tile pays for on AWS;
* on the embedded backend (files in a temp dir): the seconds of the plan step and of the
  tiles, best of the rounds, staged over unstaged, side by side: what staging costs here,
  where a memory-mapped tile already reads only its panel's pages.

Both runs must give the same output bits.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/b_panels.py --n 2048 --tile 256
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")  # moto only: fake credentials
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from tilefan.domain import bpanels
from tilefan.pipeline.plan import plan_job
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.reduce import reduce_job
from tilefan.pipeline.submit import submit_job
from tilefan.pipeline.tile import run_tile

BUDGET = bpanels.STAGE_TIME_BUDGET_S


def run(ports: Ports, inputs: dict[str, Any], tile: int, staged: bool,
        mark: Callable[[str], None] = lambda step: None) -> tuple[np.ndarray, dict[str, float]]:
    """One job; its output and the seconds of its steps."""
    bpanels.STAGE_TIME_BUDGET_S = BUDGET if staged else -1.0
    job_id = submit_job(ports, {"kind": "matmul", **inputs, "tile": tile}).job_id
    seconds: dict[str, float] = {}
    mark("plan")
    start = time.perf_counter()
    tiles = plan_job(ports, job_id).tiles
    seconds["plan"] = time.perf_counter() - start
    mark("tiles")
    start = time.perf_counter()
    for t in tiles:
        run_tile(ports, job_id, t.tile_id)
    seconds["tiles"] = time.perf_counter() - start
    mark("reduce")
    record = reduce_job(ports, job_id)
    assert record.result is not None
    out = ports.blobs.read_array(f"jobs/{job_id}/out.npy")
    return out, seconds


def on_s3(a: np.ndarray, b: np.ndarray, tile: int) -> None:
    import boto3
    from moto import mock_aws

    from tilefan.adapters.aws.s3_store import S3BlobStore, s3_ports
    from tilefan.adapters.memory.job_store import MemoryJobStore
    from tilefan.adapters.npy_header import to_npy

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in ("store", "user"):
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket="user", Key="A.npy", Body=to_npy(a))
        s3.put_object(Bucket="user", Key="B.npy", Body=to_npy(b))
        step = {"now": ""}
        got: dict[str, list[int]] = {}

        def count(http_response: Any, **_: Any) -> None:
            got.setdefault(step["now"], []).append(int(http_response.headers.get("content-length", 0)))

        s3.meta.events.register("after-call.s3.GetObject", count)
        inputs = {"a": {"file": "s3://user/A.npy"}, "b": {"file": "s3://user/B.npy"}}
        tiles_total = (a.shape[0] // tile) * (b.shape[1] // tile)
        outs = []
        print(f"S3 (moto): A {a.shape} · B {b.shape} {b.dtype}, {tiles_total} tiles of {tile}², "
              f"B = {b.nbytes / 1e6:.1f} MB")
        print("| | GET bytes, plan step | GET bytes a tile | GET bytes, tiles | GETs, plan + tiles |")
        print("|---|---|---|---|---|")
        for staged in (False, True):
            got.clear()
            out, _ = run(s3_ports(S3BlobStore(s3, "store"), MemoryJobStore()), inputs, tile, staged,
                         lambda now: step.update(now=now))
            outs.append(out)
            plan_b, tiles_b = sum(got.get("plan", [])), sum(got.get("tiles", []))
            gets = len(got.get("plan", [])) + len(got.get("tiles", []))
            print(f"| {'staged' if staged else 'unstaged'} | {plan_b / 1e6:.1f} MB | "
                  f"{tiles_b / tiles_total / 1e6:.2f} MB | {tiles_b / 1e6:.1f} MB | {gets} |")
        np.testing.assert_array_equal(outs[1], outs[0], strict=True)


def on_files(a: np.ndarray, b: np.ndarray, tile: int, rounds: int) -> None:
    from tilefan.adapters.embedded.localfs import LocalBlobStore, local_ports
    from tilefan.adapters.embedded.sqlite_store import SqliteJobStore

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        np.save(root / "A.npy", a)
        np.save(root / "B.npy", b)
        ports = local_ports(LocalBlobStore(root / "blobs"), SqliteJobStore(root / "jobs.sqlite3"))
        inputs = {"a": {"file": str(root / "A.npy")}, "b": {"file": str(root / "B.npy")}}
        best: dict[bool, dict[str, float]] = {False: {}, True: {}}
        outs: dict[bool, np.ndarray] = {}
        for _ in range(rounds):
            for staged in (False, True):
                outs[staged], seconds = run(ports, inputs, tile, staged)
                for k, v in seconds.items():
                    best[staged][k] = min(best[staged].get(k, v), v)
        np.testing.assert_array_equal(outs[True], outs[False], strict=True)
        print(f"\nembedded files: best of {rounds} alternating rounds, one process, tiles one after another")
        print("| | plan step | tiles | plan + tiles |")
        print("|---|---|---|---|")
        for staged in (False, True):
            s = best[staged]
            print(f"| {'staged' if staged else 'unstaged'} | {s['plan']:.3f} s | {s['tiles']:.3f} s | "
                  f"{s['plan'] + s['tiles']:.3f} s |")
        ratio = (best[True]["plan"] + best[True]["tiles"]) / (best[False]["plan"] + best[False]["tiles"])
        print(f"staged / unstaged, plan + tiles: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--files-n", type=int, default=4096)
    parser.add_argument("--files-tile", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((args.n, args.n)).astype(np.float32) for _ in range(2))
    on_s3(a, b, args.tile)
    a, b = (rng.standard_normal((args.files_n, args.files_n)).astype(np.float32) for _ in range(2))
    on_files(a, b, args.files_tile, args.rounds)


if __name__ == "__main__":
    main()

"""Capacity units per partition key that one job's tiles cost the DynamoDB job store.

Runs the job store's requests for a job of ``--tiles`` tiles under moto, in the order a
tile makes them (``run_tile``: read the job, record the start, record the completion),
notes every request and the keys it touches, then prices each request with DynamoDB's
rules on the items' final sizes (an upper bound: items only grow):

- a write costs ceil(size / 1 KB) WCU per item, twice that inside a transaction;
- a strongly consistent read costs ceil(size / 4 KB) RCU per item.

    PYTHONPATH=. .venv/bin/python benchmarks/dynamo_capacity.py --tiles 256

Nothing reaches AWS: moto serves every request, with fake credentials.
"""

from __future__ import annotations

import argparse
import math
import os
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

_FAKE = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item: attribute names plus values (strings as UTF-8, numbers
    one byte per two significant digits plus one)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if isinstance(value, str):
            size += len(value.encode())
        elif isinstance(value, int | float | Decimal):
            digits = len(str(abs(Decimal(str(value)))).replace(".", "").strip("0")) or 1
            size += math.ceil(digits / 2) + 1
        else:
            size += 1
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=256)
    args = parser.parse_args()
    os.environ.update(_FAKE)

    import boto3
    from boto3.dynamodb.types import TypeDeserializer
    from moto import mock_aws

    from tilefan.adapters.aws.dynamo_store import DynamoJobStore
    from tilefan.adapters.aws.dynamo_table import create_table
    from tilefan.domain.records import JobRecord, Status, TileResult
    from tilefan.domain.spec.parse import Limits, parse_spec

    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, "jobs")
        store = DynamoJobStore(client, "jobs")
        spec = parse_spec(
            {"kind": "matmul", "a": {"shape": [65536, 65536]}, "b": {"shape": [65536, 65536]}, "seed": 1,
             "tile": 4096}, limits=Limits(max_matrix_elements=1 << 33))
        store.create_job(JobRecord(job_id="0123456789abcdef0123456789abcdef", kind="matmul", status=Status.QUEUED,
                                   created_at=1.7e9, spec=spec, tiles_total=args.tiles, units_total=args.tiles))
        job_id = "0123456789abcdef0123456789abcdef"
        store.transition(job_id, Status.RUNNING, timings={"started_at": 1.7e9})
        requests: list[tuple[str, list[tuple[str, str]], bool]] = []

        def note(params: dict[str, Any], model: Any, **_: Any) -> None:
            op = model.name
            if op == "TransactWriteItems":
                keys = [next(iter(e.values())).get("Key") or next(iter(e.values()))["Item"]
                        for e in params["TransactItems"]]
                requests.append((op, [(k["pk"]["S"], k["sk"]["S"]) for k in keys], True))
            elif op == "BatchGetItem":
                keys = [k for table in params["RequestItems"].values() for k in table["Keys"]]
                requests.append((op, [(k["pk"]["S"], k["sk"]["S"]) for k in keys], False))
            elif "Key" in params:
                requests.append((op, [(params["Key"]["pk"]["S"], params["Key"]["sk"]["S"])], False))

        client.meta.events.register("provide-client-params.dynamodb.*", note)
        for tile_id in range(args.tiles):
            store.get_job(job_id)
            attempt = store.tile_started(job_id, tile_id, "lambda-0123456789abcdef", "lambda", 1.7e9 + tile_id)
            store.record_tile_done(job_id, attempt=attempt, result=TileResult(
                tile_id=tile_id, units=4096 * 4096, stats={"sum": 12345.678901234567, "sumsq": 98765.43210987654},
                started_at=1.7e9 + tile_id, finished_at=1.7e9 + tile_id + 1.2345678, worker="lambda-0123456789abcdef",
                route="lambda", bytes_read=2 * 4096 * 65536 * 4, bytes_written=4096 * 4096 * 4))
        client.meta.events.unregister("provide-client-params.dynamodb.*", note)
        # Plain values (works on any revision's layout, so two revisions can be compared).
        items = [{n: TypeDeserializer().deserialize(v) for n, v in i.items()}
                 for i in client.scan(TableName="jobs")["Items"]]
        sizes = {(i["pk"], i["sk"]): item_size(i) for i in items}

    wcu: dict[str, float] = defaultdict(float)
    rcu: dict[str, float] = defaultdict(float)
    ops: Counter[str] = Counter()
    for op, keys, transactional in requests:
        ops[op] += 1
        for key in keys:
            size = sizes[key]
            if op in ("BatchGetItem", "GetItem"):
                rcu[key[0]] += math.ceil(size / 4096)
            else:
                wcu[key[0]] += math.ceil(size / 1024) * (2 if transactional else 1)
    job_pk = f"JOB#{job_id}"
    tile_sizes = [s for (pk, sk), s in sizes.items() if sk.startswith("TILE#")]
    print(f"tiles: {args.tiles}; requests: {dict(ops)}")
    attempt_sizes = [s for (pk, sk), s in sizes.items() if sk.startswith("TRY#")]
    print(f"item sizes (bytes): job {sizes[(job_pk, 'JOB')]}, done tile <= {max(tile_sizes)}, "
          f"counter {max([s for (pk, sk), s in sizes.items() if sk == 'COUNT'], default='(none)')}, "
          f"attempt <= {max(attempt_sizes, default='(none)')}")
    per_tile_w = {pk: w / args.tiles for pk, w in wcu.items()}
    per_tile_r = {pk: r / args.tiles for pk, r in rcu.items()}
    shard_w = [w for pk, w in per_tile_w.items() if pk != job_pk] or [0.0]
    print(f"WCU per tile: job key {per_tile_w.get(job_pk, 0.0):.2f}; other keys together {sum(shard_w):.2f}; "
          f"busiest other key {max(shard_w):.3f} (over {len(shard_w)} keys)")
    shard_r = [r for pk, r in per_tile_r.items() if pk != job_pk] or [0.0]
    print(f"RCU per tile: job key {per_tile_r.get(job_pk, 0.0):.2f}; busiest other key {max(shard_r):.3f}")


if __name__ == "__main__":
    main()

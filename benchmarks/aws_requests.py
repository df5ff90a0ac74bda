"""AWS requests one job makes, per job and per tile, counted on the moto stack.

Runs the same job at two tile counts on the emulated stack the functional tests use (REST
→ Step Functions running the real ASL → the Lambda handlers in-process → S3 and
DynamoDB), counts every AWS API call the code makes (botocore's ``_make_api_call``), and
prints, for each service and operation, the calls per tile (the difference between the
two runs over the difference in tiles) and the rest per job. The cost model's request
counts (``tilefan/domain/cost_model.py``) are checked against this; docs/cost-model.md
quotes its output. Polling the execution's status is left out (the model does not charge
for a client's polling). Nothing reaches AWS: moto serves every request, with fake
credentials.

    PYTHONPATH=. .venv/bin/python benchmarks/aws_requests.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

JOBS: dict[str, tuple[dict[str, Any], int, int]] = {
    # spec, and the two tile edges to run it with (4 and 16 tiles)
    "matmul, random inputs": ({"kind": "matmul", "a": {"shape": [64, 48]}, "b": {"shape": [48, 64]}}, 32, 16),
    "add, uploaded inputs": ({"kind": "add", "a": "A", "b": "B"}, 32, 16),
    "atoms, field written": ({"kind": "atoms", "grid": [32, 32, 8], "atoms": {"count": 50, "seed": 1},
                              "field": True}, 16, 8),
}


def run(spec: dict[str, Any], tile: int) -> tuple[int, Counter[tuple[str, str]]]:
    """Run ``spec`` with ``tile`` on a fresh stack; its tile count and the calls made."""
    import botocore.client
    import numpy as np

    from tests.functional.aws_stack import BUCKET, aws_api, aws_stack
    from tests.functional.identity import ALICE, client_as
    from tests.functional.rest_client import JSON, submit
    from tests.helpers import npy_bytes

    calls: Counter[tuple[str, str]] = Counter()
    real = botocore.client.BaseClient._make_api_call

    def counted(client: Any, operation: str, params: Any) -> Any:
        calls[(client.meta.service_model.service_name, operation)] += 1
        # Items written in transactions and keys read in batches: what DynamoDB's units follow.
        if operation == "TransactWriteItems":
            calls[("dynamodb", "TransactWriteItems: items")] += len(params["TransactItems"])
        if operation == "BatchGetItem":
            calls[("dynamodb", "BatchGetItem: keys")] += sum(len(r["Keys"]) for r in params["RequestItems"].values())
        return real(client, operation, params)

    tiled = {**spec, "tile": tile}
    quiet = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
    with aws_stack(env=quiet) as stack, client_as(aws_api(), ALICE) as client:  # a signed caller
        if spec.get("a") == "A":  # upload two files the way a client does, before counting
            for name in ("a", "b"):
                target = client.http.post("/uploads", headers=JSON, body=json.dumps({"filename": f"{name}.npy"}))
                key = target.json_body["key"]
                stack.client("s3").put_object(Bucket=BUCKET, Key=key, Body=npy_bytes(np.ones((64, 64))))
                client.http.post(target.json_body["complete"])
                tiled[name] = {"file": key}
        with mock.patch.object(botocore.client.BaseClient, "_make_api_call", counted):
            job_id = submit(client, tiled)
            stack.wait_execution(job_id)
            stack.wait_all_returned()
        tiles = json.loads(stack.client("s3").get_object(Bucket=BUCKET, Key=f"jobs/{job_id}/manifest.json")["Body"]
                           .read())["totals"]["tiles"]
    calls.pop(("stepfunctions", "DescribeExecution"), None)
    return tiles, calls


def main() -> None:
    for name, (spec, big, small) in JOBS.items():
        n1, c1 = run(spec, big)
        n2, c2 = run(spec, small)
        print(f"\n{name}: {n1} and {n2} tiles")
        print("| service | operation | per tile | per job |")
        print("|---|---|---|---|")
        for key in sorted(set(c1) | set(c2)):
            per_tile = (c2[key] - c1[key]) / (n2 - n1)
            print(f"| {key[0]} | {key[1]} | {per_tile:g} | {c1[key] - per_tile * n1:g} |")


if __name__ == "__main__":
    main()

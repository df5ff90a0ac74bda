"""Events an inline-Map run writes to the execution's history, measured under moto: what
``sfn_limits`` assumes per job and per tile (the inline threshold's ceiling rests on it)."""

from __future__ import annotations

from typing import Any

from tests.functional.aws_stack import aws_stack
from tests.functional.rest_client import post_job, wait_job
from tilefan.domain.sfn_limits import INLINE_EVENTS_PER_JOB, INLINE_EVENTS_PER_TILE


def test_an_inline_run_writes_the_events_sfn_limits_assumes(client: Any) -> None:
    counts: dict[int, int] = {}
    with aws_stack(distributed_threshold=100) as stack:
        for tiles in (1, 4, 9):
            spec = {"kind": "add", "a": {"shape": [tiles * 4, 4]}, "b": {"shape": [tiles * 4, 4]}, "tile": 4}
            doc = wait_job(client, post_job(client, spec).json_body["job_id"])
            assert doc["status"] == "SUCCEEDED" and doc["progress"]["tiles_done"] == tiles
            stack.wait_execution(doc["job_id"])
            pages = stack.client("stepfunctions").get_paginator("get_execution_history").paginate(
                executionArn=stack.execution_arn(doc["job_id"]))
            counts[tiles] = sum(len(page["events"]) for page in pages)
    assert counts == {n: INLINE_EVENTS_PER_JOB + INLINE_EVENTS_PER_TILE * n for n in (1, 4, 9)}

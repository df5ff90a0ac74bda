"""Batched Distributed Map items: the packaged definition (ItemBatcher, concurrency aligned
with the tile function's reserved concurrency) and the tile Lambda taking a batch, over
in-memory ports (no I/O, no AWS)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib import lambdas
from tilefan.adapters.memory import memory_ports
from tilefan.bootstrap import AwsSettings
from tilefan.domain.records import Status
from tilefan.errors import InvalidSpecError
from tilefan.pipeline.plan import plan_job
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.submit import submit_job
from tilefan.pipeline.tile_batch import MAX_BATCH_ITEMS, batch_size

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")

ROOT = Path(__file__).resolve().parents[2]
ASL = json.loads((ROOT / "stepfunctions" / "tilefan.asl.json").read_text())
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
_spec = importlib.util.spec_from_file_location("packaged_asl", ROOT / "stepfunctions" / "packaged_asl.py")
assert _spec is not None and _spec.loader is not None
packaged_asl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(packaged_asl)
PACKAGED = packaged_asl.packaged_definition(ASL, CONFIG)
SETTINGS = AwsSettings(bucket="b", table="t", state_machine_arn="", region="us-east-1")
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:tilefan:job1"


class Context:
    aws_request_id = "req-9"


# --------------------------------------------------------------------------- the packaged definition


def test_the_packaged_distributed_map_batches_items_by_the_plan_steps_count() -> None:
    dist = PACKAGED["States"]["DistributedMap"]
    assert dist["ItemBatcher"]["MaxItemsPerBatchPath"] == "$.batch_items"
    assert dist["ItemBatcher"]["BatchInput"] == {
        "execution_id.$": "$$.Execution.Id",
        "heartbeat_seconds.$": "$.spot.heartbeat_seconds",
        "timeout_seconds.$": "$.spot.timeout_seconds",
    }
    # Everything else about the map is the definition the functional tests run under moto.
    source = ASL["States"]["DistributedMap"]
    for field in ("ItemReader", "ResultWriter", "ResultPath", "ToleratedFailurePercentage", "Catch", "Next"):
        assert dist[field] == source[field], field
    # The items are the item list's own; what ItemSelector added per item comes per batch.
    assert "ItemSelector" not in dist
    per_item = {k.removesuffix(".$") for k in source["ItemSelector"]}
    per_batch = {k.removesuffix(".$") for k in dist["ItemBatcher"]["BatchInput"]}
    assert per_item == {"job_id", "tile_id", "route"} | per_batch
    # The repository's definition stays unbatched: moto's parser rejects ItemBatcher.
    assert "ItemBatcher" not in json.dumps(ASL)


def test_a_batch_child_runs_the_lambda_tiles_then_queues_the_spot_tiles_with_the_same_task() -> None:
    processor = PACKAGED["States"]["DistributedMap"]["ItemProcessor"]
    source = ASL["States"]["DistributedMap"]["ItemProcessor"]["States"]
    assert processor["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    batch = processor["States"][processor["StartAt"]]
    assert batch["Parameters"] == {"FunctionName": "${TileFunctionArn}",
                                   "Payload": {"Items.$": "$.Items", "BatchInput.$": "$.BatchInput"}}
    assert batch["Retry"] == source["DistributedTile"]["Retry"]  # a failed batch retries as a tile does
    assert batch["ResultSelector"] == {"spot_items.$": "$.Payload.spot_items"}
    spot_map = processor["States"][batch["Next"]]
    assert spot_map["Type"] == "Map" and spot_map["ItemsPath"] == "$.batch.spot_items"
    assert spot_map["ResultPath"] is None and spot_map["End"] is True
    inner = spot_map["ItemProcessor"]
    assert inner["ProcessorConfig"] == {"Mode": "INLINE"}
    spot = inner["States"][inner["StartAt"]]
    assert spot == {**source["DistributedSpotTile"], "End": True}


def test_map_concurrency_is_the_tile_functions_reserved_concurrency() -> None:
    reserved = CONFIG["lambda_functions"]["tile"]["reserved_concurrency"]
    assert PACKAGED["States"]["DistributedMap"]["MaxConcurrency"] == reserved
    # The definition moto runs says the same, so tests and deployments agree.
    assert ASL["States"]["DistributedMap"]["MaxConcurrency"] == reserved
    # Room for the other functions' reserved shares and Lambda's unreserved 100 in a 1,000 account.
    assert sum(f["reserved_concurrency"] for f in CONFIG["lambda_functions"].values()) <= 900


# --------------------------------------------------------------------------- the tile Lambda with a batch


@pytest.fixture
def ports() -> Iterator[Ports]:
    made = memory_ports()
    lambdas.set_ports(made, SETTINGS)
    yield made
    lambdas.set_ports(None)


def planned_job(ports: Ports) -> str:
    record = submit_job(ports, {"kind": "add", "a": {"shape": "8x8"}, "b": {"shape": "8x8"}, "tile": 4},
                        job_id="job1")
    plan_job(ports, record.job_id)
    assert ports.jobs.get_job("job1").status is Status.RUNNING
    return record.job_id


def batch(tiles: list[tuple[int, str]]) -> dict[str, Any]:
    return {"Items": [{"job_id": "job1", "tile_id": t, "route": r} for t, r in tiles],
            "BatchInput": {"execution_id": EXECUTION, "heartbeat_seconds": 60, "timeout_seconds": 600}}


def test_a_batch_records_each_lambda_tile_once_and_hands_back_the_spot_tiles(ports: Ports) -> None:
    job_id = planned_job(ports)
    out = lambdas.tile_handler(batch([(0, "lambda"), (1, "spot"), (2, "lambda"), (3, "lambda")]), Context())
    assert out["job_id"] == job_id
    assert out["tiles"] == [{"tile_id": t, "recorded": True, "outcome": "recorded"} for t in (0, 2, 3)]
    assert out["spot_items"] == [{"job_id": "job1", "tile_id": 1, "route": "spot", "execution_id": EXECUTION,
                                  "heartbeat_seconds": 60, "timeout_seconds": 600}]
    assert [r.tile_id for r in ports.jobs.tile_results(job_id)] == [0, 2, 3]
    # The whole batch again (a retried child): nothing counts twice.
    again = lambdas.tile_handler(batch([(0, "lambda"), (1, "spot"), (2, "lambda"), (3, "lambda")]), Context())
    assert [t["recorded"] for t in again["tiles"]] == [False, False, False]
    assert ports.jobs.get_job(job_id).tiles_done == 3
    # A single item still works beside batches.
    single = lambdas.tile_handler({"job_id": "job1", "tile_id": 1, "execution_id": EXECUTION}, Context())
    assert single == {"job_id": "job1", "tile_id": 1, "recorded": True}
    assert ports.jobs.get_job(job_id).tiles_done == 4


@pytest.mark.parametrize("event, field", [
    ({"Items": []}, "Items"),
    ({"Items": [{"job_id": "job1"}]}, "Items[0].tile_id"),
    ({"Items": [{"job_id": "job1", "tile_id": 0, "route": "gpu"}]}, "Items[0].route"),
    ({"Items": [{"job_id": "job1", "tile_id": 0}, {"job_id": "job2", "tile_id": 0}]}, "Items"),
    ({"Items": [{"job_id": "job1", "tile_id": 0}], "BatchInput": [1]}, "BatchInput"),
])
def test_a_malformed_batch_names_the_field_before_touching_the_stores(event: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        lambdas.tile_handler(event, Context())
    assert caught.value.field == field


def test_the_item_list_holds_what_a_batch_item_needs(ports: Ports) -> None:
    planned_job(ports)
    items = ports.blobs.get_json("jobs/job1/items.json")
    assert items and all(set(item) == {"job_id", "tile_id", "route"} for item in items)


def test_a_batch_holds_as_many_of_the_slowest_lambda_tiles_as_fit_the_time_budget() -> None:
    ports = memory_ports()
    planned_job(ports)
    from tilefan.domain.plan import plan as make_plan

    the_plan = make_plan("job1", ports.jobs.get_job("job1").spec, SETTINGS.route_policy)
    slowest = max(t.lambda_s for t in the_plan.tiles)
    n = batch_size(the_plan, SETTINGS.route_policy)
    assert 1 <= n <= MAX_BATCH_ITEMS
    assert n == MAX_BATCH_ITEMS or (n * slowest <= SETTINGS.route_policy.lambda_time_budget
                                    < (n + 1) * slowest)

"""The state machine definition as deployed: tilefan.asl.json plus what moto cannot run.

moto (the offline test double of Step Functions) rejects ``ItemBatcher``, so the definition
in the repository, which the functional tests run, sends one tile per child execution.
``package.sh`` deploys this function's output instead, in which the Distributed Map:

- batches items (``ItemBatcher``; the plan step says how many per batch in
  ``$.batch_items``, from its run-time estimates, so a batch fits one tile Lambda call);
- gives each child a batch: the tile Lambda runs the batch's Lambda tiles and returns the
  spot tiles, which an inline Map in the child queues for EC2 workers exactly as the
  unbatched branch does (the same task, with the same retries);
- runs at most as many children at once as the tile function's reserved concurrency
  (.chalice/config.json), the one number both read: a child runs one tile Lambda at a time.

Run as a script: ``python packaged_asl.py tilefan.asl.json .chalice/config.json out.json``.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

MAP = "DistributedMap"
TILE = "DistributedTile"
SPOT = "DistributedSpotTile"
BATCH_TILE = "DistributedTileBatch"
BATCH_SPOT = "DistributedSpotTiles"


def tile_concurrency(config: dict[str, Any]) -> int:
    """The tile function's reserved concurrency: the Distributed Map's MaxConcurrency too."""
    return int(config["lambda_functions"]["tile"]["reserved_concurrency"])


def packaged_definition(asl: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """``asl`` with the Distributed Map batched and its concurrency aligned (a new dict)."""
    out = copy.deepcopy(asl)
    dist = out["States"][MAP]
    states = dist["ItemProcessor"]["States"]
    tile, spot = states[TILE], states[SPOT]
    dist["MaxConcurrency"] = tile_concurrency(config)
    # A batch's items are the item list's own ({job_id, tile_id, route}); what the
    # ItemSelector added to each item comes once per batch in BatchInput instead.
    dist.pop("ItemSelector", None)
    dist["ItemBatcher"] = {
        "MaxItemsPerBatchPath": "$.batch_items",
        # The same for every item of the batch; the tile Lambda merges it into each item.
        "BatchInput": {
            "execution_id.$": "$$.Execution.Id",
            "heartbeat_seconds.$": "$.spot.heartbeat_seconds",
            "timeout_seconds.$": "$.spot.timeout_seconds",
        },
    }
    batch_tile = {
        "Type": "Task",
        "Comment": "Run the batch's Lambda tiles, one after another; each is recorded done exactly once. "
                   "Returns the batch's spot tiles for the next state.",
        "Resource": tile["Resource"],
        "Parameters": {
            "FunctionName": tile["Parameters"]["FunctionName"],
            "Payload": {"Items.$": "$.Items", "BatchInput.$": "$.BatchInput"},
        },
        "ResultSelector": {"spot_items.$": "$.Payload.spot_items"},
        "ResultPath": "$.batch",
        "Retry": copy.deepcopy(tile["Retry"]),
        "Next": BATCH_SPOT,
    }
    spot_task = copy.deepcopy(spot)
    spot_task["End"] = True
    batch_spot = {
        "Type": "Map",
        "Comment": "Queue each spot tile of the batch for an EC2 worker (none for most batches).",
        "ItemsPath": "$.batch.spot_items",
        "ResultPath": None,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": SPOT,
            "States": {SPOT: spot_task},
        },
        "End": True,
    }
    dist["ItemProcessor"]["StartAt"] = BATCH_TILE
    dist["ItemProcessor"]["States"] = {BATCH_TILE: batch_tile, BATCH_SPOT: batch_spot}
    return out


def main(argv: list[str]) -> None:
    asl_path, config_path, out_path = argv
    with open(asl_path) as f:
        asl = json.load(f)
    with open(config_path) as f:
        config = json.load(f)
    with open(out_path, "w") as f:
        json.dump(packaged_definition(asl, config), f, indent=2)


if __name__ == "__main__":
    main(sys.argv[1:])

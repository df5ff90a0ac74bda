"""A batch of tiles in one tile call: what a Distributed Map child gets when items are batched.

With ``ItemBatcher`` (the packaged state machine, stepfunctions/packaged_asl.py) a child
execution receives ``{"Items": [...], "BatchInput": {...}}`` instead of one item. The tile
step runs the batch's Lambda tiles one after another through ``run_tile`` (so each is
recorded done exactly once, however often the batch is retried) and hands the spot tiles
back: the child's spot branch queues each of them for an EC2 worker.

``BatchInput`` carries what is the same for every item (the parent execution and the spot
task's heartbeat and timeout); an item's own fields win over it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tilefan.domain.plan import Plan
from tilefan.domain.routing import LAMBDA, SPOT, RoutePolicy
from tilefan.errors import InvalidSpecError
from tilefan.pipeline import event_fields as fields
from tilefan.pipeline.tile import TileRun

# Items per batch at most: a batch is one Lambda call, and its input stays far below the
# 256 KiB a child execution may receive (an item is about 200 bytes).
MAX_BATCH_ITEMS = 100


@dataclass(frozen=True)
class BatchItem:
    job_id: str
    tile_id: int
    route: str
    fields: dict[str, Any]  # the item as the spot branch needs it (BatchInput merged in)


def is_batch(event: Mapping[str, Any]) -> bool:
    """Whether a tile event is a batch (``Items``) rather than one tile."""
    return "Items" in event


def batch_items(event: Mapping[str, Any]) -> list[BatchItem]:
    """The batch's items, each checked; InvalidSpecError names the first bad field."""
    raw = event.get("Items")
    if not isinstance(raw, list) or not raw:
        raise InvalidSpecError("Items", f"must be a non-empty list, got {raw!r}")
    shared = fields.mapping(event.get("BatchInput", {}), "BatchInput")
    items = []
    for i, value in enumerate(raw):
        item = {**shared, **fields.mapping(value, f"Items[{i}]")}
        try:
            job_id, tile_id = fields.text(item, "job_id"), fields.integer(item, "tile_id")
            route = item.get("route", LAMBDA)
            if route not in (LAMBDA, SPOT):
                raise InvalidSpecError("route", f"must be {LAMBDA!r} or {SPOT!r}, got {route!r}")
        except InvalidSpecError as exc:
            raise InvalidSpecError(f"Items[{i}].{exc.field}", exc.message) from None
        items.append(BatchItem(job_id, tile_id, route, item))
    if len({item.job_id for item in items}) != 1:
        raise InvalidSpecError("Items", "must all belong to one job")
    return items


def run_batch(items: Sequence[BatchItem], run: Callable[[BatchItem], TileRun]) -> dict[str, Any]:
    """Run the batch's Lambda tiles with ``run``, in order; return what each did and the
    spot items left for the spot branch. The first error stops the batch and reaches the
    state machine, whose retry runs the whole batch again (recorded tiles stay counted once)."""
    tiles = []
    for item in items:
        if item.route == LAMBDA:
            outcome = run(item)
            tiles.append({"tile_id": item.tile_id, "recorded": outcome.recorded, "outcome": outcome.outcome.value})
    return {
        "job_id": items[0].job_id,
        "tiles": tiles,
        "spot_items": [item.fields for item in items if item.route == SPOT],
    }


def batch_size(the_plan: Plan, policy: RoutePolicy) -> int:
    """Items per batch: as many of the plan's slowest Lambda tile as fit the Lambda's time
    budget one after another, at most MAX_BATCH_ITEMS, at least one.

    >>> from tilefan.domain.plan import TilePlan
    >>> from tilefan.domain.routing import Prices
    >>> tile = TilePlan(0, ((0, 1),), 1, 1, 1, 1, 1, LAMBDA, lambda_s=40.0)
    >>> batch_size(Plan("j", "add", (1,), (1,), (tile,)), RoutePolicy(prices=Prices.unpriced()))  # 450 s
    11
    """
    slowest = max((t.lambda_s for t in the_plan.tiles if t.route == LAMBDA), default=0.0)
    if slowest <= 0:
        return MAX_BATCH_ITEMS
    return max(1, min(MAX_BATCH_ITEMS, math.floor(policy.lambda_time_budget / slowest)))

"""The AWS time and cost model of a planned job: wall time, Lambda GB-seconds and dollars.

Pure: it reads a plan manifest (``Plan.manifest()``, the document stored beside every job)
and a description of the deployed stack, and predicts what running it on AWS takes:

* **Concurrency.** Tiles run through the inline Map (at most 40 at once) up to the
  distributed threshold, through the Distributed Map (MaxConcurrency 1000) above it, and
  never more at once than the tile function's reserved concurrency (800).
* **Time.** Each Lambda tile takes the planner's estimate (``est_lambda_s``: start-up
  overhead, flops at the Lambda rate, bytes at the S3 rate per function). Tiles start in
  item order on the first free slot; the first tile on each slot also pays a cold start
  and every tile pays Step Functions' start of its iteration. Spot tiles run on the spot
  workers after they boot. Plan and reduce add their own time (the reduce term is
  parametric: a fixed part plus output bytes at a throughput).
* **Money.** Lambda GB-seconds (tiles, their cold starts, plan and reduce) and requests,
  Step Functions state transitions, DynamoDB write and read units, S3 requests, and spot
  instance time, at the prices the policy carries (``RoutePolicy.prices``).
* **Limits.** History events of the largest execution against the 25,000 cap, and the
  write units per second on each DynamoDB counter shard at the peak completion rate
  against the 1,000 a partition serves.

docs/cost-model.md says where each figure comes from and how uncertain it is, and checks
the worked examples by hand.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tilefan.domain.routing import SPOT, TRANSITIONS_PER_JOB, TRANSITIONS_PER_TILE, RoutePolicy
from tilefan.domain.sfn_limits import HISTORY_EVENT_CAP, INLINE_EVENTS_PER_JOB, INLINE_EVENTS_PER_TILE
from tilefan.domain.transfer import function_io_mb_s, io_streams

# Requests counted on the moto stack (benchmarks/aws_requests.py) and priced with
# DynamoDB's rules on the items' sizes (benchmarks/dynamo_capacity.py, docs/aws-scale.md).
# DynamoDB, per tile: the start (two UpdateItems: the tile and its new attempt, 1 write
# unit each), the completion transaction (tile, shard counter and attempt, 2 + 2 + 2), and
# one strongly consistent BatchGetItem of the job (its item and 16 counters, 1 read unit each).
DYNAMO_SHARDS = 16
WRITE_UNITS_PER_TILE = 2 * 1 + 2 * 3
READ_UNITS_PER_TILE = 1 + DYNAMO_SHARDS
# Per job: three transactions of the job item and its 16 status copies, 53 items in all
# (create and the end also write the owner's count of active jobs; 2 units an item), and
# one update; six job reads. The reducer's 16 queries of the tile and attempt items
# (about 0.1 unit a tile) are left out.
WRITE_UNITS_PER_JOB = 2 * ((2 + DYNAMO_SHARDS) + (1 + DYNAMO_SHARDS) + (2 + DYNAMO_SHARDS)) + 1
READ_UNITS_PER_JOB = 6 * (1 + DYNAMO_SHARDS)
PARTITION_WRITE_UNITS_S = 1000
PARTITION_READ_UNITS_S = 3000
# S3, per tile: GETs measured 2 (random inputs), 3 (atoms) and 6 (two uploaded inputs: a
# header probe and a ranged read each), charged at the most; the partial's upload (one PUT,
# or a multipart upload of 8 MiB parts plus create and complete above 8 MiB); one more
# PUT-class request for the reducer's copy of it. Per job: GETs 1 to 11 (11 with uploaded
# inputs), PUT-class 9 or 10 (PUTs 3 or 4, the output's create, part and complete, 3 LISTs).
S3_GETS_PER_TILE = 6
S3_PART_BYTES = 8 << 20
S3_GETS_PER_JOB = 11
S3_PUTS_PER_JOB = 10
# A Distributed Map child execution's history: an inline iteration's events plus its own
# start and end. The parent's: an inline job's events plus the map run's start and end.
CHILD_EVENTS = INLINE_EVENTS_PER_TILE + 2
DISTRIBUTED_PARENT_EVENTS = INLINE_EVENTS_PER_JOB + 2


@dataclass(frozen=True)
class Deployment:
    """The deployed stack as the model sees it. Defaults are this repository's files
    (stepfunctions/tilefan.asl.json, .chalice/config.json); the timing terms are estimates,
    calibrated in docs/cost-model.md."""

    inline_concurrency: int = 40  # InlineMap MaxConcurrency
    distributed_concurrency: int = 800  # DistributedMap MaxConcurrency (packaging sets it to the tile reservation)
    tile_reserved_concurrency: int = 800  # the tile function's reserved concurrency
    distributed_threshold: int = 256  # TILEFAN_DISTRIBUTED_THRESHOLD
    tile_memory_mb: int = 10_240
    plan_memory_mb: int = 3008
    reduce_memory_mb: int = 10_240
    plan_s: float = 3.0  # the plan Lambda: resolve, write manifest and items, record tiles
    cold_start_s: float = 2.0  # a fresh tile Lambda's init (runtime, NumPy, boto3), once per slot
    iteration_start_s: float = 0.1  # Step Functions starting one Map iteration or child execution
    reduce_fixed_s: float = 2.0  # the reduce Lambda's own work: check every tile, write the result
    # Output bytes the reducer moves per second: one function's S3 rate at its streams.
    reduce_mb_s: float = function_io_mb_s(io_streams(10_240))
    spot_boot_s: float = 180.0  # launch to the first tile: boot, install, first poll


def makespan(durations: Sequence[float], slots: int, first_extra: float = 0.0) -> float:
    """When the last of ``durations`` finishes if each starts, in order, on the first free
    of ``slots``; the first task on each slot takes ``first_extra`` longer (a cold start).

    >>> makespan([10.0] * 5, 2)
    30.0
    >>> makespan([3.0, 1.0, 1.0, 1.0], 2), makespan([1.0] * 5, 2)
    (3.0, 3.0)
    >>> makespan([10.0, 1.0, 1.0, 1.0], 2, first_extra=2.0)
    12.0
    >>> makespan([], 4)
    0.0
    """
    if not durations:
        return 0.0
    slots = max(1, min(slots, len(durations)))
    free = [d + first_extra for d in durations[:slots]]
    heapq.heapify(free)
    for d in durations[slots:]:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


@dataclass(frozen=True)
class AwsPrediction:
    """What the model predicts for one job on AWS (seconds, GB-seconds, units, USD)."""

    tiles: int
    lambda_tiles: int
    spot_tiles: int
    map_mode: str  # "inline" or "distributed"
    concurrency: int  # Lambda tiles running at once at most
    waves: int  # ceil(Lambda tiles / concurrency)
    tile_s_mean: float  # Lambda tiles
    tile_s_max: float
    spot_tile_s_mean: float
    plan_s: float
    map_s: float
    reduce_s: float
    wall_s: float
    lambda_gb_s: float  # all functions: tiles with their cold starts, plan, reduce
    tile_gb_s: float  # the tiles' own run time x memory: what the report measures
    lambda_requests: int
    transitions: int
    history_events_max: int  # in the largest single execution
    history_fits: bool
    dynamo_write_units: int
    dynamo_read_units: int
    shard_write_units_s: float  # on each counter shard at the peak completion rate
    job_read_units_s: float  # on the job's key at that rate
    dynamo_fits: bool
    s3_gets: int
    s3_puts: int
    spot_workers: int
    spot_instance_s: float
    lambda_usd: float
    steps_usd: float
    dynamo_usd: float
    s3_usd: float
    spot_usd: float

    @property
    def total_usd(self) -> float:
        return self.lambda_usd + self.steps_usd + self.dynamo_usd + self.s3_usd + self.spot_usd

    prices: str  # where the figures charged come from (``Prices.as_of``)

    def to_dict(self) -> dict[str, Any]:
        doc = {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items() if k != "prices"}
        doc["total_usd"] = round(self.total_usd, 6)
        doc["prices"] = self.prices  # after the total, where the document always had it
        return doc


def predict(manifest: Mapping[str, Any], policy: RoutePolicy, deployment: Deployment | None = None) -> AwsPrediction:
    """The AWS prediction for a plan manifest (``Plan.manifest()``), at the policy's prices.

    >>> from tilefan.domain.routing import Prices
    >>> tiles = [{"route": "lambda", "est_lambda_s": 10.0, "est_spot_s": 1.0, "bytes_out": 0}] * 100
    >>> bare = Deployment(plan_s=0.0, reduce_fixed_s=0.0, iteration_start_s=0.0)
    >>> p = predict({"tiles": tiles}, RoutePolicy(prices=Prices.unpriced()), bare)
    >>> p.map_mode, p.concurrency, p.waves, p.wall_s, p.tile_gb_s, p.total_usd
    ('inline', 40, 3, 32.0, 10000.0, 0.0)
    """
    prices = policy.prices
    dep = deployment or Deployment()
    tiles = list(manifest.get("tiles", []))
    n = len(tiles)
    distributed = n > dep.distributed_threshold
    on_lambda = [t for t in tiles if t.get("route") != SPOT]
    on_spot = [t for t in tiles if t.get("route") == SPOT]
    map_slots = dep.distributed_concurrency if distributed else dep.inline_concurrency
    concurrency = min(map_slots, dep.tile_reserved_concurrency, len(on_lambda))

    tile_s = [float(t.get("est_lambda_s", 0.0)) for t in on_lambda]
    lambda_map_s = makespan([s + dep.iteration_start_s for s in tile_s], concurrency, dep.cold_start_s)
    workers = min(len(on_spot), policy.spot_max_workers)
    spot_s = [float(t.get("est_spot_s", 0.0)) for t in on_spot]
    spot_map_s = dep.spot_boot_s + makespan(spot_s, workers) if on_spot else 0.0
    # The plan step also stages a stored B's column panels when the plan says so.
    plan_s = dep.plan_s + float(manifest.get("b_panels", {}).get("est_stage_s", 0.0))
    bytes_out = sum(int(t.get("bytes_out", 0)) for t in tiles)
    reduce_s = dep.reduce_fixed_s + bytes_out / (dep.reduce_mb_s * 1e6)
    map_s = max(lambda_map_s, spot_map_s)

    gb = dep.tile_memory_mb / 1024
    tile_gb_s = sum(tile_s) * gb
    lambda_gb_s = (tile_gb_s + concurrency * dep.cold_start_s * gb
                   + plan_s * dep.plan_memory_mb / 1024 + reduce_s * dep.reduce_memory_mb / 1024)
    lambda_requests = len(on_lambda) + 2 + (1 if on_spot else 0)  # tiles, plan, reduce, capacity

    transitions = TRANSITIONS_PER_JOB + TRANSITIONS_PER_TILE * n
    if distributed:
        history = max(DISTRIBUTED_PARENT_EVENTS, CHILD_EVENTS)
    else:
        history = INLINE_EVENTS_PER_JOB + INLINE_EVENTS_PER_TILE * n

    write_units = WRITE_UNITS_PER_JOB + WRITE_UNITS_PER_TILE * n
    read_units = READ_UNITS_PER_JOB + READ_UNITS_PER_TILE * n
    mean_s = sum(tile_s) / len(tile_s) if tile_s else 0.0
    # Completions per second once every slot is busy: concurrency / mean tile time.
    rate = concurrency / (mean_s + dep.iteration_start_s) if tile_s else 0.0
    shard_wu_s = rate * WRITE_UNITS_PER_TILE / DYNAMO_SHARDS
    job_ru_s = rate  # each tile reads the job's key once (and each shard key once)

    parts = [math.ceil(int(t.get("bytes_out", 0)) / S3_PART_BYTES) for t in tiles]
    s3_puts = S3_PUTS_PER_JOB + sum((p + 2 if p > 1 else 1) + 1 for p in parts)
    s3_gets = S3_GETS_PER_JOB + S3_GETS_PER_TILE * n
    panels = manifest.get("b_panels", {})
    if panels.get("staged"):
        # Staging reads B's header and each band once and PUTs every piece; a tile then
        # GETs its panel's pieces, one a band (its two GETs of B counted above are spared).
        bands = int(panels["bands"])
        s3_gets += 1 + bands + n * (bands - 2)
        s3_puts += int(panels["pieces"])
    instance_s = sum(spot_s) + workers * policy.spot_overhead_s

    return AwsPrediction(
        tiles=n, lambda_tiles=len(on_lambda), spot_tiles=len(on_spot),
        map_mode="distributed" if distributed else "inline", concurrency=concurrency,
        waves=math.ceil(len(on_lambda) / concurrency) if concurrency else 0, tile_s_mean=mean_s,
        tile_s_max=max(tile_s, default=0.0), spot_tile_s_mean=sum(spot_s) / len(spot_s) if spot_s else 0.0,
        plan_s=plan_s, map_s=map_s, reduce_s=reduce_s, wall_s=plan_s + map_s + reduce_s,
        lambda_gb_s=lambda_gb_s, tile_gb_s=tile_gb_s, lambda_requests=lambda_requests,
        transitions=transitions, history_events_max=history, history_fits=history <= HISTORY_EVENT_CAP,
        dynamo_write_units=write_units, dynamo_read_units=read_units, shard_write_units_s=shard_wu_s,
        job_read_units_s=job_ru_s,
        dynamo_fits=shard_wu_s <= PARTITION_WRITE_UNITS_S and job_ru_s <= PARTITION_READ_UNITS_S,
        s3_gets=s3_gets, s3_puts=s3_puts, spot_workers=workers, spot_instance_s=instance_s,
        lambda_usd=lambda_gb_s * prices.lambda_gb_s + lambda_requests * prices.lambda_request,
        steps_usd=transitions * prices.sfn_transition,
        dynamo_usd=write_units * prices.dynamo_write_unit + read_units * prices.dynamo_read_unit,
        s3_usd=s3_puts * prices.s3_put + s3_gets * prices.s3_get,
        spot_usd=instance_s * prices.spot_hour / 3600,
        prices=prices.as_of,
    )


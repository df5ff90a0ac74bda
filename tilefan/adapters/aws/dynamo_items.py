"""The DynamoDB job table's item layout: keys, shards and the conversions to items.

Layout (a job's tiles and its progress counters spread over ``SHARDS`` partition keys,
so no key takes more than its share of a big job's writes):

    pk               sk                  what
    JOB#<id>         JOB                 the job record; gsi1pk="JOBS", gsi1sk="<created_at>#<id>";
                                         gsi2pk="OWNER#<owner>", gsi2sk="<created_at>#<id>"
    JOB#<id>#S<nn>   COUNT               shard nn's counters (tiles_done, units_done) and a
                                         copy of the job's status, moved with it
    JOB#<id>#S<nn>   TILE#<0000000007>   one tile's record, in the shard its id picks
    JOB#<id>#S<nn>   TRY#<0000000007>#<0002>  one attempt at that tile, in the same shard

    OWNER#<owner>    ACTIVE              how many of the owner's jobs are QUEUED or RUNNING
                                         (``active``): raised as a job is created, lowered
                                         as it ends, each in that write's transaction

A tile's id picks its shard (``tile_id % SHARDS``), so a tile's record and the counter
its completion moves share one partition key, and the job item is written only when the
job itself changes. Progress is the job item's own counters plus every shard's.
Changing SHARDS changes where existing tiles live: it is fixed for a table's life.

DynamoDB numbers are Decimal both ways: a float goes in through its repr, which
round-trips exactly, and records_codec turns the Decimals it reads back into numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from tilefan.domain.cost_model import DYNAMO_SHARDS

SHARDS = DYNAMO_SHARDS  # the cost model counts the same shards
JOBS = "JOBS"
TILE_PREFIX = "TILE#"
ATTEMPT_PREFIX = "TRY#"  # not "TILE#...": a query for a shard's tiles must not return attempts
_ATTEMPT_DIGITS = 4
COUNTER_SK = "COUNT"
ACTIVE_SK = "ACTIVE"
_TILE_DIGITS = 10
_CREATED_FORMAT = "{:020.9f}"  # fixed width, so string order is time order (until 2286)

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def attr(value: Any) -> dict[str, Any]:
    if isinstance(value, float):
        value = Decimal(repr(value))
    serialized: dict[str, Any] = _SERIALIZER.serialize(value)
    return serialized


def item(values: Mapping[str, Any]) -> dict[str, Any]:
    """An item (or key, or expression values) from plain values; None means absent."""
    return {name: attr(value) for name, value in values.items() if value is not None}


def plain(stored: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(value) for name, value in stored.items()}


def shard_of(tile_id: int) -> int:
    """The shard a tile's record and its count live in."""
    return tile_id % SHARDS


def job_key(job_id: str) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": "JOB"}


def index_key(created_at: float, job_id: str) -> dict[str, str]:
    return {"gsi1pk": JOBS, "gsi1sk": _CREATED_FORMAT.format(created_at) + "#" + job_id}


def owner_index_key(owner: str, created_at: float, job_id: str) -> dict[str, str]:
    """The job's key in ``gsi2``: one partition per owner, newest last in sort order."""
    return {"gsi2pk": f"OWNER#{owner}", "gsi2sk": _CREATED_FORMAT.format(created_at) + "#" + job_id}


def owner_count_key(owner: str) -> dict[str, str]:
    return {"pk": f"OWNER#{owner}", "sk": ACTIVE_SK}


def shard_pk(job_id: str, shard: int) -> str:
    return f"JOB#{job_id}#S{shard:02d}"


def counter_key(job_id: str, shard: int) -> dict[str, str]:
    return {"pk": shard_pk(job_id, shard), "sk": COUNTER_SK}


def counter_keys(job_id: str) -> list[dict[str, str]]:
    return [counter_key(job_id, shard) for shard in range(SHARDS)]


def tile_key(job_id: str, tile_id: int) -> dict[str, str]:
    return {"pk": shard_pk(job_id, shard_of(tile_id)), "sk": f"{TILE_PREFIX}{tile_id:0{_TILE_DIGITS}d}"}


def attempt_key(job_id: str, tile_id: int, attempt: int) -> dict[str, str]:
    """An attempt's item sits beside its tile's, so the completion transaction stays in one shard."""
    return {"pk": shard_pk(job_id, shard_of(tile_id)),
            "sk": f"{ATTEMPT_PREFIX}{tile_id:0{_TILE_DIGITS}d}#{attempt:0{_ATTEMPT_DIGITS}d}"}


def with_counts(job: dict[str, Any], counters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The job with its progress: its own counters plus every shard's."""
    return {
        **job,
        "tiles_done": int(job.get("tiles_done", 0)) + sum(int(c.get("tiles_done", 0)) for c in counters),
        "units_done": int(job.get("units_done", 0)) + sum(int(c.get("units_done", 0)) for c in counters),
    }


def update(
    fields: Mapping[str, Any], condition: str, *, clauses: Sequence[str] = (), values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The parameters of an update that SETs each field (REMOVEs each None one) if
    ``condition`` holds; ``clauses`` are more SET clauses over ``values``. Every field
    goes by a #placeholder: several (status, error, result) are reserved words."""
    sets = [f"#{name} = :{name}" for name, value in fields.items() if value is not None] + list(clauses)
    removes = [f"#{name}" for name, value in fields.items() if value is None]
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    used = f"{expression} {condition}"
    return {
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        # DynamoDB refuses a placeholder the expressions do not use.
        "ExpressionAttributeNames": {f"#{name}": name for name in re.findall(r"#(\w+)", used)},
        "ExpressionAttributeValues": item({
            **{f":{name}": value for name, value in fields.items() if value is not None}, **(values or {}),
        }),
    }

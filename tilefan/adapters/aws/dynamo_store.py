"""Job store on one DynamoDB table (the AWS backend): the same contract as ``sqlite_store``.

Item design (one partition per job, so a job and its tiles are read with one Query):

    pk            sk                  what
    JOB#<id>      JOB                 the job record; gsi1pk="JOBS", gsi1sk="<created_at>#<id>"
    JOB#<id>      TILE#<0000000007>   one tile's record (zero-padded, so sk order is tile order)

The ``gsi1`` index lists jobs newest first. All jobs share its one partition, which is
fine at job creation rates far below DynamoDB's 1,000 writes/s per partition; like every
GSI it is eventually consistent, so a job created a moment ago may be missing from a
list for a moment (get_job reads the table, strongly). Every item carries ``expires_at``
(epoch seconds) for DynamoDB's TTL. spec, result, error, timings, links and stats are JSON
strings (records_codec): nothing queries inside them.

BaseJobStore makes every decision; this module holds its primitives as conditional
writes. Exactly-once tile completion is a transaction: the tile item moves to done only
if it is not done already, and the job's counters move in the same transaction.
"""

from __future__ import annotations

import itertools
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from tilefan.adapters.aws.aws_call import call, pages, translated
from tilefan.adapters.job_store import BaseJobStore, Completion
from tilefan.adapters.records_codec import StoredJob, StoredTile, TileState
from tilefan.domain.records import Status
from tilefan.errors import StoreError

GSI_NAME = "gsi1"
_JOBS = "JOBS"
_TILE_PREFIX = "TILE#"
_TILE_DIGITS = 10
_CREATED_FORMAT = "{:020.9f}"  # fixed width, so string order is time order (until 2286)
_DAY_S = 86_400
_TX_ATTEMPTS = 6  # transactions cancelled by a concurrent one are retried this often

# --------------------------------------------------------------------------- conditions
#
# Tile completion is exactly once. The tile item's status is the idempotency record:
#
#   absent  --record_tile_done-->  done    job counters += 1 (same transaction)
#   running --record_tile_done-->  done    job counters += 1
#   failed  --record_tile_done-->  done    job counters += 1
#   done    --record_tile_done-->  refused: the transaction is cancelled, counters unchanged
#
# record_tile_failed and tile_started use the same guard, so neither can demote a
# done tile (a late failure report or a duplicate delivery leaves it done).
_NEVER_RECORDED = "attribute_not_exists(#status)"
_NOT_DONE = "#status <> :done"
_FIRST_COMPLETION = f"{_NEVER_RECORDED} OR {_NOT_DONE}"

_JOB_EXISTS = "attribute_exists(pk)"
# A tile counts only while its job runs: one finishing after a cancel is not counted.
_JOB_RUNNING = "attribute_exists(pk) AND #status = :running"
_JOB_IS_NEW = "attribute_not_exists(pk)"
# A transition writes only if the status is still the one it read (see BaseJobStore).
_STATUS_UNCHANGED = "#status = :seen"


class _ConditionFailed(Exception):
    """A conditional write found the item in another state (internal signal)."""


class _Cancelled(Exception):
    """A transaction was cancelled; ``reasons`` has one code per item, in order."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons


def create_table(client: Any, table_name: str) -> None:
    """Create the table as the CloudFormation template declares it: pk/sk string keys,
    the ``gsi1`` index (all attributes projected), on-demand billing, TTL on expires_at.
    Used by tests; in AWS the stack owns the table."""
    strings = ("pk", "sk", "gsi1pk", "gsi1sk")
    with translated(f"cannot create table {table_name}", StoreError):
        client.create_table(
            TableName=table_name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in strings],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{
                "IndexName": GSI_NAME,
                "KeySchema": [{"AttributeName": "gsi1pk", "KeyType": "HASH"},
                              {"AttributeName": "gsi1sk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }],
        )
        client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1})
        client.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )


def _conditions(code: str, response: Mapping[str, Any]) -> Exception | None:
    """Refused conditions are answers, not failures: callers decide what they mean."""
    if code == "ConditionalCheckFailedException":
        return _ConditionFailed()
    if code == "TransactionCanceledException":
        return _Cancelled([str(r.get("Code", "None")) for r in response.get("CancellationReasons", [])])
    return None


# --------------------------------------------------------------------------- item codecs
#
# Items are BaseJobStore's stored dicts with the keys added, converted by boto3's own
# serializers. DynamoDB numbers are Decimal both ways: a float goes in through its repr,
# which round-trips exactly, and records_codec turns the Decimals it reads back into
# ints and floats.

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def _attr(value: Any) -> dict[str, Any]:
    if isinstance(value, float):
        value = Decimal(repr(value))
    attr: dict[str, Any] = _SERIALIZER.serialize(value)
    return attr


def _item(values: Mapping[str, Any]) -> dict[str, Any]:
    """An item (or key, or expression values) from plain values; None means absent."""
    return {name: _attr(value) for name, value in values.items() if value is not None}


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(attr) for name, attr in item.items()}


def _job_key(job_id: str) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": "JOB"}


def _index_key(created_at: float, job_id: str) -> dict[str, str]:
    return {"gsi1pk": _JOBS, "gsi1sk": _CREATED_FORMAT.format(created_at) + "#" + job_id}


def _tile_key(job_id: str, tile_id: int) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": f"{_TILE_PREFIX}{tile_id:0{_TILE_DIGITS}d}"}


def _update(
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
        "ExpressionAttributeValues": _item({
            **{f":{name}": value for name, value in fields.items() if value is not None}, **(values or {}),
        }),
    }


class DynamoJobStore(BaseJobStore):
    def __init__(
        self, client: Any, table_name: str, ttl_days: int = 30, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.ttl_days = ttl_days
        self.clock = clock

    # ------------------------------------------------------------------ requests

    def _failed(self, op: str) -> str:
        return f"DynamoDB {op} on {self.table_name} failed"

    def _send(self, op: str, **params: Any) -> dict[str, Any]:
        return call(self.client, op, params, failed=self._failed(op), fallback=StoreError, special=_conditions)

    def _query(self, **params: Any) -> Iterator[dict[str, Any]]:
        """The items of a query, page after page, as plain values."""
        replies = pages(self.client, "query", {"TableName": self.table_name, **params}, failed=self._failed("query"),
                        fallback=StoreError)
        for reply in replies:
            yield from (_plain(item) for item in reply.get("Items", []))

    def _expires_at(self) -> int:
        return int(self.clock()) + self.ttl_days * _DAY_S

    def _update_item(self, key: Mapping[str, Any], params: dict[str, Any]) -> bool:
        """One conditional update_item; False when its condition refused it."""
        try:
            self._send("update_item", TableName=self.table_name, Key=_item(key), **params)
        except _ConditionFailed:
            return False
        return True

    # ------------------------------------------------------------------ jobs

    def _put_job_if_new(self, stored: StoredJob) -> bool:
        item = {**stored, **_job_key(stored["job_id"]), **_index_key(stored["created_at"], stored["job_id"]),
                "expires_at": self._expires_at()}
        try:
            self._send("put_item", TableName=self.table_name, Item=_item(item), ConditionExpression=_JOB_IS_NEW)
        except _ConditionFailed:
            return False
        return True

    def _get_stored_job(self, job_id: str) -> StoredJob | None:
        reply = self._send("get_item", TableName=self.table_name, Key=_item(_job_key(job_id)), ConsistentRead=True)
        return _plain(reply["Item"]) if "Item" in reply else None

    def _stored_jobs_page(self, count: int, after: tuple[float, str] | None) -> list[StoredJob]:
        params: dict[str, Any] = {
            "IndexName": GSI_NAME,
            "KeyConditionExpression": "gsi1pk = :jobs",
            "ExpressionAttributeValues": _item({":jobs": _JOBS}),
            "ScanIndexForward": False,  # newest first
            "PaginationConfig": {"MaxItems": count, "PageSize": count},
        }
        if after is not None:
            # The index key of the job at ``after``: the query resumes just past it.
            params["ExclusiveStartKey"] = _item({**_job_key(after[1]), **_index_key(*after)})
        return list(itertools.islice(self._query(**params), count))

    def _set_totals(self, job_id: str, tiles_total: int, units_total: int) -> bool:
        fields = {"tiles_total": tiles_total, "units_total": units_total}
        return self._update_item(_job_key(job_id), _update(fields, _JOB_EXISTS))

    def _update_job_if_status(self, job_id: str, seen: str, changes: StoredJob) -> bool:
        return self._update_item(_job_key(job_id), _update(changes, _STATUS_UNCHANGED, values={":seen": seen}))

    # ------------------------------------------------------------------ tiles

    def _tile_update(self, job_id: str, tile_id: int, fields: StoredTile, *, new_attempt: bool) -> dict[str, Any]:
        """The guarded update of one tile item (the job and tile ids and the TTL ride along)."""
        attempts = "#attempts = if_not_exists(#attempts, :zero) + :one" if new_attempt else \
            "#attempts = if_not_exists(#attempts, :one)"
        values = {":done": TileState.DONE.value, ":one": 1, **({":zero": 0} if new_attempt else {})}
        fields = {**fields, "job_id": job_id, "tile_id": tile_id, "expires_at": self._expires_at()}
        return _update(fields, _FIRST_COMPLETION, clauses=[attempts], values=values)

    def _write_tile_unless_done(self, job_id: str, tile_id: int, fields: StoredTile, *, new_attempt: bool) -> None:
        # Refused (False) for a done tile, which is the point: done stays done.
        self._update_item(_tile_key(job_id, tile_id), self._tile_update(job_id, tile_id, fields,
                                                                         new_attempt=new_attempt))

    def _complete_tile_once(self, job_id: str, tile_id: int, fields: StoredTile, units: int) -> Completion:
        # Exactly once: one transaction moves the tile item to done (only if it is not
        # done, _FIRST_COMPLETION) and adds to the job's counters (only while it runs).
        mark_done = {"Update": {
            "TableName": self.table_name, "Key": _item(_tile_key(job_id, tile_id)),
            **self._tile_update(job_id, tile_id, fields, new_attempt=False),
        }}
        count_it = {"Update": {
            "TableName": self.table_name, "Key": _item(_job_key(job_id)),
            "UpdateExpression": "ADD tiles_done :one, units_done :units",
            "ConditionExpression": _JOB_RUNNING,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": _item({":one": 1, ":units": units, ":running": Status.RUNNING.value}),
        }}
        for attempt in range(_TX_ATTEMPTS):
            try:
                # botocore fills in ClientRequestToken, so its own retries of this call
                # are idempotent and cannot count the tile twice either.
                self._send("transact_write_items", TransactItems=[mark_done, count_it])
                return Completion.COUNTED
            except _Cancelled as exc:
                tile_reason, job_reason = [*exc.reasons, "None", "None"][:2]
                if tile_reason == "ConditionalCheckFailed":
                    return Completion.ALREADY_DONE  # a retry or a duplicate delivery
                if job_reason == "ConditionalCheckFailed":
                    return Completion.JOB_NOT_RUNNING if self._get_stored_job(job_id) else Completion.NO_JOB
                if "TransactionConflict" not in exc.reasons or attempt == _TX_ATTEMPTS - 1:
                    raise StoreError(f"recording tile {tile_id} of job {job_id} was cancelled: {exc}") from None
                # Another tile's transaction held the job item; back off with jitter.
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")

    def _stored_tiles(self, job_id: str) -> list[StoredTile]:
        return list(self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :tile)",
            ExpressionAttributeValues=_item({":pk": f"JOB#{job_id}", ":tile": _TILE_PREFIX}),
            ConsistentRead=True,
        ))

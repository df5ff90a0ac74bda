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
strings: DynamoDB numbers would need Decimal, and nothing queries inside them.

Exactly-once tile completion is a transaction: the tile item moves to done only if it
is not done already, and the job's counters move in the same transaction.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tilefan.adapters.aws.aws_call import call
from tilefan.domain.records import ALLOWED_FROM, JobRecord, Status, TileResult
from tilefan.domain.spec import spec_from_stored, spec_to_dict
from tilefan.errors import ConflictError, InvalidSpecError, JobNotFoundError, StoreError

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
    try:
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
    except (ClientError, BotoCoreError) as exc:
        raise StoreError(f"cannot create table {table_name}: {exc}") from None


def _conditions(code: str, response: Mapping[str, Any]) -> Exception | None:
    """Refused conditions are answers, not failures: callers decide what they mean."""
    if code == "ConditionalCheckFailedException":
        return _ConditionFailed()
    if code == "TransactionCanceledException":
        return _Cancelled([str(r.get("Code", "None")) for r in response.get("CancellationReasons", [])])
    return None


class DynamoJobStore:
    def __init__(
        self, client: Any, table_name: str, ttl_days: int = 30, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.ttl_days = ttl_days
        self.clock = clock

    # ------------------------------------------------------------------ requests

    def _send(self, op: str, **params: Any) -> dict[str, Any]:
        return call(self.client, op, params, failed=f"DynamoDB {op} on {self.table_name} failed",
                    fallback=StoreError, special=_conditions)

    def _expires_at(self) -> dict[str, str]:
        return _n(int(self.clock()) + self.ttl_days * _DAY_S)

    def _query(self, **params: Any) -> Iterator[dict[str, Any]]:
        params = {"TableName": self.table_name, **params}
        while True:
            page = self._send("query", **params)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # ------------------------------------------------------------------ jobs

    def create_job(self, record: JobRecord) -> None:
        item = {
            **_job_key(record.job_id),
            "gsi1pk": _s(_JOBS),
            "gsi1sk": _s(_CREATED_FORMAT.format(record.created_at) + "#" + record.job_id),
            "job_id": _s(record.job_id),
            "kind": _s(record.kind),
            "status": _s(record.status.value),
            "spec": _json(spec_to_dict(record.spec)),
            "created_at": _n(record.created_at),
            "tiles_total": _n(record.tiles_total),
            "units_total": _n(record.units_total),
            "tiles_done": _n(record.tiles_done),
            "units_done": _n(record.units_done),
            "timings": _json(record.timings),
            "links": _json(record.links),
            "expires_at": self._expires_at(),
        }
        if record.result is not None:
            item["result"] = _json(record.result)
        if record.error is not None:
            item["error"] = _json(record.error)
        try:
            self._send("put_item", TableName=self.table_name, Item=item, ConditionExpression=_JOB_IS_NEW)
        except _ConditionFailed:
            raise ConflictError(f"job {record.job_id} already exists") from None

    def _job_item(self, job_id: str) -> dict[str, Any]:
        reply = self._send("get_item", TableName=self.table_name, Key=_job_key(job_id), ConsistentRead=True)
        if "Item" not in reply:
            raise JobNotFoundError(job_id)
        item: dict[str, Any] = reply["Item"]
        return item

    def get_job(self, job_id: str) -> JobRecord:
        return _record(self._job_item(job_id))

    def list_jobs(self, limit: int, cursor: str | None = None) -> tuple[list[JobRecord], str | None]:
        if limit < 1:
            raise InvalidSpecError("limit", f"must be at least 1, got {limit}")
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": GSI_NAME,
            "KeyConditionExpression": "gsi1pk = :jobs",
            "ExpressionAttributeValues": {":jobs": _s(_JOBS)},
            "ScanIndexForward": False,  # newest first
        }
        if cursor:
            params["ExclusiveStartKey"] = _decode_cursor(cursor)
        # One more than asked: a next cursor is given only when a next page exists, as
        # sqlite_store does (DynamoDB's LastEvaluatedKey alone cannot tell).
        items: list[dict[str, Any]] = []
        while len(items) <= limit:
            page = self._send("query", Limit=limit + 1 - len(items), **params)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        shown = items[:limit]
        next_cursor = _encode_cursor(shown[-1]) if len(items) > limit else None
        return [_record(i) for i in shown], next_cursor

    def set_plan(self, job_id: str, tiles_total: int, units_total: int) -> None:
        try:
            self._send(
                "update_item", TableName=self.table_name, Key=_job_key(job_id),
                UpdateExpression="SET tiles_total = :tiles, units_total = :units",
                ConditionExpression=_JOB_EXISTS,
                ExpressionAttributeValues={":tiles": _n(tiles_total), ":units": _n(units_total)},
            )
        except _ConditionFailed:
            raise JobNotFoundError(job_id) from None

    def transition(
        self, job_id: str, new: Status, *, timings: dict[str, float] | None = None,
        result: dict[str, Any] | None = None, error: dict[str, Any] | None = None,
        links: dict[str, str] | None = None,
    ) -> bool:
        allowed = [s.value for s in ALLOWED_FROM[new]]
        while True:
            item = self._job_item(job_id)
            seen = item["status"]["S"]
            if seen not in allowed:
                return False
            # timings and links are merged with what was read, so the write must also
            # find the status it read; every transition changes the status, so an
            # unchanged status means nothing else wrote these fields in between.
            #   QUEUED          --RUNNING-->          RUNNING
            #   RUNNING         --SUCCEEDED-->        SUCCEEDED
            #   QUEUED|RUNNING  --FAILED|CANCELLED--> FAILED|CANCELLED
            #   terminal        --anything-->         refused
            values: dict[str, Any] = {
                ":new": _s(new.value),
                ":seen": _s(seen),
                ":timings": _json({**json.loads(item["timings"]["S"]), **(timings or {})}),
                ":links": _json({**json.loads(item["links"]["S"]), **(links or {})}),
            }
            allowed_names = [f":from{i}" for i in range(len(allowed))]
            values.update({name: _s(s) for name, s in zip(allowed_names, allowed, strict=True)})
            is_allowed = f"#status IN ({', '.join(allowed_names)})"
            unchanged_since_read = "#status = :seen"
            sets = ["#status = :new", "timings = :timings", "links = :links"]
            if result is not None:
                sets.append("#result = :result")
                values[":result"] = _json(result)
            if error is not None:
                sets.append("#error = :error")
                values[":error"] = _json(error)
            try:
                self._send(
                    "update_item", TableName=self.table_name, Key=_job_key(job_id),
                    UpdateExpression="SET " + ", ".join(sets),
                    ConditionExpression=f"{is_allowed} AND {unchanged_since_read}",
                    ExpressionAttributeNames=_names("status", "result", "error", used=sets),
                    ExpressionAttributeValues=values,
                )
                return True
            except _ConditionFailed:
                continue  # another transition won; read again and judge from there

    # ------------------------------------------------------------------ tiles

    def tile_started(self, job_id: str, tile_id: int, worker: str, route: str, at: float) -> None:
        values = {":running": _s("running"), ":done": _s("done"), ":at": _n(at), ":worker": _s(worker),
                  ":route": _s(route), ":one": _n(1), **self._tile_ids(job_id, tile_id)}
        # Refused for a done tile: a late duplicate must not rewrite the report of the run
        # that counted (its start, worker and route).
        with contextlib.suppress(_ConditionFailed):
            self._send(
                "update_item", TableName=self.table_name, Key=_tile_key(job_id, tile_id),
                UpdateExpression="SET #status = :running, started_at = :at, worker = :worker, route = :route,"
                                 " job_id = :job_id, tile_id = :tile_id, expires_at = :expires ADD attempts :one",
                ConditionExpression=_FIRST_COMPLETION,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
            )

    def _tile_ids(self, job_id: str, tile_id: int) -> dict[str, Any]:
        return {":job_id": _s(job_id), ":tile_id": _n(tile_id), ":expires": self._expires_at()}

    def record_tile_done(self, job_id: str, result: TileResult) -> bool:
        mark_done = {
            "Update": {
                "TableName": self.table_name,
                "Key": _tile_key(job_id, result.tile_id),
                "UpdateExpression": (
                    "SET #status = :done, started_at = :started, finished_at = :finished, worker = :worker,"
                    " route = :route, units = :units, stats = :stats, bytes_read = :read,"
                    " bytes_written = :written, job_id = :job_id, tile_id = :tile_id, expires_at = :expires,"
                    " attempts = if_not_exists(attempts, :one) REMOVE #error"
                ),
                "ConditionExpression": _FIRST_COMPLETION,
                "ExpressionAttributeNames": {"#status": "status", "#error": "error"},
                "ExpressionAttributeValues": {
                    ":done": _s("done"), ":started": _n(result.started_at), ":finished": _n(result.finished_at),
                    ":worker": _s(result.worker), ":route": _s(result.route), ":units": _n(result.units),
                    ":stats": _json(result.stats), ":read": _n(result.bytes_read),
                    ":written": _n(result.bytes_written), ":one": _n(1), **self._tile_ids(job_id, result.tile_id),
                },
            }
        }
        count_it = {
            "Update": {
                "TableName": self.table_name,
                "Key": _job_key(job_id),
                "UpdateExpression": "ADD tiles_done :one, units_done :units",
                "ConditionExpression": _JOB_RUNNING,
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":one": _n(1), ":units": _n(result.units), ":running": _s("RUNNING")},
            }
        }
        for attempt in range(_TX_ATTEMPTS):
            try:
                # botocore fills in ClientRequestToken, so its own retries of this call
                # are idempotent and cannot count the tile twice either.
                self._send("transact_write_items", TransactItems=[mark_done, count_it])
                return True
            except _Cancelled as exc:
                tile_reason, job_reason = [*exc.reasons, "None", "None"][:2]
                if tile_reason == "ConditionalCheckFailed":
                    return False  # already done: a retry or a duplicate delivery
                if job_reason == "ConditionalCheckFailed":
                    self.get_job(job_id)  # JobNotFoundError when it does not exist
                    return False  # the job is no longer running (cancelled or failed)
                if "TransactionConflict" not in exc.reasons or attempt == _TX_ATTEMPTS - 1:
                    raise StoreError(f"recording tile {result.tile_id} of job {job_id} was cancelled: {exc}") from None
                # Another tile's transaction held the job item; back off with jitter.
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")

    def record_tile_failed(self, job_id: str, tile_id: int, message: str, at: float) -> None:
        # A refused write is the point: a tile recorded done stays done.
        with contextlib.suppress(_ConditionFailed):
            self._send(
                "update_item", TableName=self.table_name, Key=_tile_key(job_id, tile_id),
                UpdateExpression="SET #status = :failed, finished_at = :at, #error = :message, job_id = :job_id,"
                                 " tile_id = :tile_id, expires_at = :expires, attempts = if_not_exists(attempts, :one)",
                ConditionExpression=_FIRST_COMPLETION,
                ExpressionAttributeNames={"#status": "status", "#error": "error"},
                ExpressionAttributeValues={":failed": _s("failed"), ":done": _s("done"), ":at": _n(at),
                                           ":message": _s(message), ":one": _n(1),
                                           **self._tile_ids(job_id, tile_id)},
            )

    def _tile_items(self, job_id: str) -> list[dict[str, Any]]:
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :tile)",
            ExpressionAttributeValues={":pk": _s(f"JOB#{job_id}"), ":tile": _s(_TILE_PREFIX)},
            ConsistentRead=True,
        )
        return sorted(items, key=lambda i: int(i["tile_id"]["N"]))

    def tile_results(self, job_id: str) -> list[TileResult]:
        return [
            TileResult(
                tile_id=int(i["tile_id"]["N"]), units=int(i["units"]["N"]), stats=json.loads(i["stats"]["S"]),
                started_at=float(i["started_at"]["N"]), finished_at=float(i["finished_at"]["N"]),
                worker=i["worker"]["S"], route=i["route"]["S"], bytes_read=int(i["bytes_read"]["N"]),
                bytes_written=int(i["bytes_written"]["N"]),
            )
            for i in self._tile_items(job_id)
            if i["status"]["S"] == "done"
        ]

    def tile_rows(self, job_id: str) -> list[dict[str, Any]]:
        return [_tile_row(i) for i in self._tile_items(job_id)]


# --------------------------------------------------------------------------- item codecs


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float | int) -> dict[str, str]:
    """A DynamoDB number. Plain ``repr`` of a float round-trips exactly; ``float()`` and
    ``int()`` first, because ``repr`` of a NumPy scalar is not a number."""
    return {"N": str(value) if isinstance(value, int) else repr(float(value))}


def _json(value: Any) -> dict[str, str]:
    return {"S": json.dumps(value)}


def _names(*names: str, used: list[str]) -> dict[str, str]:
    """Placeholders (#status, #result, #error: DynamoDB reserved words) the update uses."""
    text = " ".join(used)
    return {f"#{n}": n for n in names if f"#{n}" in text}


def _job_key(job_id: str) -> dict[str, Any]:
    return {"pk": _s(f"JOB#{job_id}"), "sk": _s("JOB")}


def _tile_key(job_id: str, tile_id: int) -> dict[str, Any]:
    return {"pk": _s(f"JOB#{job_id}"), "sk": _s(f"{_TILE_PREFIX}{tile_id:0{_TILE_DIGITS}d}")}


def _encode_cursor(item: dict[str, Any]) -> str:
    """An opaque cursor: the index key of the last job shown, as base64 JSON.

    >>> _decode_cursor(_encode_cursor({"pk": {"S": "JOB#a"}, "sk": {"S": "JOB"},
    ...     "gsi1pk": {"S": "JOBS"}, "gsi1sk": {"S": "1#a"}, "kind": {"S": "add"}}))["gsi1sk"]
    {'S': '1#a'}
    """
    key = {name: item[name]["S"] for name in ("pk", "sk", "gsi1pk", "gsi1sk")}
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, dict) or set(raw) != {"pk", "sk", "gsi1pk", "gsi1sk"}:
            raise ValueError("unexpected fields")
        return {name: _s(str(value)) for name, value in raw.items()}
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidSpecError("cursor", "is not a cursor from a previous page of this list") from None


def _record(item: dict[str, Any]) -> JobRecord:
    return JobRecord(
        job_id=item["job_id"]["S"],
        kind=item["kind"]["S"],
        status=Status(item["status"]["S"]),
        spec=spec_from_stored(json.loads(item["spec"]["S"])),
        created_at=float(item["created_at"]["N"]),
        tiles_total=int(item["tiles_total"]["N"]),
        units_total=int(item["units_total"]["N"]),
        tiles_done=int(item["tiles_done"]["N"]),
        units_done=int(item["units_done"]["N"]),
        timings=json.loads(item["timings"]["S"]),
        result=json.loads(item["result"]["S"]) if "result" in item else None,
        error=json.loads(item["error"]["S"]) if "error" in item else None,
        links=json.loads(item["links"]["S"]),
    )


# The columns of sqlite_store's tile rows, which reports rely on; absent ones are None.
_TILE_NUMBERS = {"tile_id": int, "started_at": float, "finished_at": float, "units": int,
                 "bytes_read": int, "bytes_written": int, "attempts": int}
_TILE_STRINGS = ("job_id", "status", "worker", "route", "error")
_TILE_COLUMNS = ("job_id", "tile_id", "status", "started_at", "finished_at", "worker", "route", "units",
                 "stats", "bytes_read", "bytes_written", "attempts", "error")


def _tile_row(item: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_TILE_COLUMNS)
    for name, kind in _TILE_NUMBERS.items():
        if name in item:
            row[name] = kind(item[name]["N"])
    for name in _TILE_STRINGS:
        if name in item:
            row[name] = item[name]["S"]
    row["stats"] = json.loads(item["stats"]["S"]) if "stats" in item else None
    return row

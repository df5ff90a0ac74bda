"""One DynamoDB table's requests, as the job store makes them: refusals are answers.

A conditional write the table refuses, or a transaction it cancels, is no failure here: it
comes back as ``ConditionFailed`` or ``TransactionCancelled`` (one reason per item), and
``DynamoJobStore`` decides what it means. A transaction another one cancelled is retried
with jitter; a throttled one is ``StoreThrottledError``; a batch read retries the keys the
table left unprocessed. ``create_table`` makes the table as the CloudFormation template
declares it, for tests and benchmarks.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tilefan.adapters.aws.aws_call import call, pages, translated
from tilefan.adapters.aws.dynamo_items import item, plain
from tilefan.errors import StoreError, StoreThrottledError

GSI_NAME = "gsi1"
OWNER_GSI = "gsi2"
_TX_ATTEMPTS = 8  # transactions cancelled by a concurrent one are retried this often
_BATCH_KEYS = 100  # BatchGetItem's most keys per request


class ConditionFailed(Exception):
    """A conditional write found the item in another state (internal signal)."""


class TransactionCancelled(Exception):
    """A transaction was cancelled; ``reasons`` has one code per item, in order."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons


def create_table(client: Any, table_name: str) -> None:
    """Create the table as the CloudFormation template declares it: pk/sk string keys,
    the ``gsi1`` and ``gsi2`` indexes (all attributes projected), on-demand billing, TTL
    on expires_at. Used by tests; in AWS the stack owns the table."""
    strings = ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")
    with translated(f"cannot create table {table_name}", StoreError):
        client.create_table(
            TableName=table_name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in strings],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{
                "IndexName": name,
                "KeySchema": [{"AttributeName": f"{name}pk", "KeyType": "HASH"},
                              {"AttributeName": f"{name}sk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            } for name in (GSI_NAME, OWNER_GSI)],
        )
        client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1})
        client.update_time_to_live(TableName=table_name,
                                   TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})


def _conditions(code: str, response: Mapping[str, Any]) -> Exception | None:
    """Refused conditions are answers, not failures: callers decide what they mean."""
    if code == "ConditionalCheckFailedException":
        return ConditionFailed()
    if code == "TransactionCanceledException":
        return TransactionCancelled([str(r.get("Code", "None")) for r in response.get("CancellationReasons", [])])
    return None


class DynamoTable:
    """The requests to one table, each translated: ``StoreError`` for a failure, the two
    refusals above for what a condition decided."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    def _failed(self, op: str) -> str:
        return f"DynamoDB {op} on {self.table_name} failed"

    def send(self, op: str, **params: Any) -> dict[str, Any]:
        return call(self.client, op, params, failed=self._failed(op), fallback=StoreError, special=_conditions)

    def query(self, **params: Any) -> Iterator[dict[str, Any]]:
        """The items of a query, page after page, as plain values."""
        replies = pages(self.client, "query", {"TableName": self.table_name, **params}, failed=self._failed("query"),
                        fallback=StoreError)
        for reply in replies:
            yield from (plain(found) for found in reply.get("Items", []))

    def update_item(self, key: Mapping[str, Any], params: dict[str, Any]) -> bool:
        """One conditional update_item; False when its condition refused it."""
        return self.updated(key, params) is not None

    def updated(self, key: Mapping[str, Any], params: dict[str, Any]) -> dict[str, Any] | None:
        """One conditional update_item; the item after it, or None when its condition refused it."""
        try:
            reply = self.send("update_item", TableName=self.table_name, Key=item(key), ReturnValues="ALL_NEW", **params)
        except ConditionFailed:
            return None
        return plain(reply.get("Attributes", {}))

    def transact(self, items: list[dict[str, Any]], what: str) -> None:
        """One write transaction, retried while another transaction on the same items
        cancels it; any other cancellation reaches the caller as ``TransactionCancelled``."""
        for attempt in range(_TX_ATTEMPTS):
            try:
                # botocore's ClientRequestToken makes its own retries of this call idempotent.
                self.send("transact_write_items", TransactItems=items)
                return
            except TransactionCancelled as exc:
                if "ConditionalCheckFailed" not in exc.reasons and "ThrottlingError" in exc.reasons:
                    raise StoreThrottledError(f"{what} was throttled: {exc}") from None
                if "ConditionalCheckFailed" in exc.reasons or "TransactionConflict" not in exc.reasons:
                    raise
                if attempt == _TX_ATTEMPTS - 1:
                    raise StoreError(f"{what} was cancelled: {exc}") from None
                # Another transaction held one of the items; back off with jitter.
                time.sleep(random.uniform(0, 0.02 * 2**attempt))

    def batch_get(self, keys: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The items at ``keys`` that exist (strongly consistent), in any order."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), _BATCH_KEYS):
            pending: dict[str, Any] = {self.table_name: {
                "Keys": [item(k) for k in keys[start:start + _BATCH_KEYS]], "ConsistentRead": True,
            }}
            attempt = 0
            while pending:
                reply = self.send("batch_get_item", RequestItems=pending)
                found += [plain(i) for i in reply.get("Responses", {}).get(self.table_name, [])]
                pending = reply.get("UnprocessedKeys") or {}
                if pending:  # throttled keys come back unprocessed: retry them after a pause
                    time.sleep(random.uniform(0, 0.02 * 2**min(attempt, 6)))
                    attempt += 1
        return found

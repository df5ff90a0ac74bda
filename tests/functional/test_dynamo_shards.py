"""The DynamoDB store's sharded progress counters, under moto.

A tile's completion writes only its shard's partition key (the tile item and the
shard's counter, in one transaction); the job item is written only when the job itself
changes. These cases check what that design must keep: each tile counted exactly once
however many threads report it, progress equal to the sum of the shards, a cancel that
stops every shard at once, and a transaction cancelled by a concurrent one retried.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from tests.functional.conftest import TABLE
from tests.functional.test_store_contract import OneRequestAtATime, job, tile
from tests.helpers import report_tiles_concurrently
from tilefan.adapters.aws.dynamo_items import SHARDS, counter_key, job_key, shard_of
from tilefan.adapters.aws.dynamo_store import DynamoJobStore
from tilefan.domain.records import Status


@pytest.fixture
def store(dynamodb_client: Any) -> DynamoJobStore:
    return DynamoJobStore(OneRequestAtATime(dynamodb_client), TABLE)


@pytest.fixture
def written_keys(dynamodb_client: Any) -> Iterator[list[tuple[str, str]]]:
    """The (pk, sk) of every item each TransactWriteItems request writes, in order."""
    keys: list[tuple[str, str]] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        for entry in params["TransactItems"]:
            [(_, body)] = entry.items()
            key = body.get("Key") or body["Item"]
            keys.append((key["pk"]["S"], key["sk"]["S"]))

    dynamodb_client.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", note)
    yield keys
    dynamodb_client.meta.events.unregister("provide-client-params.dynamodb.TransactWriteItems", note)


def _counter(client: Any, job_id: str, shard: int) -> dict[str, Any]:
    got: dict[str, Any] = client.get_item(TableName=TABLE, Key=_key(counter_key(job_id, shard)),
                                          ConsistentRead=True)["Item"]
    return got


def _key(key: dict[str, str]) -> dict[str, Any]:
    return {name: {"S": value} for name, value in key.items()}


def test_many_threads_completing_one_jobs_tiles_count_each_tile_once(
    store: DynamoJobStore, dynamodb_client: Any, written_keys: list[tuple[str, str]]
) -> None:
    store.create_job(job("j1", tiles_total=48, units_total=48 * 49 // 2))
    assert store.transition("j1", Status.RUNNING)
    tiles, threads = 48, 12
    orders = []
    for seed in range(threads):
        # Every tile is reported by three threads, in a different order in each.
        mine = [t for t in range(tiles) if t % (threads // 3) == seed % (threads // 3)]
        random.Random(seed).shuffle(mine)
        orders.append(mine)
    written_keys.clear()
    wins = report_tiles_concurrently(
        store, "j1", orders, lambda tile_id, seed: tile(tile_id, units=tile_id + 1, worker=f"t{seed}"),
        mark_started=True)
    assert sorted(wins) == list(range(tiles))
    record = store.get_job("j1")
    assert (record.tiles_done, record.units_done) == (tiles, sum(t + 1 for t in range(tiles)))
    assert [r.tile_id for r in store.tile_results("j1")] == list(range(tiles))
    # Progress is the sum of the shards, and each shard holds exactly the tiles it picked.
    per_shard = [int(_counter(dynamodb_client, "j1", s)["tiles_done"]["N"]) for s in range(SHARDS)]
    assert per_shard == [sum(1 for t in range(tiles) if shard_of(t) == s) for s in range(SHARDS)]
    # No completion wrote the job item: the hot key is gone.
    job_pk = job_key("j1")["pk"]
    assert written_keys and all(pk != job_pk for pk, _ in written_keys)


def test_a_completion_writes_the_tile_its_attempt_and_its_shards_counter_only(
    store: DynamoJobStore, written_keys: list[tuple[str, str]]
) -> None:
    store.create_job(job("j1"))
    store.transition("j1", Status.RUNNING)
    written_keys.clear()
    assert store.record_tile_done("j1", tile(37))
    shard_pk = counter_key("j1", shard_of(37))["pk"]
    assert written_keys == [(shard_pk, "TILE#0000000037"), (shard_pk, "COUNT"), (shard_pk, "TRY#0000000037#0001")]


def test_a_status_change_moves_every_shards_copy_in_one_transaction(
    store: DynamoJobStore, dynamodb_client: Any, written_keys: list[tuple[str, str]]
) -> None:
    store.create_job(job("j1"))
    store.transition("j1", Status.RUNNING)
    assert store.record_tile_done("j1", tile(1))
    written_keys.clear()
    assert store.transition("j1", Status.CANCELLED)
    # One request: the job item, every shard, and (the job ended) its owner's count of active jobs.
    assert len(written_keys) == 1 + SHARDS + 1 and ("OWNER#local", "ACTIVE") in written_keys
    assert {_counter(dynamodb_client, "j1", s)["status"]["S"] for s in range(SHARDS)} == {"CANCELLED"}
    # No shard counts a tile after the cancel, whichever shard it falls in.
    assert not any(store.record_tile_done("j1", tile(t)) for t in range(2, 2 + SHARDS))
    assert store.get_job("j1").tiles_done == 1


def test_a_transaction_cancelled_by_a_concurrent_one_is_retried_and_counts_once(
    store: DynamoJobStore, dynamodb_client: Any
) -> None:
    from botocore.exceptions import ClientError

    store.create_job(job("j1"))
    store.transition("j1", Status.RUNNING)
    conflicts = [2]

    def conflict(**_: Any) -> None:
        if conflicts[0]:
            conflicts[0] -= 1
            raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "injected"},
                               "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}]},
                              "TransactWriteItems")

    dynamodb_client.meta.events.register("before-call.dynamodb.TransactWriteItems", conflict)
    try:
        assert store.record_tile_done("j1", tile(5, units=7))
    finally:
        dynamodb_client.meta.events.unregister("before-call.dynamodb.TransactWriteItems", conflict)
    assert conflicts == [0]
    assert store.record_tile_done("j1", tile(5, units=7)) is False
    record = store.get_job("j1")
    assert (record.tiles_done, record.units_done) == (1, 7)


def test_listed_jobs_carry_their_progress(store: DynamoJobStore) -> None:
    for name in ("j1", "j2"):
        store.create_job(job(name))
        store.transition(name, Status.RUNNING)
    for t in range(3):
        store.record_tile_done("j1", tile(t, units=2))
    store.record_tile_done("j2", tile(9, units=5))
    records, _ = store.list_jobs(10)
    assert {r.job_id: (r.tiles_done, r.units_done) for r in records} == {"j1": (3, 6), "j2": (1, 5)}

"""Job store on one DynamoDB table (the AWS backend): the same contract as ``sqlite_store``.

The item layout is ``dynamo_items``'s: the job item, and ``SHARDS`` partition keys per
job, each holding the tiles its ids pick and one counter item. The ``gsi1`` index lists
jobs newest first. All jobs share its one partition, which is fine at job creation rates
far below DynamoDB's 1,000 writes/s per partition; ``gsi2`` lists one owner's jobs newest
first (a Query on the owner's partition, never a Scan). Like every GSI they are eventually
consistent, so a job created a moment ago may be missing from a list for a moment
(get_job reads the table, strongly).

The cap on an owner's active jobs cannot count them in a GSI (eventually consistent, and
no transaction spans a read of it): a counter item per owner does it instead. Creating a
job adds one to it in the creating transaction, on condition that it is below the cap; a
transition to a terminal status subtracts one in the transition's transaction. Both are
conditional writes that happen exactly once per job, so the count stays exact and two
submissions racing for the last slot cannot both win. Every item carries ``expires_at`` (epoch seconds)
for DynamoDB's TTL. spec, result, error, timings, links and stats are JSON strings.

BaseJobStore makes every decision; this module holds its primitives as conditional
writes, sent through ``dynamo_table`` (which turns a refused condition into an answer).
Exactly-once tile completion is a transaction on the tile's shard only: the tile item
moves to done only if it is not done already, and the shard's counter moves in the
same transaction, only while the shard's copy of the job status says running. Every
status change writes the job item and all its shards' copies in one transaction, so
that copy is never stale. The scale arithmetic is in docs/aws-scale.md.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tilefan.adapters.aws.dynamo_items import (
    ATTEMPT_PREFIX,
    COUNTER_SK,
    SHARDS,
    TILE_PREFIX,
    attempt_key,
    counter_key,
    counter_keys,
    index_key,
    item,
    job_key,
    owner_count_key,
    owner_index_key,
    plain,
    shard_pk,
    tile_key,
    update,
    with_counts,
)
from tilefan.adapters.aws.dynamo_table import GSI_NAME, OWNER_GSI, DynamoTable, TransactionCancelled
from tilefan.adapters.job_store import Admission, BaseJobStore, Completion
from tilefan.adapters.records_codec import AttemptState, StoredAttempt, StoredJob, StoredTile, TileState
from tilefan.domain.records import Status
from tilefan.errors import StoreError

_DAY_S = 86_400

# --------------------------------------------------------------------------- conditions
#
# Tile completion is exactly once. The tile item's status is the idempotency record:
#
#   absent  --record_tile_done-->  done    shard counters += 1 (same transaction)
#   running --record_tile_done-->  done    shard counters += 1
#   failed  --record_tile_done-->  done    shard counters += 1
#   done    --record_tile_done-->  refused: the transaction is cancelled, counters unchanged
#
# record_tile_failed and tile_started use the same guard, so neither can demote a
# done tile (a late failure report or a duplicate delivery leaves it done). The counted
# attempt's item is written done in that same transaction; any other attempt's outcome
# is written once, while its item still says running.
_NEVER_RECORDED = "attribute_not_exists(#status)"
_NOT_DONE = "#status <> :done"
_FIRST_COMPLETION = f"{_NEVER_RECORDED} OR {_NOT_DONE}"
_NO_OUTCOME_YET = f"{_NEVER_RECORDED} OR #status = :running"

_JOB_EXISTS = "attribute_exists(pk)"
# A tile counts only while its job runs: one finishing after a cancel is not counted.
# The shard's copy of the status is the one checked, so the job item stays untouched.
_SHARD_RUNNING = "attribute_exists(pk) AND #status = :running"
_JOB_IS_NEW = "attribute_not_exists(pk)"
# A transition writes only if the status is still the one it read (see BaseJobStore).
_STATUS_UNCHANGED = "#status = :seen"


class DynamoJobStore(BaseJobStore):
    """The JobStore port on one DynamoDB table, progress counted in shards."""

    def __init__(self, client: Any, table_name: str, ttl_days: int = 30,
                 clock: Callable[[], float] = time.time) -> None:
        self.table_name = table_name
        self.table = DynamoTable(client, table_name)
        self.ttl_days = ttl_days
        self.clock = clock

    # ------------------------------------------------------------------ shared

    def _expires_at(self) -> int:
        return int(self.clock()) + self.ttl_days * _DAY_S

    def _counted(self, jobs: list[dict[str, Any]]) -> list[StoredJob]:
        """Each job with its progress summed over its shards' counters."""
        counters = self.table.batch_get([k for job in jobs for k in counter_keys(job["job_id"])])
        by_pk: dict[str, list[dict[str, Any]]] = {}
        for counter in counters:
            by_pk.setdefault(counter["pk"], []).append(counter)
        return [with_counts(job, [c for s in range(SHARDS) for c in by_pk.get(shard_pk(job["job_id"], s), [])])
                for job in jobs]

    # ------------------------------------------------------------------ jobs

    def _put_job_if_new(self, stored: StoredJob, cap: int | None) -> Admission:
        expires = self._expires_at()
        job = {**stored, **job_key(stored["job_id"]), **index_key(stored["created_at"], stored["job_id"]),
               **owner_index_key(stored["owner"], stored["created_at"], stored["job_id"]), "expires_at": expires}
        put_job = {"Put": {"TableName": self.table_name, "Item": item(job), "ConditionExpression": _JOB_IS_NEW}}
        put_counters = [{"Put": {"TableName": self.table_name, "Item": item({
            **key, "job_id": stored["job_id"], "status": stored["status"], "tiles_done": 0, "units_done": 0,
            "expires_at": expires,
        })}} for key in counter_keys(stored["job_id"])]
        # Always counted, capped or not, so that the subtraction at the job's end balances it.
        # The count expires with the owner's newest job: by then every job it counted has.
        capped = cap is not None
        below_cap = {"ConditionExpression": "attribute_not_exists(#active) OR #active < :cap"} if capped else {}
        take_slot = {"Update": {
            "TableName": self.table_name, "Key": item(owner_count_key(stored["owner"])),
            "UpdateExpression": "ADD #active :one SET #expires_at = :expires", **below_cap,
            "ExpressionAttributeNames": {"#active": "active", "#expires_at": "expires_at"},
            "ExpressionAttributeValues": item({":one": 1, ":expires": expires, **({":cap": cap} if capped else {})}),
        }}
        try:
            self.table.transact([put_job, *put_counters, take_slot], f"creating job {stored['job_id']}")
        except TransactionCancelled as exc:
            if exc.reasons[:1] == ["ConditionalCheckFailed"]:
                return Admission.EXISTS
            if exc.reasons[-1:] == ["ConditionalCheckFailed"]:
                return Admission.OVER_CAP
            raise StoreError(f"creating job {stored['job_id']} was cancelled: {exc}") from None
        return Admission.ADMITTED

    def _get_stored_job(self, job_id: str) -> StoredJob | None:
        found = self.table.batch_get([job_key(job_id), *counter_keys(job_id)])
        jobs = [f for f in found if f["sk"] != COUNTER_SK]
        return with_counts(jobs[0], [f for f in found if f["sk"] == COUNTER_SK]) if jobs else None

    def _stored_jobs_page(self, count: int, after: tuple[float, str] | None,
                          owner: str | None = None) -> list[StoredJob]:
        # Everyone's jobs from gsi1's one partition, or one owner's from theirs in gsi2.
        index, partition = (GSI_NAME, "JOBS") if owner is None else (OWNER_GSI, f"OWNER#{owner}")
        params: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": f"{index}pk = :partition",
            "ExpressionAttributeValues": item({":partition": partition}),
            "ScanIndexForward": False,  # newest first
            "PaginationConfig": {"MaxItems": count, "PageSize": count},
        }
        if after is not None:
            # The index key of the job at ``after``: the query resumes just past it.
            position = index_key(*after) if owner is None else owner_index_key(owner, *after)
            params["ExclusiveStartKey"] = item({**job_key(after[1]), **position})
        return self._counted(list(itertools.islice(self.table.query(**params), count)))

    def _set_totals(self, job_id: str, tiles_total: int, units_total: int) -> bool:
        fields = {"tiles_total": tiles_total, "units_total": units_total}
        return self.table.update_item(job_key(job_id), update(fields, _JOB_EXISTS))

    def _update_job_if_status(self, job_id: str, seen: str, changes: StoredJob,
                              frees_slot_of: str | None = None) -> bool:
        # The job item and every shard's copy of its status move together, or none does;
        # so does the owner's active count when the job ends (once: the status condition).
        set_job = {"Update": {"TableName": self.table_name, "Key": item(job_key(job_id)),
                              **update(changes, _STATUS_UNCHANGED, values={":seen": seen})}}
        copies = [{"Update": {"TableName": self.table_name, "Key": item(key),
                              **update({"status": changes["status"]}, _JOB_EXISTS)}} for key in counter_keys(job_id)]
        free_slot = [] if not frees_slot_of else [{"Update": {
            "TableName": self.table_name, "Key": item(owner_count_key(frees_slot_of)),
            "UpdateExpression": "ADD #active :minus_one", "ExpressionAttributeNames": {"#active": "active"},
            "ExpressionAttributeValues": item({":minus_one": -1}),
        }}]
        try:
            self.table.transact([set_job, *copies, *free_slot], f"changing the status of job {job_id}")
        except TransactionCancelled as exc:
            if exc.reasons[:1] == ["ConditionalCheckFailed"]:
                return False
            raise StoreError(f"changing the status of job {job_id} was cancelled: {exc}") from None
        return True

    # ------------------------------------------------------------------ tiles

    def _tile_update(self, job_id: str, tile_id: int, fields: StoredTile, *, new_attempt: bool) -> dict[str, Any]:
        """The guarded update of one tile item (the job and tile ids and the TTL ride along)."""
        attempts = "#attempts = if_not_exists(#attempts, :zero) + :one" if new_attempt else \
            "#attempts = if_not_exists(#attempts, :one)"
        values = {":done": TileState.DONE.value, ":one": 1, **({":zero": 0} if new_attempt else {})}
        fields = {**fields, "job_id": job_id, "tile_id": tile_id, "expires_at": self._expires_at()}
        return update(fields, _FIRST_COMPLETION, clauses=[attempts], values=values)

    def _write_tile_unless_done(
        self, job_id: str, tile_id: int, fields: StoredTile, *, new_attempt: bool
    ) -> int | None:
        # Refused (None) for a done tile, which is the point: done stays done.
        written = self.table.updated(tile_key(job_id, tile_id), self._tile_update(job_id, tile_id, fields,
                                                                              new_attempt=new_attempt))
        return None if written is None else int(written["attempts"])

    def _attempt_update(self, job_id: str, tile_id: int, attempt: int, fields: StoredAttempt,
                        condition: str, values: dict[str, Any]) -> dict[str, Any]:
        fields = {**fields, "job_id": job_id, "tile_id": tile_id, "attempt": attempt, "expires_at": self._expires_at()}
        return update(fields, condition, values=values)

    def _write_attempt(self, job_id: str, tile_id: int, attempt: int, fields: StoredAttempt) -> bool:
        params = self._attempt_update(job_id, tile_id, attempt, fields, _NO_OUTCOME_YET,
                                      {":running": AttemptState.RUNNING.value})
        return self.table.update_item(attempt_key(job_id, tile_id, attempt), params)

    def _attempt_count(self, job_id: str, tile_id: int) -> int:
        """The tile's attempt count (1 for a tile never started), read strongly."""
        reply = self.table.send("get_item", TableName=self.table_name, Key=item(tile_key(job_id, tile_id)),
                           ConsistentRead=True, ProjectionExpression="attempts")
        return int(plain(reply.get("Item", {})).get("attempts", 1))

    def _complete_tile_once(
        self, job_id: str, tile_id: int, fields: StoredTile, units: int, attempt: int | None, tried: StoredAttempt
    ) -> Completion:
        # Exactly once: one transaction moves the tile item to done (only if it is not
        # done, _FIRST_COMPLETION) and adds to its shard's counters (only while the job
        # runs). Both items share the tile's shard key: the job item is not touched.
        mark_done = {"Update": {
            "TableName": self.table_name, "Key": item(tile_key(job_id, tile_id)),
            **self._tile_update(job_id, tile_id, fields, new_attempt=False),
        }}
        count_it = {"Update": {
            "TableName": self.table_name, "Key": item(counter_key(job_id, tile_id % SHARDS)),
            "UpdateExpression": "ADD tiles_done :one, units_done :units",
            "ConditionExpression": _SHARD_RUNNING,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": item({":one": 1, ":units": units, ":running": Status.RUNNING.value}),
        }}
        # The counted attempt's item, in the same transaction: a tile not yet done has no
        # done attempt, and _FIRST_COMPLETION's guard says so once more here.
        number = attempt if attempt is not None else self._attempt_count(job_id, tile_id)
        note_attempt = {"Update": {
            "TableName": self.table_name, "Key": item(attempt_key(job_id, tile_id, number)),
            **self._attempt_update(job_id, tile_id, number, tried, _FIRST_COMPLETION,
                                   {":done": AttemptState.DONE.value}),
        }}
        try:
            self.table.transact([mark_done, count_it, note_attempt], f"recording tile {tile_id} of job {job_id}")
        except TransactionCancelled as exc:
            tile_reason, shard_reason = [*exc.reasons, "None", "None"][:2]
            if tile_reason == "ConditionalCheckFailed":
                return Completion.ALREADY_DONE  # a retry or a duplicate delivery
            if shard_reason == "ConditionalCheckFailed":
                return Completion.JOB_NOT_RUNNING if self._get_stored_job(job_id) else Completion.NO_JOB
            raise StoreError(f"recording tile {tile_id} of job {job_id} was cancelled: {exc}") from None
        return Completion.COUNTED

    def _stored_tiles(self, job_id: str) -> list[StoredTile]:
        return self._shard_items(job_id, TILE_PREFIX)

    def _stored_attempts(self, job_id: str) -> list[StoredAttempt]:
        return self._shard_items(job_id, ATTEMPT_PREFIX)

    def _shard_items(self, job_id: str, prefix: str) -> list[dict[str, Any]]:
        # All shards at once: 100,000 tiles' items (the reducer's summaries) are ~32 pages of 1 MB.
        def shard(number: int) -> list[dict[str, Any]]:
            return list(self.table.query(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues=item({":pk": shard_pk(job_id, number), ":prefix": prefix}),
                ConsistentRead=True,
            ))

        with ThreadPoolExecutor(max_workers=SHARDS) as pool:
            return [found for items in pool.map(shard, range(SHARDS)) for found in items]

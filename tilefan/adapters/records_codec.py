"""Job and tile records as every job store keeps them: flat dicts of plain values.

A stored job or tile row holds strings, numbers and None only; the nested fields (spec,
timings, links, result, error, stats) are JSON text, which every backend can hold and
none needs to query inside. Reading accepts any number type a backend returns (SQLite's
int and float, DynamoDB's Decimal) and gives back exact ints and floats.

A stored spec is decoded once per process, not once per read (``decode_spec``): a job's
record is read many times (its status between steps, by every tile), and its spec text
never changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

from tilefan.domain.records import AttemptState, JobRecord, Status, TileResult, TileState
from tilefan.domain.spec.parse import JobSpec, spec_from_stored, spec_to_dict
from tilefan.errors import InvalidSpecError

StoredJob = dict[str, Any]
StoredTile = dict[str, Any]

JOB_COLUMNS = ("job_id", "kind", "status", "spec", "created_at", "tiles_total", "units_total", "tiles_done",
               "units_done", "timings", "result", "error", "links", "owner")
# The columns of a tile row, which reports rely on; a field never written reads as None.
TILE_COLUMNS = ("job_id", "tile_id", "status", "started_at", "finished_at", "worker", "route", "units",
                "stats", "bytes_read", "bytes_written", "attempts", "error")
_TILE_NUMBERS = {"tile_id": int, "started_at": float, "finished_at": float, "units": int,
                 "bytes_read": int, "bytes_written": int, "attempts": int}


# One row per attempt at a tile (each accepted start), numbered 1, 2... by the tile
# row's ``attempts`` count. Its outcome is written once: only a running row changes.
ATTEMPT_COLUMNS = ("job_id", "tile_id", "attempt", "status", "started_at", "finished_at", "worker", "route",
                   "bytes_read", "bytes_written", "error")
_ATTEMPT_NUMBERS = {"tile_id": int, "attempt": int, "started_at": float, "finished_at": float,
                    "bytes_read": int, "bytes_written": int}
StoredAttempt = dict[str, Any]


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _loads_or_none(text: str | None) -> Any:
    return json.loads(text) if text else None


# Jobs a process works on at once, and a margin: a page of the job list decodes up to a
# hundred records, and every one of them is read again while it runs.
_DECODED_SPECS = 512


@lru_cache(maxsize=_DECODED_SPECS)
def decode_spec(text: str) -> JobSpec:
    """The resolved spec a record's stored spec text holds, decoded on its first read only.
    A resolved spec is a frozen value, so every record read from the same text shares it."""
    return spec_from_stored(json.loads(text))


def job_to_stored(record: JobRecord) -> StoredJob:
    return {
        "job_id": record.job_id,
        "kind": record.kind,
        "status": record.status.value,
        "spec": json.dumps(spec_to_dict(record.spec)),
        "created_at": float(record.created_at),
        "tiles_total": int(record.tiles_total),
        "units_total": int(record.units_total),
        "tiles_done": int(record.tiles_done),
        "units_done": int(record.units_done),
        "timings": json.dumps(record.timings),
        "result": _json_or_none(record.result),
        "error": _json_or_none(record.error),
        "links": json.dumps(record.links),
        "owner": record.owner,
    }


def job_from_stored(stored: Mapping[str, Any]) -> JobRecord:
    return JobRecord(
        job_id=str(stored["job_id"]),
        kind=str(stored["kind"]),
        status=Status(stored["status"]),
        spec=decode_spec(str(stored["spec"])),
        created_at=float(stored["created_at"]),
        tiles_total=int(stored["tiles_total"]),
        units_total=int(stored["units_total"]),
        tiles_done=int(stored["tiles_done"]),
        units_done=int(stored["units_done"]),
        timings=json.loads(stored["timings"]),
        result=_loads_or_none(stored.get("result")),
        error=_loads_or_none(stored.get("error")),
        links=json.loads(stored["links"]),
        owner=str(stored.get("owner") or ""),  # a record older than ownership is nobody's
    )


def tile_done_fields(result: TileResult) -> StoredTile:
    """The fields a tile row takes when the tile is recorded done (its error cleared)."""
    return {
        "status": TileState.DONE.value,
        "started_at": float(result.started_at),
        "finished_at": float(result.finished_at),
        "worker": result.worker,
        "route": result.route,
        "units": int(result.units),
        "stats": json.dumps(result.stats),
        "bytes_read": int(result.bytes_read),
        "bytes_written": int(result.bytes_written),
        "error": None,
    }


def attempt_done_fields(result: TileResult, status: AttemptState = AttemptState.DONE) -> StoredAttempt:
    """The fields an attempt row takes when its run finished computing (counted or not)."""
    return {
        "status": status.value, "started_at": float(result.started_at), "finished_at": float(result.finished_at),
        "worker": result.worker, "route": result.route, "bytes_read": int(result.bytes_read),
        "bytes_written": int(result.bytes_written),
    }


def attempt_row_from_stored(stored: Mapping[str, Any]) -> dict[str, Any]:
    """An attempt row for reports: every column of ATTEMPT_COLUMNS, numbers exact."""
    row: dict[str, Any] = {name: stored.get(name) for name in ATTEMPT_COLUMNS}
    for name, kind in _ATTEMPT_NUMBERS.items():
        if row[name] is not None:
            row[name] = kind(row[name])
    return row


def tile_row_from_stored(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A tile row for reports: every column of TILE_COLUMNS, stats decoded."""
    row: dict[str, Any] = {name: stored.get(name) for name in TILE_COLUMNS}
    for name, kind in _TILE_NUMBERS.items():
        if row[name] is not None:
            row[name] = kind(row[name])
    row["stats"] = _loads_or_none(row["stats"])
    return row


def tile_result_from_stored(stored: Mapping[str, Any]) -> TileResult:
    row = tile_row_from_stored(stored)
    return TileResult(
        tile_id=row["tile_id"], units=row["units"], stats=row["stats"], started_at=row["started_at"],
        finished_at=row["finished_at"], worker=row["worker"], route=row["route"], bytes_read=row["bytes_read"],
        bytes_written=row["bytes_written"],
    )


# A cursor is ``<created_at>-<job_id>``: where the last job shown sits in the newest-first
# order, as a decimal number of seconds and the job's ID. Every string this pattern matches
# names a position (the OpenAPI document states it, and the server accepts whatever it
# allows): at most 16 integer digits keep the number finite, and the empty string is the
# first page.
CURSOR_PATTERN = r"^([0-9]{1,16}(\.[0-9]{1,350})?-[A-Za-z0-9_-]{1,64})?$"
_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(created_at: float, job_id: str) -> str:
    """The cursor for the position of (``created_at``, ``job_id``): the shortest decimal
    that reads back as the same float, written without an exponent.

    >>> encode_cursor(1700000000.25, "a1")
    '1700000000.25-a1'
    >>> decode_cursor(encode_cursor(1e-05, "a1"))
    (1e-05, 'a1')
    """
    return f"{Decimal(repr(float(created_at))):f}-{job_id}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The position a cursor names; InvalidSpecError for anything this API did not issue.

    >>> decode_cursor("not/a-cursor")
    Traceback (most recent call last):
    ...
    tilefan.errors.InvalidSpecError: cursor: is not a cursor from a previous page of this list
    """
    if not cursor or not _CURSOR.fullmatch(cursor):
        raise InvalidSpecError("cursor", "is not a cursor from a previous page of this list")
    created_at, job_id = cursor.split("-", 1)
    return float(created_at), job_id

"""The SQLite store's attempt history: the ``tile_attempts`` table, its migration, its writes.

One row per attempt at a tile, keyed by (job, tile, attempt number). A database made
before the table existed gets it on first open, filled with one row per existing tile
(its last attempt, the only one that database kept), in one transaction so that two
processes opening the same old database migrate it once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from tilefan.adapters.records_codec import ATTEMPT_COLUMNS, AttemptState, StoredAttempt

_TABLE = """
CREATE TABLE tile_attempts (
    job_id        TEXT NOT NULL,
    tile_id       INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    status        TEXT NOT NULL,
    started_at    REAL,
    finished_at   REAL,
    worker        TEXT,
    route         TEXT,
    bytes_read    INTEGER,
    bytes_written INTEGER,
    error         TEXT,
    PRIMARY KEY (job_id, tile_id, attempt)
)
"""

# Each tile row's last attempt, numbered by its count (a row always has at least one).
_BACKFILL = """
INSERT INTO tile_attempts (job_id, tile_id, attempt, status, started_at, finished_at, worker, route,
                           bytes_read, bytes_written, error)
SELECT job_id, tile_id, MAX(attempts, 1), status, started_at, finished_at, worker, route,
       bytes_read, bytes_written, error FROM tiles
"""


def ensure_attempts_table(conn: sqlite3.Connection) -> None:
    """Create ``tile_attempts`` if missing, filled from the tile rows already there."""
    if _has_table(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _has_table(conn):  # another process may have migrated while this one waited
            conn.execute(_TABLE)
            conn.execute(_BACKFILL)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _has_table(conn: sqlite3.Connection) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tile_attempts'").fetchone()
    return found is not None


def known_columns(fields: Mapping[str, Any], columns: Sequence[str]) -> list[str]:
    """The field names, checked against the table's columns before they go into SQL."""
    unknown = set(fields) - set(columns)
    if unknown:
        raise ValueError(f"not a column: {sorted(unknown)}")
    return list(fields)


def write_attempt(db: sqlite3.Connection, job_id: str, tile_id: int, attempt: int, fields: StoredAttempt,
                  *, only_if_running: bool = True) -> bool:
    """Insert the attempt row, or update it (while running, unless told otherwise)."""
    names = known_columns(fields, ATTEMPT_COLUMNS)
    guard = f" WHERE tile_attempts.status = '{AttemptState.RUNNING.value}'" if only_if_running else ""
    cur = db.execute(
        f"INSERT INTO tile_attempts (job_id, tile_id, attempt, {', '.join(names)})"
        f" VALUES (?, ?, ?, {', '.join('?' for _ in names)}) ON CONFLICT (job_id, tile_id, attempt)"
        f" DO UPDATE SET {', '.join(f'{n} = excluded.{n}' for n in names)}{guard}",
        (job_id, tile_id, attempt, *(fields[n] for n in names)),
    )
    return cur.rowcount == 1

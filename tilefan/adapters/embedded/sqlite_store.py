"""Job store on SQLite in WAL mode (the embedded backend).

Each process opens its own connection (the pool's workers included). Writers take the
lock up front with ``BEGIN IMMEDIATE`` so a read-then-write never loses a race.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from tilefan.domain.records import ALLOWED_FROM, JobRecord, Status, TileResult
from tilefan.domain.spec import spec_from_stored, spec_to_dict
from tilefan.errors import ConflictError, InvalidSpecError, JobNotFoundError, StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    tiles_total INTEGER NOT NULL DEFAULT 0,
    units_total INTEGER NOT NULL DEFAULT 0,
    tiles_done  INTEGER NOT NULL DEFAULT 0,
    units_done  INTEGER NOT NULL DEFAULT 0,
    timings     TEXT NOT NULL DEFAULT '{}',
    result      TEXT,
    error       TEXT,
    links       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (created_at DESC, job_id DESC);
CREATE TABLE IF NOT EXISTS tiles (
    job_id        TEXT NOT NULL,
    tile_id       INTEGER NOT NULL,
    status        TEXT NOT NULL,
    started_at    REAL,
    finished_at   REAL,
    worker        TEXT,
    route         TEXT,
    units         INTEGER,
    stats         TEXT,
    bytes_read    INTEGER,
    bytes_written INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    PRIMARY KEY (job_id, tile_id)
);
"""


class SqliteJobStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()

    # ------------------------------------------------------------------ connections

    def _conn(self) -> sqlite3.Connection:
        # One connection per thread and per process: sqlite3 objects must not cross
        # either boundary, and a forked child must not reuse its parent's.
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            # Created on first use, so a command that fails validation writes nothing.
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"cannot open job store {self.path}: {exc}") from None
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn())

    # ------------------------------------------------------------------ jobs

    def create_job(self, record: JobRecord) -> None:
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO jobs (job_id, kind, status, spec, created_at, tiles_total, units_total,"
                    " timings, links) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.job_id, record.kind, record.status.value, json.dumps(spec_to_dict(record.spec)),
                        record.created_at, record.tiles_total, record.units_total,
                        json.dumps(record.timings), json.dumps(record.links),
                    ),
                )
        except sqlite3.IntegrityError:
            raise ConflictError(f"job {record.job_id} already exists") from None

    def get_job(self, job_id: str) -> JobRecord:
        row = self._conn().execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return _record(row)

    def list_jobs(self, limit: int, cursor: str | None = None) -> tuple[list[JobRecord], str | None]:
        params: tuple[Any, ...]
        if limit < 1:
            raise InvalidSpecError("limit", f"must be at least 1, got {limit}")
        if cursor:
            created, _, job_id = cursor.partition("/")
            try:
                created_at = float(created)
            except ValueError:
                created_at = math.nan
            if not math.isfinite(created_at) or not job_id:
                raise InvalidSpecError("cursor", "is not a cursor this API returned")
            sql = ("SELECT * FROM jobs WHERE (created_at, job_id) < (?, ?)"
                   " ORDER BY created_at DESC, job_id DESC LIMIT ?")
            params = (created_at, job_id, limit + 1)
        else:
            sql = "SELECT * FROM jobs ORDER BY created_at DESC, job_id DESC LIMIT ?"
            params = (limit + 1,)
        rows = self._conn().execute(sql, params).fetchall()
        records = [_record(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = records[-1]
            next_cursor = f"{last.created_at!r}/{last.job_id}"
        return records, next_cursor

    def set_plan(self, job_id: str, tiles_total: int, units_total: int) -> None:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET tiles_total = ?, units_total = ? WHERE job_id = ?",
                (tiles_total, units_total, job_id),
            )
            if cur.rowcount == 0:
                raise JobNotFoundError(job_id)

    def transition(
        self, job_id: str, new: Status, *, timings: dict[str, float] | None = None,
        result: dict[str, Any] | None = None, error: dict[str, Any] | None = None,
        links: dict[str, str] | None = None,
    ) -> bool:
        allowed = [s.value for s in ALLOWED_FROM[new]]
        with self._tx() as db:
            row = db.execute("SELECT status, timings, links FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFoundError(job_id)
            if row["status"] not in allowed:
                return False
            merged_timings = {**json.loads(row["timings"]), **(timings or {})}
            merged_links = {**json.loads(row["links"]), **(links or {})}
            db.execute(
                "UPDATE jobs SET status = ?, timings = ?, links = ?, result = COALESCE(?, result),"
                " error = COALESCE(?, error) WHERE job_id = ?",
                (
                    new.value, json.dumps(merged_timings), json.dumps(merged_links),
                    None if result is None else json.dumps(result),
                    None if error is None else json.dumps(error), job_id,
                ),
            )
        return True

    # ------------------------------------------------------------------ tiles

    def tile_started(self, job_id: str, tile_id: int, worker: str, route: str, at: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO tiles (job_id, tile_id, status, started_at, worker, route, attempts)"
                " VALUES (?, ?, 'running', ?, ?, ?, 1)"
                " ON CONFLICT (job_id, tile_id) DO UPDATE SET attempts = attempts + 1,"
                "   started_at = excluded.started_at, worker = excluded.worker, route = excluded.route,"
                "   status = 'running'"
                # A late duplicate of a finished tile must not rewrite its report row.
                " WHERE tiles.status != 'done'",
                (job_id, tile_id, at, worker, route),
            )

    def record_tile_done(self, job_id: str, result: TileResult) -> bool:
        with self._tx() as db:
            job = db.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if job is None:
                raise JobNotFoundError(job_id)
            if job["status"] != Status.RUNNING.value:
                return False  # finished after a cancel or failure: not counted
            # Exactly once: the row moves to 'done' only from a state that is not 'done'
            # (absent, running or failed); the counters move only when it did.
            #   absent/running/failed --(this write)--> done      counters += 1
            #   done                  --(this write)--> unchanged counters unchanged
            cur = db.execute(
                "INSERT INTO tiles (job_id, tile_id, status, started_at, finished_at, worker, route, units,"
                " stats, bytes_read, bytes_written, attempts) VALUES (?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, ?, 1)"
                " ON CONFLICT (job_id, tile_id) DO UPDATE SET status = 'done',"
                "   started_at = excluded.started_at, finished_at = excluded.finished_at,"
                "   worker = excluded.worker, route = excluded.route, units = excluded.units,"
                "   stats = excluded.stats, bytes_read = excluded.bytes_read,"
                "   bytes_written = excluded.bytes_written, error = NULL"
                " WHERE tiles.status != 'done'",
                (
                    job_id, result.tile_id, result.started_at, result.finished_at, result.worker,
                    result.route, result.units, json.dumps(result.stats), result.bytes_read,
                    result.bytes_written,
                ),
            )
            if cur.rowcount == 0:
                return False
            cur = db.execute(
                "UPDATE jobs SET tiles_done = tiles_done + 1, units_done = units_done + ? WHERE job_id = ?",
                (result.units, job_id),
            )
            if cur.rowcount == 0:
                raise JobNotFoundError(job_id)
        return True

    def record_tile_failed(self, job_id: str, tile_id: int, message: str, at: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO tiles (job_id, tile_id, status, finished_at, error, attempts)"
                " VALUES (?, ?, 'failed', ?, ?, 1)"
                " ON CONFLICT (job_id, tile_id) DO UPDATE SET status = 'failed',"
                "   finished_at = excluded.finished_at, error = excluded.error"
                " WHERE tiles.status != 'done'",
                (job_id, tile_id, at, message),
            )

    def tile_results(self, job_id: str) -> list[TileResult]:
        rows = self._conn().execute(
            "SELECT * FROM tiles WHERE job_id = ? AND status = 'done' ORDER BY tile_id", (job_id,)
        ).fetchall()
        return [
            TileResult(
                tile_id=r["tile_id"], units=r["units"], stats=json.loads(r["stats"]),
                started_at=r["started_at"], finished_at=r["finished_at"], worker=r["worker"],
                route=r["route"], bytes_read=r["bytes_read"], bytes_written=r["bytes_written"],
            )
            for r in rows
        ]

    def tile_rows(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT * FROM tiles WHERE job_id = ? ORDER BY tile_id", (job_id,)
        ).fetchall()
        out = []
        for r in rows:
            row = dict(r)
            row["stats"] = json.loads(row["stats"]) if row["stats"] else None
            out.append(row)
        return out


class _Transaction:
    """``with`` block around BEGIN IMMEDIATE … COMMIT (ROLLBACK on error)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"job store unavailable: {exc}") from None
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        job_id=row["job_id"],
        kind=row["kind"],
        status=Status(row["status"]),
        spec=spec_from_stored(json.loads(row["spec"])),
        created_at=row["created_at"],
        tiles_total=row["tiles_total"],
        units_total=row["units_total"],
        tiles_done=row["tiles_done"],
        units_done=row["units_done"],
        timings=json.loads(row["timings"]),
        result=json.loads(row["result"]) if row["result"] else None,
        error=json.loads(row["error"]) if row["error"] else None,
        links=json.loads(row["links"]),
    )

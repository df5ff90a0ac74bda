"""Job store on SQLite in WAL mode (the embedded backend): BaseJobStore's primitives.

Each process opens its own connection (the pool's workers included). Writers take the
lock up front with ``BEGIN IMMEDIATE`` so a read-then-write never loses a race; every
conditional write says in its WHERE clause what it expects to find.

A jobs.sqlite3 made before jobs had owners gains the ``owner`` column on first open, each
existing job owned by ``LOCAL_OWNER`` (the home's one principal), as new ones are.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tilefan.adapters.embedded.sqlite_attempts import ensure_attempts_table, known_columns, write_attempt
from tilefan.adapters.job_store import ACTIVE, Admission, BaseJobStore, Completion
from tilefan.adapters.records_codec import JOB_COLUMNS, TILE_COLUMNS, StoredAttempt, StoredJob, StoredTile
from tilefan.domain.records import LOCAL_OWNER, Status
from tilefan.errors import StoreError

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
    links       TEXT NOT NULL DEFAULT '{}',
    owner       TEXT NOT NULL DEFAULT 'local'  -- LOCAL_OWNER
);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (created_at DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at, job_id);
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
# Created once the owner column surely exists (after _add_owner_column on an old file).
_OWNER_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, created_at DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_owner_status ON jobs (owner, status);
"""


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        # WAL is a property of the file: ask before setting it, because switching modes
        # needs the database to itself and fails at once (no busy wait) while others read.
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        _add_owner_column(conn)
        conn.executescript(_OWNER_INDEXES)
        ensure_attempts_table(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _open_with_retry(path: Path, patience_s: float = 30.0) -> sqlite3.Connection:
    """Open and set up a connection, waiting out the moments another connection holds a
    lock that SQLite reports without calling its busy handler (a WAL switch or recovery
    while a second process opens the same fresh file)."""
    deadline = time.monotonic() + patience_s
    pause = 0.005
    while True:
        try:
            return _open(path)
        except sqlite3.OperationalError as exc:
            transient = "locked" in str(exc) or "busy" in str(exc)
            if not transient or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


class SqliteJobStore(BaseJobStore):
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
                conn = _open_with_retry(self.path)
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"cannot open job store {self.path}: {exc}") from None
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn())

    def _select(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [dict(row) for row in self._conn().execute(sql, params).fetchall()]

    # ------------------------------------------------------------------ jobs

    def _put_job_if_new(self, stored: StoredJob, cap: int | None) -> Admission:
        try:
            with self._tx() as db:
                # BEGIN IMMEDIATE holds the write lock from the count to the insert, so two
                # submissions (threads or processes) cannot both take an owner's last slot.
                if cap is not None:
                    row = db.execute(f"SELECT COUNT(*) AS n FROM jobs WHERE owner = ? AND status IN ({_marks(ACTIVE)})",
                                     (stored["owner"], *ACTIVE)).fetchone()
                    if row["n"] >= cap:
                        return Admission.OVER_CAP
                db.execute(f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({_marks(JOB_COLUMNS)})",
                           tuple(stored[c] for c in JOB_COLUMNS))
        except sqlite3.IntegrityError:
            return Admission.EXISTS
        return Admission.ADMITTED

    def _get_stored_job(self, job_id: str) -> StoredJob | None:
        rows = self._select("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return rows[0] if rows else None

    def _stored_jobs_page(self, count: int, after: tuple[float, str] | None,
                          owner: str | None = None) -> list[StoredJob]:
        where = [] if owner is None else ["owner = ?"]
        params: list[Any] = [] if owner is None else [owner]
        if after is not None:
            where.append("(created_at, job_id) < (?, ?)")
            params += after
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return self._select(f"SELECT * FROM jobs {clause}ORDER BY created_at DESC, job_id DESC LIMIT ?",
                            (*params, count))

    def _set_totals(self, job_id: str, tiles_total: int, units_total: int) -> bool:
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET tiles_total = ?, units_total = ? WHERE job_id = ?",
                             (tiles_total, units_total, job_id))
        return cur.rowcount == 1

    def _update_job_if_status(self, job_id: str, seen: str, changes: StoredJob,
                              frees_slot_of: str | None = None) -> bool:
        # Active jobs are counted from their statuses: there is no count to lower.
        names = known_columns(changes, JOB_COLUMNS)
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE jobs SET {', '.join(f'{n} = ?' for n in names)} WHERE job_id = ? AND status = ?",
                (*(changes[n] for n in names), job_id, seen),
            )
        return cur.rowcount == 1

    # ------------------------------------------------------------------ the scheduler's queue

    def unfinished_jobs(self, limit: int) -> list[str]:
        """RUNNING jobs (to resume) then QUEUED ones, each oldest first."""
        rows = self._select(
            "SELECT job_id FROM jobs WHERE status IN ('RUNNING', 'QUEUED')"
            " ORDER BY status = 'QUEUED', created_at, job_id LIMIT ?", (int(limit),))
        return [r["job_id"] for r in rows]

    def queue_place(self, job_id: str) -> int | None:
        """1 for the oldest QUEUED job, and so on; None unless the job is QUEUED."""
        rows = self._select(
            "SELECT 1 + (SELECT COUNT(*) FROM jobs AS o WHERE o.status = 'QUEUED'"
            " AND (o.created_at, o.job_id) < (j.created_at, j.job_id)) AS place"
            " FROM jobs AS j WHERE j.job_id = ? AND j.status = 'QUEUED'", (job_id,))
        return int(rows[0]["place"]) if rows else None

    def job_statuses(self, job_ids: list[str]) -> dict[str, str]:
        rows = self._select(f"SELECT job_id, status FROM jobs WHERE job_id IN ({_marks(job_ids)})", tuple(job_ids))
        return {r["job_id"]: r["status"] for r in rows}

    # ------------------------------------------------------------------ tiles

    def _write_tile_unless_done(
        self, job_id: str, tile_id: int, fields: StoredTile, *, new_attempt: bool
    ) -> int | None:
        with self._tx() as db:
            return _upsert_tile_unless_done(db, job_id, tile_id, fields, new_attempt=new_attempt)

    def _write_attempt(self, job_id: str, tile_id: int, attempt: int, fields: StoredAttempt) -> bool:
        with self._tx() as db:
            return write_attempt(db, job_id, tile_id, attempt, fields)

    def _complete_tile_once(
        self, job_id: str, tile_id: int, fields: StoredTile, units: int, attempt: int | None, tried: StoredAttempt
    ) -> Completion:
        with self._tx() as db:
            # BEGIN IMMEDIATE holds the write lock from here: the status read, the tile
            # write and the counters move together or not at all.
            job = db.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if job is None:
                return Completion.NO_JOB
            if job["status"] != Status.RUNNING.value:
                return Completion.JOB_NOT_RUNNING  # finished after a cancel or failure
            count = _upsert_tile_unless_done(db, job_id, tile_id, fields, new_attempt=False)
            if count is None:
                return Completion.ALREADY_DONE
            # The tile was not done, so no attempt of it is: this row may take "done".
            write_attempt(db, job_id, tile_id, attempt if attempt is not None else count, tried,
                          only_if_running=False)
            db.execute("UPDATE jobs SET tiles_done = tiles_done + 1, units_done = units_done + ? WHERE job_id = ?",
                       (units, job_id))
        return Completion.COUNTED

    def _stored_tiles(self, job_id: str) -> list[StoredTile]:
        return self._select("SELECT * FROM tiles WHERE job_id = ?", (job_id,))

    def _stored_attempts(self, job_id: str) -> list[StoredAttempt]:
        return self._select("SELECT * FROM tile_attempts WHERE job_id = ?", (job_id,))


def _add_owner_column(conn: sqlite3.Connection) -> None:
    """Give a jobs table made before ownership its owner column (existing jobs: LOCAL_OWNER).

    Checked again under the write lock: processes opening the same old file at once add it once."""
    def missing() -> bool:
        return "owner" not in {row["name"] for row in conn.execute("PRAGMA table_info(jobs)")}

    if not missing():
        return
    with _Transaction(conn) as db:
        if missing():
            db.execute(f"ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '{LOCAL_OWNER}'")


def _marks(names: Sequence[str]) -> str:
    return ", ".join("?" for _ in names)


# Exactly-once tile completion, and the guard of every other tile write: a row moves
# only while it is not done, and the caller learns (a returned count) whether it moved.
#   absent/running/failed --(this write)--> fields written   (done: counters += 1)
#   done                  --(this write)--> unchanged        (done: counters unchanged)
_UNLESS_DONE = "WHERE tiles.status != 'done'"


def _upsert_tile_unless_done(
    db: sqlite3.Connection, job_id: str, tile_id: int, fields: StoredTile, *, new_attempt: bool
) -> int | None:
    """The row's attempt count after the write; None when refused (the tile is done)."""
    names = known_columns(fields, TILE_COLUMNS)
    sets = [f"{n} = excluded.{n}" for n in names]
    if new_attempt:
        sets.append("attempts = attempts + 1")
    # fetchall, not fetchone: a RETURNING statement must run to its end before COMMIT.
    written = db.execute(
        f"INSERT INTO tiles (job_id, tile_id, attempts, {', '.join(names)}) VALUES (?, ?, 1, {_marks(names)})"
        f" ON CONFLICT (job_id, tile_id) DO UPDATE SET {', '.join(sets)} {_UNLESS_DONE} RETURNING attempts",
        (job_id, tile_id, *(fields[n] for n in names)),
    ).fetchall()
    return int(written[0]["attempts"]) if written else None


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


"""Job ownership in the job store contract, on every backend (SQLite, DynamoDB, memory).

A job keeps its owner; read with an owner, a job of anyone else's is not found, and a
list shows only the owner's jobs, page after page. ``create_job(max_active=N)`` admits a
job only while its owner has fewer than N QUEUED or RUNNING jobs, also when submissions
race, and a job that ends frees its slot exactly once. Then what only one backend does:
SQLite adds the owner column to an older jobs.sqlite3, and DynamoDB lists one owner's jobs
with a Query on the owner index, declared alike in the stack's template and in tests.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.functional import test_store_contract as contract
from tests.functional.conftest import TABLE
from tests.functional.test_store_contract import Backend, job
from tilefan.adapters.embedded.sqlite_store import SqliteJobStore
from tilefan.adapters.records_codec import job_to_stored
from tilefan.domain.records import LOCAL_OWNER, Status
from tilefan.errors import JobNotFoundError, TooManyJobsError

ROOT = Path(__file__).resolve().parents[2]
ALICE, BOB = "arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/bob"


@pytest.fixture(params=["embedded", "aws", "memory"])
def be(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The store contract's backends, built as it builds them."""
    if request.param == "embedded":
        return contract._embedded(tmp_path)
    return contract._aws(request) if request.param == "aws" else contract._memory()


@pytest.fixture
def aws(request: pytest.FixtureRequest) -> Backend:
    return contract._aws(request)


def test_a_job_keeps_its_owner_and_the_local_owner_is_the_default(be: Backend) -> None:
    be.jobs.create_job(job("j1", owner=ALICE))
    be.jobs.create_job(job("j2"))
    assert be.jobs.get_job("j1").owner == ALICE
    assert be.jobs.get_job("j2").owner == LOCAL_OWNER
    assert be.jobs.get_job("j1").to_dict()["owner"] == ALICE


def test_someone_elses_job_is_not_found(be: Backend) -> None:
    be.jobs.create_job(job("j1", owner=ALICE))
    assert be.jobs.get_job("j1", ALICE).job_id == "j1"
    with pytest.raises(JobNotFoundError) as theirs:
        be.jobs.get_job("j1", BOB)
    with pytest.raises(JobNotFoundError) as missing:
        be.jobs.get_job("j9", BOB)
    # The same error either way, naming only the id that was asked for.
    assert str(theirs.value) == str(missing.value).replace("j9", "j1")
    assert be.jobs.get_job("j1").owner == ALICE  # the pipeline's own view sees every job


def test_a_list_shows_only_the_owners_jobs_page_by_page(be: Backend) -> None:
    for i in range(5):
        be.jobs.create_job(job(f"a{i}", created_at=1_000.0 + i, owner=ALICE))
        be.jobs.create_job(job(f"b{i}", created_at=1_000.5 + i, owner=BOB))
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = be.jobs.list_jobs(2, cursor, owner=ALICE)
        seen += [r.job_id for r in page]
        assert all(r.owner == ALICE for r in page)
        if cursor is None:
            break
    assert seen == ["a4", "a3", "a2", "a1", "a0"]
    assert [r.job_id for r in be.jobs.list_jobs(3, owner=BOB)[0]] == ["b4", "b3", "b2"]
    assert be.jobs.list_jobs(3, owner="arn:aws:iam::123456789012:user/carol") == ([], None)
    assert len(be.jobs.list_jobs(20)[0]) == 10  # without an owner: everyone's


def test_the_cap_counts_only_the_owners_active_jobs_and_a_job_that_ends_frees_its_slot(be: Backend) -> None:
    be.jobs.create_job(job("a1", owner=ALICE), max_active=2)
    be.jobs.create_job(job("a2", owner=ALICE), max_active=2)
    with pytest.raises(TooManyJobsError) as refused:
        be.jobs.create_job(job("a3", owner=ALICE), max_active=2)
    assert "at most 2 queued or running" in str(refused.value) and "TILEFAN_MAX_CONCURRENT_JOBS" in str(refused.value)
    with pytest.raises(JobNotFoundError):
        be.jobs.get_job("a3")  # a refused job leaves no trace
    be.jobs.create_job(job("b1", owner=BOB), max_active=2)  # Bob's slots are his own

    # RUNNING still holds the slot; SUCCEEDED frees it.
    assert be.jobs.transition("a1", Status.RUNNING)
    with pytest.raises(TooManyJobsError):
        be.jobs.create_job(job("a3", owner=ALICE), max_active=2)
    assert be.jobs.transition("a1", Status.SUCCEEDED)
    be.jobs.create_job(job("a3", owner=ALICE), max_active=2)
    with pytest.raises(TooManyJobsError):
        be.jobs.create_job(job("a4", owner=ALICE), max_active=2)

    # A cancel frees one slot, once: a second ending is refused and frees nothing.
    assert be.jobs.transition("a2", Status.CANCELLED)
    assert not be.jobs.transition("a2", Status.FAILED)
    be.jobs.create_job(job("a4", owner=ALICE), max_active=2)
    with pytest.raises(TooManyJobsError):
        be.jobs.create_job(job("a5", owner=ALICE), max_active=2)
    assert be.jobs.transition("a3", Status.FAILED)
    be.jobs.create_job(job("a5", owner=ALICE), max_active=2)
    active = [r for r in be.jobs.list_jobs(20, owner=ALICE)[0] if not r.status.terminal]
    assert sorted(r.job_id for r in active) == ["a4", "a5"]


def test_submissions_racing_for_the_last_slots_cannot_all_win(be: Backend) -> None:
    cap, racers = 3, 8
    gate = threading.Barrier(racers)
    outcomes: list[str] = []

    def submit(i: int) -> None:
        gate.wait()
        try:
            be.jobs.create_job(job(f"r{i}", created_at=2_000.0 + i, owner=ALICE), max_active=cap)
            outcomes.append("admitted")
        except TooManyJobsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["admitted"] * cap + ["refused"] * (racers - cap)
    assert len(be.jobs.list_jobs(20, owner=ALICE)[0]) == cap


# =========================================================================== one backend each


def test_an_older_jobs_file_gains_the_owner_column_its_jobs_local(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE jobs (job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, spec TEXT NOT NULL,
            created_at REAL NOT NULL, tiles_total INTEGER NOT NULL DEFAULT 0, units_total INTEGER NOT NULL DEFAULT 0,
            tiles_done INTEGER NOT NULL DEFAULT 0, units_done INTEGER NOT NULL DEFAULT 0,
            timings TEXT NOT NULL DEFAULT '{}', result TEXT, error TEXT, links TEXT NOT NULL DEFAULT '{}');
    """)
    spec = job_to_stored(job("old1"))["spec"]
    old.execute("INSERT INTO jobs (job_id, kind, status, spec, created_at) VALUES ('old1', 'matmul', 'QUEUED', ?, 5.0)",
                (spec,))
    old.commit()
    old.close()

    jobs = SqliteJobStore(path)
    assert jobs.get_job("old1", LOCAL_OWNER).owner == LOCAL_OWNER
    with pytest.raises(TooManyJobsError):  # the old QUEUED job holds one of the local owner's slots
        jobs.create_job(job("new1", owner=LOCAL_OWNER), max_active=1)
    jobs.create_job(job("new1", created_at=6.0), max_active=2)
    assert [r.job_id for r in jobs.list_jobs(5, owner=LOCAL_OWNER)[0]] == ["new1", "old1"]
    # A second store (another process) opening the migrated file changes nothing more.
    assert [r.job_id for r in SqliteJobStore(path).list_jobs(5)[0]] == ["new1", "old1"]


class _Recorder:
    """A DynamoDB client that notes each operation and the index it names."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, str | None]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name == "get_paginator":
            def paginator(op: str) -> Any:
                real = attr(op)

                def paginate(**kwargs: Any) -> Any:
                    self.calls.append((op, kwargs.get("IndexName")))
                    return real.paginate(**kwargs)

                return type("Paginator", (), {"paginate": staticmethod(paginate)})()

            return paginator
        if callable(attr):
            def call(*args: Any, **kwargs: Any) -> Any:
                self.calls.append((name, kwargs.get("IndexName")))
                return attr(*args, **kwargs)

            return call
        return attr


def test_dynamodb_lists_an_owners_jobs_with_a_query_on_the_owner_index(aws: Backend) -> None:
    from tilefan.adapters.aws.dynamo_store import OWNER_GSI, DynamoJobStore

    recorder = _Recorder(aws.raw["dynamodb"])
    jobs = DynamoJobStore(recorder, TABLE)
    for i in range(3):
        jobs.create_job(job(f"a{i}", created_at=10.0 + i, owner=ALICE))
        jobs.create_job(job(f"b{i}", created_at=10.5 + i, owner=BOB))
    recorder.calls.clear()
    assert [r.job_id for r in jobs.list_jobs(2, owner=BOB)[0]] == ["b2", "b1"]
    listed = [c for c in recorder.calls if c[0] in ("query", "scan")]
    assert listed == [("query", OWNER_GSI)]


def test_the_tables_indexes_are_the_ones_the_stack_declares(aws: Backend) -> None:
    template = json.loads((ROOT / "stepfunctions" / "merge-template.json").read_text())
    declared = template["Resources"]["JobsTable"]["Properties"]
    described = aws.raw["dynamodb"].describe_table(TableName=TABLE)["Table"]

    def indexes(gsis: list[dict[str, Any]]) -> dict[str, Any]:
        return {g["IndexName"]: (g["KeySchema"], g["Projection"]["ProjectionType"]) for g in gsis}

    assert indexes(described["GlobalSecondaryIndexes"]) == indexes(declared["GlobalSecondaryIndexes"])
    assert "gsi2" in indexes(declared["GlobalSecondaryIndexes"])
    assert {(a["AttributeName"], a["AttributeType"]) for a in described["AttributeDefinitions"]} == \
        {(a["AttributeName"], a["AttributeType"]) for a in declared["AttributeDefinitions"]}

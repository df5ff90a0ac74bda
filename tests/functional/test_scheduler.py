"""The home's scheduler through the JobService: the queue and its places, the lease shared
with another process, retries of transient errors, permanent errors, fairness."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import wait_until
from tilefan import bootstrap
from tilefan.adapters.embedded.lease import FileLease
from tilefan.domain import kernels
from tilefan.entrypoints.report.files import write_report
from tilefan.runtimes.embedded.scheduler import Scheduler
from tilefan.service.jobs import JobService

ADD = {"kind": "add", "a": {"shape": [8, 8]}, "b": {"shape": [8, 8]}, "tile": 4}


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., JobService]]:
    built: list[JobService] = []

    def build(workers: int = 1) -> JobService:
        config = bootstrap.Config(home=tmp_path / "home", workers=workers, kernel="numpy")
        service = bootstrap.build_service(config)
        built.append(service)
        return service

    yield build
    for service in built:
        assert isinstance(service.runner, Scheduler)
        service.runner.stop()


def ended(service: JobService, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        doc = service.get(job_id)
        return None if doc["status"] in ("QUEUED", "RUNNING") else doc

    return wait_until(done, f"job {job_id} to end")


def attempts(service: JobService, job_id: str) -> dict[int, int]:
    return {t["tile_id"]: t["attempts"] for t in service.report(job_id)["tiles"]}


def test_jobs_wait_in_the_queue_with_their_place_while_another_process_holds_the_lease(
    make: Callable[..., JobService], tmp_path: Path
) -> None:
    other = FileLease(tmp_path / "home" / "scheduler.lock")  # another process's scheduler
    assert other.acquire()
    service = make()
    ids = [service.submit(ADD)["job_id"] for _ in range(3)]
    assert [service.get(j)["progress"]["queue_place"] for j in ids] == [1, 2, 3]
    assert not FileLease(tmp_path / "home" / "scheduler.lock").acquire(), "two holders of one lease"
    other.release()  # the other scheduler exits: this one takes the lease and runs them all
    docs = [ended(service, j) for j in ids]
    assert [d["status"] for d in docs] == ["SUCCEEDED"] * 3
    assert all("queue_place" not in d["progress"] for d in docs)


def test_a_transient_error_is_retried_with_its_attempts_in_the_report(
    make: Callable[..., JobService], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real, failures = kernels.add_block, []

    def flaky(a: np.ndarray, b: np.ndarray, dtype: str, out: np.ndarray | None = None) -> np.ndarray:
        if not failures:
            failures.append(1)
            raise OSError("injected: a disk hiccup")
        return real(a, b, dtype, out)

    monkeypatch.setattr(kernels, "add_block", flaky)
    service = make()  # one worker: tiles run in this process, where the patch is
    job_id = service.submit(ADD)["job_id"]
    assert ended(service, job_id)["status"] == "SUCCEEDED"
    assert sorted(attempts(service, job_id).values()) == [1, 1, 1, 2]
    # The report folder has a row per attempt: the retried tile twice, its failure in error.csv.
    write_report(service.report(job_id), tmp_path / "report")
    with open(tmp_path / "report" / "logs.csv", newline="") as f:
        logs = list(csv.DictReader(f))
    retried = [r for r in logs if r["tile_id"] == str(next(t for t, n in attempts(service, job_id).items() if n == 2))]
    assert len(logs) == 5
    assert [(r["attempt"], r["status"], r["error"]) for r in retried] == [
        ("1", "failed", "OSError: injected: a disk hiccup"), ("2", "done", "")]
    assert all(float(r["started_at"]) <= float(r["finished_at"]) and r["worker"] for r in retried)
    with open(tmp_path / "report" / "error.csv", newline="") as f:
        assert [(r["tile_id"], r["attempt"]) for r in csv.DictReader(f)] == [(retried[0]["tile_id"], "1")]
    performance = (tmp_path / "report" / "performance.txt").read_text()
    assert "attempts       5 for 4 tiles: 1 retry, 1 failed or lost" in performance


def test_a_tile_that_keeps_failing_fails_the_job_after_bounded_attempts(
    make: Callable[..., JobService], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> np.ndarray:
        raise OSError("injected: always")

    monkeypatch.setattr(kernels, "add_block", broken)
    service = make()
    job_id = service.submit(ADD)["job_id"]
    doc = ended(service, job_id)
    assert doc["status"] == "FAILED"
    assert doc["error"]["code"] == "tile_failed" and "3 times" in doc["error"]["message"]
    assert max(attempts(service, job_id).values()) == 3


def test_bad_input_fails_the_job_at_once_without_retries(make: Callable[..., JobService], tmp_path: Path) -> None:
    bad = np.ones((8, 8))
    bad[5, 6] = np.nan
    buf = io.BytesIO()
    np.save(buf, bad)
    service = make(workers=2)  # in the pool
    ticket = service.create_upload({"filename": "bad.npy"})
    service.receive_upload(ticket["upload_id"], "bad.npy", buf.getvalue())
    spec = {**ADD, "a": ticket["use_as"]}
    job_id = service.submit(spec)["job_id"]
    doc = ended(service, job_id)
    assert doc["status"] == "FAILED" and doc["error"]["field"] == "a"
    assert max(attempts(service, job_id).values()) == 1


def test_a_small_job_is_not_starved_by_a_big_one_ahead_of_it(make: Callable[..., JobService]) -> None:
    service = make()
    big = service.submit({**ADD, "a": {"shape": [64, 64]}, "b": {"shape": [64, 64]}})["job_id"]  # 256 tiles
    small = service.submit(ADD)["job_id"]
    assert ended(service, small)["status"] == "SUCCEEDED"
    big_doc = service.get(big)
    # Still being planned (plans run beside the dispatcher, so a busy machine may not have
    # finished the big one's yet) or running its tiles: either way, not finished first.
    assert big_doc["status"] in ("QUEUED", "RUNNING"), "the small job waited for the big one"
    assert ended(service, big)["status"] == "SUCCEEDED"

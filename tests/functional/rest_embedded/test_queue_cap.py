"""The embedded backend's caps: the owner's cap on jobs at once bounds the RUNNING ones (its
scheduler starts no more), while the persistent queue takes up to TILEFAN_MAX_QUEUED_JOBS;
past that, a 429 that names the setting and carries Retry-After."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice.test import Client

from tests.functional.rest_client import post_job, rest_app, wait_job
from tests.functional.rest_embedded.support import scheduler_of
from tilefan import bootstrap
from tilefan.bootstrap import Config
from tilefan.entrypoints.http.http_errors import RETRY_AFTER_S
from tilefan.service.jobs import JobService

# Several tiles each, so a job stays RUNNING long enough to be seen doing so.
ATOMS = {"kind": "atoms", "grid": [16, 16, 8], "atoms": {"count": 200, "seed": 1}, "tile": 4}


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[tuple[JobService, Client]]:
    config = Config(home=tmp_path / "home", workers=2)
    config = dataclasses.replace(config, limits=dataclasses.replace(config.limits, max_concurrent_jobs=1,
                                                                    max_queued_jobs=6))
    service = bootstrap.build_service(config)
    try:
        with Client(rest_app(service)) as client:
            yield service, client
    finally:
        scheduler_of(service).stop()


def test_the_cap_bounds_running_jobs_while_the_queue_takes_more(capped: tuple[JobService, Client]) -> None:
    service, client = capped
    most_running = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            records, _ = service.ports.jobs.list_jobs(100)
            most_running[0] = max(most_running[0], sum(r.status.value == "RUNNING" for r in records))
            stop.wait(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        answers = [post_job(client, ATOMS) for _ in range(6)]
        assert [a.status_code for a in answers] == [202] * 6  # over the cap of 1, into the queue
        docs = [wait_job(client, a.json_body["job_id"], timeout=120) for a in answers]
    finally:
        stop.set()
        watcher.join()
    assert {d["status"] for d in docs} == {"SUCCEEDED"}
    assert most_running[0] == 1  # one ran at a time: the owner's cap


def test_past_the_queue_a_429_names_the_setting_and_says_when_to_retry(capped: tuple[JobService, Client]) -> None:
    service, client = capped
    scheduler_of(service).stop()  # nothing leaves the queue meanwhile
    for _ in range(6):
        assert post_job(client, ATOMS).status_code == 202
    refused = post_job(client, ATOMS)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == str(RETRY_AFTER_S)
    error = refused.json_body["error"]
    assert error["code"] == "too_many_jobs" and "TILEFAN_MAX_QUEUED_JOBS" in error["message"]

"""DELETE cancels a running job: it becomes CANCELLED, tiles in flight count for nothing
and no output (or partial one) is left; a DELETE racing the reducer's commit has one
outcome for each moment it can land at; a finished job cannot be cancelled; an unknown
job is 404.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from chalice import Chalice
from chalice.test import Client

from tests.functional.rest_client import submit, wait_job
from tests.functional.rest_embedded.support import (
    MakeService,
    files_under,
    job_threads,
    scheduler_of,
)
from tilefan.domain.records import Status
from tilefan.service.jobs import JobService

# --------------------------------------------------------------------------- cancel


def outputs(job_dir: Path, name: str) -> list[str]:
    """The output ``name`` in a job's directory, or its hidden partial file."""
    return [f for f in files_under(job_dir) if f == name or (f.startswith(f".{name}.") and f.endswith(".partial"))]


# Eight tiles; the second is held at its start (see ``held``) until the test releases it.
ATOMS = {"kind": "atoms", "grid": 16, "atoms": {"count": 50, "seed": 1}, "tile": 8}


@dataclass
class Held:
    """A service whose runner stops at the start of tile 1 (tile 0 done) until ``release``."""

    service: JobService
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def held(make_service: MakeService, monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    # One worker: the runner's own thread runs the tiles, through this service's job store.
    held = Held(make_service(workers=1, kernel="numpy"))
    jobs = held.service.ports.jobs
    real_tile_started = jobs.tile_started

    def tile_started(job_id: str, tile_id: int, *rest: Any) -> int | None:
        attempt = real_tile_started(job_id, tile_id, *rest)
        if tile_id == 1:
            held.started.set()
            assert held.release.wait(30)
        return attempt

    monkeypatch.setattr(jobs, "tile_started", tile_started)
    yield held
    held.release.set()  # before make_service's teardown waits for the runner


def test_delete_cancels_a_running_job_and_leaves_no_output(held: Held, home: Path, app: Chalice) -> None:
    with Client(app) as client:
        job_id = submit(client, {**ATOMS, "field": True})
        assert held.started.wait(30), "tile 1 never started"
        out_dir = home / "blobs" / "jobs" / job_id
        running = client.http.get(f"/jobs/{job_id}").json_body
        assert running["status"] == "RUNNING"
        assert (running["progress"]["tiles_done"], running["progress"]["tiles_total"]) == (1, 8)
        # The field is being built in a hidden partial file next to the destination.
        assert outputs(out_dir, "field.npy") == [f".field.npy.{job_id}.partial"]
        response = client.http.delete(f"/jobs/{job_id}")
        assert response.status_code == 200, response.json_body
        assert response.json_body["status"] == "CANCELLED"
        assert response.json_body["progress"]["tiles_done"] == 1
        held.release.set()
        scheduler_of(held.service).wait(job_id, 60)
        assert job_threads(job_id) == [], "the runner thread did not stop"
        doc = client.http.get(f"/jobs/{job_id}").json_body
        assert doc["status"] == "CANCELLED"
        assert doc["result"] is None
        assert doc["progress"]["tiles_done"] == 1
        assert "finished_at" in doc["timings"]
        left = [f for f in files_under(out_dir) if "field.npy" in f]
        assert left == [], "no output, no partial file and no claim on the path may be left"
        again = client.http.delete(f"/jobs/{job_id}")
        assert again.status_code == 409
        assert again.json_body["error"]["code"] == "conflict"


def test_tiles_in_flight_at_cancel_are_not_counted(held: Held, app: Chalice) -> None:
    # Scheduler.cancel: tiles already computing finish but are not counted.
    with Client(app) as client:
        job_id = submit(client, ATOMS)
        assert held.started.wait(30), "tile 1 never started"
        response = client.http.delete(f"/jobs/{job_id}")
        assert response.status_code == 200, response.json_body
        at_cancel = response.json_body["progress"]
        assert at_cancel["tiles_done"] == 1
        held.release.set()  # tile 1, in flight at the DELETE, now computes to its end
        scheduler_of(held.service).wait(job_id, 60)
        assert job_threads(job_id) == [], "the runner thread did not stop"
        doc = client.http.get(f"/jobs/{job_id}").json_body
        assert doc["status"] == "CANCELLED"
        assert doc["progress"]["tiles_done"] == at_cancel["tiles_done"], (
            f"a cancelled job kept counting tiles: {at_cancel['tiles_done']} at DELETE, "
            f"{doc['progress']['tiles_done']} after the runner stopped"
        )
        assert doc["progress"]["units_done"] == at_cancel["units_done"]
        # Tile 1 ran but was never recorded done; no later tile started at all.
        tiles = client.http.get(f"/jobs/{job_id}/report").json_body["tiles"]
        assert {t["tile_id"]: t["status"] for t in tiles} == {0: "done", 1: "cancelled"}


# Where, in the reducer's publishing of the output, a DELETE lands (see the test below).
COMMIT_MOMENTS = ["before-rename", "after-rename", "after-succeeded"]


@pytest.mark.parametrize("moment", COMMIT_MOMENTS)
def test_delete_racing_the_reducers_commit_never_leaves_a_cancelled_job_with_output(
    make_service: MakeService, client: Client, home: Path, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    """A DELETE that lands while the reducer publishes the output. The reducer's own calls
    are wrapped to send it at one exact moment: just before the output file is renamed
    into place, just after, or just after the job is recorded SUCCEEDED. Until the job
    is SUCCEEDED the DELETE wins, and the output, renamed or not, is gone (CANCELLED,
    nothing on disk); once it is, the DELETE loses (409, SUCCEEDED with its output)."""
    # One worker: with a pool the reduce runs in a pool process, over stores of its own;
    # here it runs in this process, through the stores patched below.
    service = make_service(workers=1)
    blobs, jobs = service.ports.blobs, service.ports.jobs
    real_commit, real_transition = blobs.commit_array, jobs.transition
    deletes: list[Any] = []
    on_disk_at_delete: list[list[str]] = []
    posted = threading.Event()

    def delete(job_id: str) -> None:
        # Wait for the POST to be answered: the test client serves one request at a time.
        assert posted.wait(30)
        on_disk_at_delete.append(outputs(home / "blobs" / "jobs" / job_id, "out.npy"))
        deletes.append(client.http.delete(f"/jobs/{job_id}"))

    def commit_with_a_delete_arriving(key: str, job_id: str) -> str:
        if moment == "before-rename":
            delete(job_id)
        where = real_commit(key, job_id)
        if moment == "after-rename":
            delete(job_id)
        return where

    def transition_with_a_delete_arriving(job_id: str, status: Status, **changes: Any) -> bool:
        changed = real_transition(job_id, status, **changes)
        if status is Status.SUCCEEDED:
            assert changed, "nothing else may end the job before the DELETE"
            delete(job_id)
        return changed

    # The runner reduces through these same store objects (the tiles write regions, and
    # record no SUCCEEDED, so they are not affected).
    monkeypatch.setattr(blobs, "commit_array", commit_with_a_delete_arriving)
    if moment == "after-succeeded":
        monkeypatch.setattr(jobs, "transition", transition_with_a_delete_arriving)
    spec = {"kind": "add", "a": {"shape": [40, 40]}, "b": {"shape": [40, 40]}, "tile": 20}
    job_id = submit(client, spec)
    out_dir = home / "blobs" / "jobs" / job_id
    posted.set()
    # The main thread sends no request until the runner is done, so the DELETE from
    # inside the reducer is the only request in flight.
    scheduler_of(service).wait(job_id, 60)
    assert job_threads(job_id) == []
    [response] = deletes
    doc = client.http.get(f"/jobs/{job_id}").json_body
    # The moment was the one claimed: only the hidden partial file, or the output itself.
    [seen] = on_disk_at_delete
    if moment == "before-rename":
        assert len(seen) == 1 and seen[0].startswith(".out.npy.") and seen[0].endswith(".partial"), seen
    else:
        assert seen == ["out.npy"]
    if moment == "after-succeeded":
        assert response.status_code == 409, response.json_body
        assert response.json_body["error"]["code"] == "conflict"
        assert doc["status"] == "SUCCEEDED"
        assert doc["result"]["output"] == str((out_dir / "out.npy").resolve())
        assert outputs(out_dir, "out.npy") == ["out.npy"]
    else:
        assert response.status_code == 200, response.json_body
        assert response.json_body["status"] == "CANCELLED"
        assert doc["status"] == "CANCELLED"
        assert doc["result"] is None
        published = outputs(out_dir, "out.npy")
        assert published == [], f"job is CANCELLED but its output was published: {published}"


def test_delete_of_a_finished_job_is_a_conflict(client: Client) -> None:
    doc = wait_job(client, submit(client, {"kind": "add", "a": {"shape": [8, 8]}, "b": {"shape": [8, 8]}}))
    assert doc["status"] == "SUCCEEDED"
    response = client.http.delete(f"/jobs/{doc['job_id']}")
    assert response.status_code == 409
    assert response.json_body["error"]["code"] == "conflict"
    assert "SUCCEEDED" in response.json_body["error"]["message"]
    after = client.http.get(f"/jobs/{doc['job_id']}").json_body
    assert after["status"] == "SUCCEEDED"
    assert Path(after["result"]["output"]).exists()


@pytest.mark.parametrize("method, path", [("get", "/jobs/{}"), ("delete", "/jobs/{}"), ("get", "/jobs/{}/report")])
def test_unknown_job_is_404(client: Client, method: str, path: str) -> None:
    response = getattr(client.http, method)(path.format("0123456789abcdef"))
    assert response.status_code == 404
    error = response.json_body["error"]
    assert error["code"] == "job_not_found"
    assert "0123456789abcdef" in error["message"]

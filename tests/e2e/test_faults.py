"""Fault injection against a real ``tilefan serve``: kill -9 of the server and of a pool
worker, SIGTERM mid-job, and 200 jobs from 25 concurrent clients.

Each test starts its own server on its own home. A job is "mid-run" when the server's
record says some but not all tiles are done; the assertions then rest on what the
restarted server and the job records say, and on which processes exist.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.serve_process import TILEFAN, ServeProcess
from tests.helpers import random_pair, wait_until

# Big enough that the job is still running when the fault lands (64 tiles of a
# 1600x1600 matmul on two single-threaded workers), small enough for a fast suite.
N = 1600
SLOW = {"kind": "matmul", "a": {"shape": [N, N]}, "b": {"shape": [N, N]}, "seed": 5, "tile": 200, "verify": True}
TINY = {"kind": "add", "a": {"shape": [8, 8]}, "b": {"shape": [8, 8]}, "tile": 4}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServeProcess]]:
    """Servers started by a test (all on one home); every one is killed at the end."""
    started: list[ServeProcess] = []
    yield started
    for s in started:
        s.close()


def start(servers: list[ServeProcess], tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> ServeProcess:
    assert TILEFAN.exists()
    server = ServeProcess(tmp_path / "home", tmp_path / "server.log", extra=extra, env=env or {})
    servers.append(server)
    return server


@pytest.fixture(scope="module")
def expected() -> np.ndarray:
    a, b = random_pair(5, "float64", (N, N), (N, N))
    return a @ b


def submit_and_catch_mid_run(server: ServeProcess) -> str:
    status, doc = server.request("POST", "/jobs", SLOW)
    assert status == 202, doc
    job_id: str = doc["job_id"]

    def mid_run() -> bool:
        doc = server.job(job_id)
        assert doc["status"] in ("QUEUED", "RUNNING"), f"the job ended before the fault: {doc['status']}"
        return 0 < doc["progress"]["tiles_done"] < doc["progress"]["tiles_total"]

    wait_until(mid_run, "the job to be part-way through", 30.0, interval=0.01)
    return job_id


def stop(server: ServeProcess, sig: signal.Signals) -> int:
    """Send ``sig`` and wait until the server and every process it started are gone; its exit code."""
    server.signal(sig)
    code = server.wait_exit()
    server.wait_all_gone()  # no orphaned fork server, resource tracker or worker
    return code


def assert_right_answer(doc: dict[str, Any], expected: np.ndarray) -> None:
    assert doc["status"] == "SUCCEEDED", doc["error"]
    assert doc["progress"]["tiles_done"] == doc["progress"]["tiles_total"] == 64
    assert doc["result"]["verification"]["passed"] is True
    np.testing.assert_allclose(np.load(doc["result"]["output"]), expected, rtol=1e-12, atol=1e-9)


def test_kill_9_of_the_server_mid_job_then_restart_finishes_the_job(
    servers: list[ServeProcess], tmp_path: Path, expected: np.ndarray
) -> None:
    first = start(servers, tmp_path)
    job_id = submit_and_catch_mid_run(first)
    assert len(first.pids()) >= 3, "expected the server, its fork server and pool workers"
    stop(first, signal.SIGKILL)
    done_before = {t["tile_id"] for t in _report(first.home, job_id) if t["status"] == "done"}
    assert done_before, "the kill landed before any tile was recorded"

    second = start(servers, tmp_path)
    doc = second.wait_ended(job_id)
    assert_right_answer(doc, expected)
    # Tiles recorded done before the crash were not run again.
    tiles = {t["tile_id"]: t for t in second.request("GET", f"/jobs/{job_id}/report")[1]["tiles"]}
    assert all(tiles[t]["attempts"] == 1 for t in done_before)
    assert not list(tmp_path.rglob("*.partial")), "the resumed job left its partial output behind"


def test_tilefan_resume_finishes_a_job_a_killed_server_left(
    servers: list[ServeProcess], tmp_path: Path, expected: np.ndarray
) -> None:
    server = start(servers, tmp_path)
    job_id = submit_and_catch_mid_run(server)
    stop(server, signal.SIGKILL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILEFAN_")}
    env.update({"TILEFAN_HOME": str(server.home), "TILEFAN_WORKERS": "2", "TILEFAN_KERNEL": "numpy"})
    done = subprocess.run([str(TILEFAN), "resume", job_id, "--json"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"resuming job {job_id} (RUNNING" in done.stderr
    assert_right_answer(json.loads(done.stdout), expected)


def test_kill_9_of_one_pool_worker_retries_its_tile(
    servers: list[ServeProcess], tmp_path: Path, expected: np.ndarray
) -> None:
    server = start(servers, tmp_path)

    def busy_worker(job_id: str) -> int | None:
        # Kill a worker that holds a tile right now: an idle one would leave nothing to retry.
        pool = set(server.pool_workers())
        for row in server.request("GET", f"/jobs/{job_id}/report")[1]["tiles"]:
            worker = row.get("worker") or ""
            if row["status"] == "running" and worker.startswith("local-") and int(worker[6:]) in pool:
                return int(worker[6:])
        return None

    killed: list[dict[str, Any]] = []
    for _ in range(3):
        job_id = submit_and_catch_mid_run(server)
        victim = wait_until(partial(busy_worker, job_id), "a pool worker running a tile", 10.0, interval=0.01)
        signal_pid(victim, signal.SIGKILL)
        doc = server.wait_ended(job_id)
        assert_right_answer(doc, expected)
        report = server.request("GET", f"/jobs/{job_id}/report")[1]
        killed = [a for a in report["attempts"] if a["worker"] == f"local-{victim}" and a["status"] == "failed"]
        if killed:
            break
        # Tiles take milliseconds here: this kill landed after the worker's tile ended and
        # before it took another, so nothing needed a retry. Try again with a new job.
    assert killed, "three kills in a row found their worker between tiles"
    assert max(t["attempts"] for t in report["tiles"]) >= 2, "no tile shows a second attempt"
    # The killed worker's attempt is in the history, failed, and its tile ran again.
    assert all(a["error"] == "its worker died" for a in killed)
    retried = {a["tile_id"] for a in killed}
    assert all(any(a["tile_id"] == t and a["status"] == "done" and a["attempt"] > 1 for a in report["attempts"])
               for t in retried)
    with urllib.request.urlopen(f"{server.base}/jobs/{job_id}/report/logs.csv", timeout=10) as resp:
        assert len(resp.read().decode().splitlines()) == 1 + len(report["attempts"])  # a header, a row per attempt
    assert victim not in server.pids()


def test_sigterm_mid_job_leaves_it_resumable_and_a_restart_resumes_it(
    servers: list[ServeProcess], tmp_path: Path, expected: np.ndarray
) -> None:
    first = start(servers, tmp_path)
    job_id = submit_and_catch_mid_run(first)
    assert stop(first, signal.SIGTERM) == 0
    assert _status(first.home, job_id) == "RUNNING", "a graceful stop must leave the job resumable"

    second = start(servers, tmp_path)
    assert_right_answer(second.wait_ended(job_id), expected)


def test_200_jobs_from_25_clients_all_accepted_and_all_succeed(servers: list[ServeProcess], tmp_path: Path) -> None:
    # All 200 are the home's one owner's, queued at once, on a default server: its queue
    # takes them (TILEFAN_MAX_QUEUED_JOBS) while the owner's cap bounds the running ones.
    server = start(servers, tmp_path)
    most = [0]
    stop = threading.Event()

    def count_processes() -> None:
        while not stop.is_set():
            most[0] = max(most[0], len(server.pids()))
            stop.wait(0.02)

    counter = threading.Thread(target=count_processes)
    counter.start()
    try:
        with cf.ThreadPoolExecutor(25) as clients:
            answers = list(clients.map(lambda _: server.request("POST", "/jobs", TINY), range(200)))
        assert [status for status, _ in answers] == [202] * 200, {s for s, _ in answers}
        docs = [server.wait_ended(doc["job_id"]) for _, doc in answers]
    finally:
        stop.set()
        counter.join()
    assert {d["status"] for d in docs} == {"SUCCEEDED"}, [d["error"] for d in docs if d["error"]][:3]
    # The server, its fork server, the resource tracker and one pool of two workers.
    assert most[0] <= 5, f"{most[0]} processes for 2 workers"


def signal_pid(pid: int, sig: signal.Signals) -> None:
    os.kill(pid, sig)


def _status(home: Path, job_id: str) -> str:
    import sqlite3

    with sqlite3.connect(home / "jobs.sqlite3") as db:
        row = db.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    return str(row[0])


def _report(home: Path, job_id: str) -> list[dict[str, Any]]:
    import sqlite3

    with sqlite3.connect(home / "jobs.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM tiles WHERE job_id = ?", (job_id,))]

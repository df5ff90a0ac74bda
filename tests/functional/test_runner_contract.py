"""One contract for the job runners, run on both: the embedded ``Scheduler`` (tiles in
this process, SQLite and files in a temp dir) and the ``StepFunctionsJobRunner`` (the real
state machine in moto, its Lambda functions in-process, S3 and DynamoDB).

``start`` runs a recorded job to a terminal status the job record describes (the right
answer, or the error that ended it); ``cancel`` of a running job makes it CANCELLED, the
tiles in flight then count for nothing and no output is left; ``cancel`` of a finished job
is refused (False, and a conflict for the REST API) and changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.functional.aws_stack import aws_stack
from tests.helpers import defines, random_pair, wait_until
from tilefan import bootstrap
from tilefan.domain.records import JobRecord, Status
from tilefan.errors import ConflictError
from tilefan.pipeline.ports import QueuePlace, Serving
from tilefan.pipeline.submit import submit_job
from tilefan.runtimes.embedded.scheduler import Scheduler
from tilefan.service.jobs import JobService

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")

ADD = {"kind": "add", "a": {"shape": [40, 30]}, "b": {"shape": [40, 30]}, "seed": 4, "dtype": "float32",
       "tile": 20}


@dataclass
class RunnerCase:
    """A backend's job service (its ports and runner), and how to hold and watch its tiles."""

    service: JobService
    hold_tiles: Callable[[threading.Event, threading.Event], None]  # (started, release): block each tile
    settle: Callable[[str], None]  # wait until nothing of the job's run is still going on

    def submit(self, raw: dict[str, Any]) -> str:
        """Record a job and start it with the runner under test; its id."""
        record = submit_job(self.service.ports, raw)
        self.service.runner.start(record.job_id)
        return record.job_id

    def record(self, job_id: str) -> JobRecord:
        return self.service.ports.jobs.get_job(job_id)

    def wait_terminal(self, job_id: str) -> JobRecord:
        """The job's record once it has ended and its run is over."""
        wait_until(lambda: self.record(job_id).status.terminal, f"job {job_id} to end")
        self.settle(job_id)
        return self.record(job_id)


def _local(tmp_path: Path) -> Iterator[RunnerCase]:
    # One worker: tiles run in the runner's own thread, through the stores built here.
    service = bootstrap.build_service(bootstrap.Config(home=tmp_path / "home", workers=1, kernel="numpy"))
    runner = service.runner
    assert isinstance(runner, Scheduler)
    jobs = service.ports.jobs

    def hold_tiles(started: threading.Event, release: threading.Event) -> None:
        real_tile_started = jobs.tile_started

        def tile_started(job_id: str, tile_id: int, worker: str, route: str, at: float) -> int | None:
            attempt = real_tile_started(job_id, tile_id, worker, route, at)
            started.set()
            assert release.wait(30)
            return attempt

        jobs.tile_started = tile_started  # type: ignore[method-assign]

    def settle(job_id: str) -> None:
        runner.wait(job_id, 60)

    yield RunnerCase(service, hold_tiles, settle)
    runner.stop()


def _step_functions() -> Iterator[RunnerCase]:
    with aws_stack() as stack:
        service = bootstrap.build_service()

        def hold_tiles(started: threading.Event, release: threading.Event) -> None:
            def hold(name: str, event: dict[str, Any]) -> None:
                if name == "tile":
                    started.set()
                    assert release.wait(30)

            stack.faults.append(hold)

        def settle(job_id: str) -> None:
            stack.wait_execution(job_id)
            stack.wait_all_returned()

        yield RunnerCase(service, hold_tiles, settle)


@pytest.fixture(params=["local", "step-functions"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunnerCase]:
    yield from (_local(tmp_path) if request.param == "local" else _step_functions())


def test_the_service_declares_exactly_the_capabilities_its_runner_has(case: RunnerCase) -> None:
    # The embedded scheduler queues jobs and dispatches in the serving process; Step
    # Functions does neither, and its service must not pretend it does.
    runner = case.service.runner
    for wired, protocol in ((case.service.places, QueuePlace), (case.service.serving, Serving)):
        assert wired is (runner if defines(runner, protocol) else None), protocol.__name__
    assert (case.service.serving is not None) is isinstance(runner, Scheduler)


def test_a_started_job_runs_to_succeeded_with_the_right_answer(case: RunnerCase) -> None:
    job_id = case.submit(ADD)
    record = case.wait_terminal(job_id)
    assert record.status is Status.SUCCEEDED, record.error
    assert (record.tiles_done, record.tiles_total) == (4, 4)
    assert record.result is not None and record.error is None
    a, b = random_pair(4, "float32", (40, 30), (40, 30))
    np.testing.assert_array_equal(case.service.ports.blobs.read_array(record.result["output"]), a + b)


def test_a_job_whose_tile_fails_ends_failed_with_the_tiles_error(case: RunnerCase) -> None:
    a = np.ones((30, 30))
    a[25, 4] = np.nan
    case.service.ports.blobs.write_array("uploads/contract/A.npy", a)
    job_id = case.submit({"kind": "matmul", "a": {"file": "uploads/contract/A.npy"}, "b": {"shape": [30, 30]},
                          "tile": 15})
    record = case.wait_terminal(job_id)
    assert record.status is Status.FAILED
    assert record.result is None and record.error is not None
    assert (record.error["code"], record.error["field"]) == ("invalid_input", "a"), record.error
    assert "row 25, column 4" in record.error["message"]


def test_cancel_of_a_running_job_makes_it_cancelled_and_its_tiles_in_flight_count_for_nothing(
    case: RunnerCase,
) -> None:
    started, release = threading.Event(), threading.Event()
    case.hold_tiles(started, release)
    try:
        job_id = case.submit(ADD)
        assert started.wait(30), "no tile started"
        assert case.record(job_id).status is Status.RUNNING
        assert case.service.runner.cancel(job_id) is True
        assert case.record(job_id).status is Status.CANCELLED
    finally:
        release.set()
    # Once every tile that was in flight has run to its end, none of them has counted.
    case.settle(job_id)
    record = case.record(job_id)
    assert record.status is Status.CANCELLED
    assert (record.tiles_done, record.units_done, record.result) == (0, 0, None)
    assert "finished_at" in record.timings
    assert case.service.runner.cancel(job_id) is False


def test_cancel_of_a_finished_job_is_refused_and_changes_nothing(case: RunnerCase) -> None:
    job_id = case.submit(ADD)
    finished = case.wait_terminal(job_id)
    assert finished.status is Status.SUCCEEDED, finished.error
    assert case.service.runner.cancel(job_id) is False
    with pytest.raises(ConflictError, match="SUCCEEDED"):  # the REST API's 409
        case.service.cancel(job_id)
    after = case.record(job_id)
    assert (after.status, after.result, after.timings) == (Status.SUCCEEDED, finished.result, finished.timings)
    assert finished.result is not None
    case.service.ports.blobs.read_array(finished.result["output"])  # still there

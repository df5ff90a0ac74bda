"""The state machine's Lambda handlers: event checks, the plan output, caught-error parsing,
and one pass through tile and mark_failed over in-memory ports (no I/O, no AWS)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest

from chalicelib import lambdas
from tilefan.bootstrap import AwsSettings
from tilefan.domain.records import JobRecord, Status, TileResult
from tilefan.errors import (
    ConflictError,
    IncompleteJobError,
    InvalidSpecError,
    JobNotFoundError,
    StoreError,
    TileFailedError,
    TilefanError,
)
from tilefan.pipeline.error_codec import MAX_ERROR_MESSAGE, error_body, error_cause, error_from_state, http_error
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.submit import submit_job

# A handler that fails on its event flushes no metrics; Powertools warns about that.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")

SETTINGS = AwsSettings(
    bucket="tilefan-test-jobs", table="tilefan-test", state_machine_arn="", region="us-east-1",
    distributed_threshold=4,
)
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:tilefan:job1"


@dataclass
class Context:
    aws_request_id: str = "req-1"
    function_name: str = "tilefan-dev-tile"


# --------------------------------------------------------------------------- in-memory ports


class Untouchable:
    """A port that fails the test if a handler reaches it (event checks come first)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the handler touched the ports ({name}) before checking its event")


class MemoryBlobs:
    def __init__(self) -> None:
        self.regions: dict[str, list[tuple[Any, np.ndarray]]] = {}
        self.discarded: list[str] = []
        self.json: dict[str, Any] = {}

    def array_info(self, key: str) -> Any:
        raise AssertionError("random inputs have no file to inspect")

    def put_json(self, key: str, value: Any) -> None:
        self.json[key] = value

    def create_array(self, key: str, shape: Any, dtype: str, job_id: str) -> None:
        self.regions[key] = []

    def write_region(self, key: str, job_id: str, region: Any, block: np.ndarray) -> None:
        self.regions.setdefault(key, []).append((region, block))

    def discard_array(self, key: str, job_id: str) -> None:
        self.discarded.append(key)


class MemoryJobs:
    def __init__(self) -> None:
        self.jobs: dict[str, JobRecord] = {}
        self.done: dict[tuple[str, int], TileResult] = {}

    def create_job(self, record: JobRecord, max_active: int | None = None) -> None:
        self.jobs[record.job_id] = record

    def get_job(self, job_id: str, owner: str | None = None) -> JobRecord:
        if job_id not in self.jobs or owner not in (None, self.jobs[job_id].owner):
            raise JobNotFoundError(job_id)
        return self.jobs[job_id]

    def transition(self, job_id: str, new: Status, **fields: Any) -> bool:
        record = self.get_job(job_id)
        if record.status.terminal:
            return False
        self.jobs[job_id] = replace(record, status=new, error=fields.get("error") or record.error)
        return True

    def set_plan(self, job_id: str, tiles_total: int, units_total: int) -> None:
        self.jobs[job_id] = replace(self.get_job(job_id), tiles_total=tiles_total, units_total=units_total)

    def tile_started(self, job_id: str, tile_id: int, worker: str, route: str, at: float) -> int | None:
        return None

    def record_tile_done(self, job_id: str, result: TileResult, attempt: int | None = None) -> bool:
        if (job_id, result.tile_id) in self.done:
            return False
        self.done[(job_id, result.tile_id)] = result
        return True


@pytest.fixture
def ports() -> Iterator[Ports]:
    made = Ports(blobs=MemoryBlobs(), jobs=MemoryJobs())  # type: ignore[arg-type]
    lambdas.set_ports(made, SETTINGS)
    yield made
    lambdas.set_ports(None)


@pytest.fixture
def untouchable() -> Iterator[None]:
    lambdas.set_ports(Ports(blobs=Untouchable(), jobs=Untouchable()), SETTINGS)  # type: ignore[arg-type]
    yield
    lambdas.set_ports(None)


def running_add_job(ports: Ports, job_id: str = "job1") -> JobRecord:
    record = submit_job(ports, {"kind": "add", "a": {"shape": "8x8"}, "b": {"shape": "8x8"}, "tile": 4},
                              job_id=job_id)
    ports.jobs.transition(job_id, Status.RUNNING)
    return record


def emitted_metrics(out: str) -> dict[str, Any]:
    """Metric name → value from the EMF lines Powertools printed."""
    found: dict[str, Any] = {}
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            doc = json.loads(line)
            for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = doc[m["Name"]]
                found[m["Name"]] = value[0] if isinstance(value, list) and len(value) == 1 else value
    return found


# --------------------------------------------------------------------------- event checks

Handler = Callable[[Any, Any], dict[str, Any]]
GOOD = {"job_id": "job1", "execution_id": EXECUTION}
GOOD_ERROR = {"Error": "TileFailedError", "Cause": "{}"}

MALFORMED: list[tuple[str, Handler, Any, str]] = [
    ("plan: not an object", lambdas.plan_handler, ["job1"], "event"),
    ("plan: no job_id", lambdas.plan_handler, {"execution_id": EXECUTION}, "job_id"),
    ("plan: empty job_id", lambdas.plan_handler, {"job_id": "", "execution_id": EXECUTION}, "job_id"),
    ("plan: job_id not a string", lambdas.plan_handler, {"job_id": 7, "execution_id": EXECUTION}, "job_id"),
    ("plan: no execution_id", lambdas.plan_handler, {"job_id": "job1"}, "execution_id"),
    ("tile: no tile_id", lambdas.tile_handler, GOOD, "tile_id"),
    ("tile: negative tile_id", lambdas.tile_handler, {**GOOD, "tile_id": -1}, "tile_id"),
    ("tile: tile_id a string", lambdas.tile_handler, {**GOOD, "tile_id": "3"}, "tile_id"),
    ("tile: tile_id a float", lambdas.tile_handler, {**GOOD, "tile_id": 3.0}, "tile_id"),
    ("tile: tile_id a bool", lambdas.tile_handler, {**GOOD, "tile_id": True}, "tile_id"),
    ("tile: no job_id", lambdas.tile_handler, {"execution_id": EXECUTION, "tile_id": 0}, "job_id"),
    ("reduce: no execution_id", lambdas.reduce_handler, {"job_id": "job1"}, "execution_id"),
    ("reduce: None", lambdas.reduce_handler, None, "event"),
    ("mark_failed: no error", lambdas.mark_failed_handler, GOOD, "error"),
    ("mark_failed: error a string", lambdas.mark_failed_handler, {**GOOD, "error": "boom"}, "error"),
    ("mark_failed: no Error", lambdas.mark_failed_handler, {**GOOD, "error": {"Cause": "x"}}, "error.Error"),
    ("mark_failed: Cause not a string", lambdas.mark_failed_handler,
     {**GOOD, "error": {"Error": "X", "Cause": {"a": 1}}}, "error.Cause"),
    ("mark_failed: no job_id", lambdas.mark_failed_handler, {"execution_id": EXECUTION, "error": GOOD_ERROR},
     "job_id"),
]


@pytest.mark.parametrize(("handler", "event", "field"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_event_raises_invalid_spec_naming_the_field(
    untouchable: None, handler: Handler, event: Any, field: str
) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        handler(event, Context())
    assert caught.value.field == field
    # The state machine matches this name to skip retries (stepfunctions/tilefan.asl.json).
    assert type(caught.value).__name__ == "InvalidSpecError"


def test_set_ports_none_goes_back_to_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []
    sentinel = Ports(blobs=Untouchable(), jobs=Untouchable())  # type: ignore[arg-type]
    monkeypatch.setattr(lambdas.bootstrap, "aws_settings", lambda: SETTINGS)
    monkeypatch.setattr(lambdas.bootstrap, "build_aws_ports", lambda s: built.append(s) or sentinel)
    lambdas.set_ports(None)
    try:
        assert lambdas.get_ports() is sentinel
        assert lambdas.get_ports() is sentinel
        assert built == [SETTINGS]  # built once, then kept for the sandbox's life
    finally:
        lambdas.set_ports(None)


# --------------------------------------------------------------------------- plan output


def items(n: int, spot: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [{"job_id": "job1", "tile_id": t, "route": "spot" if t in spot else "lambda"} for t in range(n)]


def test_plan_output_is_inline_up_to_the_threshold() -> None:
    out = lambdas.plan_output("job1", EXECUTION, items(4, spot=(2,)), SETTINGS)
    assert out == {
        "job_id": "job1",
        "execution_id": EXECUTION,
        "tiles_total": 4,
        "mode": "inline",
        "tiles": items(4, spot=(2,)),
        "items": {"bucket": "tilefan-test-jobs", "key": "jobs/job1/items.json"},
        "spot_tiles": 1,
        "spot": {"heartbeat_seconds": 60, "timeout_seconds": 21_600},
        "batch_items": 1,
    }


def test_plan_output_is_distributed_above_the_threshold_and_carries_no_tiles() -> None:
    out = lambdas.plan_output("job1", EXECUTION, items(5), SETTINGS)
    assert out["mode"] == "distributed"
    assert out["tiles"] == []
    assert out["tiles_total"] == 5
    assert out["items"] == {"bucket": "tilefan-test-jobs", "key": "jobs/job1/items.json"}


def test_plan_handler_plans_and_returns_the_contract(ports: Ports) -> None:
    running = running_add_job(ports)
    ports.jobs.jobs["job1"] = replace(running, status=Status.QUEUED)  # type: ignore[attr-defined]
    out = lambdas.plan_handler(GOOD, Context())
    assert out["mode"] == "inline" and out["tiles_total"] == 4
    assert [t["tile_id"] for t in out["tiles"]] == [0, 1, 2, 3]
    assert ports.blobs.json["jobs/job1/items.json"] == out["tiles"]  # type: ignore[attr-defined]
    assert ports.jobs.get_job("job1").status is Status.RUNNING


# --------------------------------------------------------------------------- caught errors


def lambda_cause(error_type: str, message: str) -> str:
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": ["  File ..."]})


def state_body(error: dict[str, str]) -> dict[str, Any]:
    """The job record's error for what the state machine caught, as the mark_failed step writes it."""
    return error_body(error_from_state(error))


def test_a_tile_failure_keeps_its_code_message_and_tile_id() -> None:
    body = state_body(
        {"Error": "TileFailedError", "Cause": lambda_cause("TileFailedError", "tile 12: the potential is infinite")}
    )
    assert body == {"code": "tile_failed", "message": "tile 12: the potential is infinite", "tile_id": 12}


def test_an_invalid_input_keeps_its_field() -> None:
    body = state_body(
        {"Error": "InvalidSpecError", "Cause": lambda_cause("InvalidSpecError", "a: contains NaN or inf")}
    )
    assert body == {"code": "invalid_input", "message": "a: contains NaN or inf", "field": "a"}


def test_an_incomplete_job_maps_to_its_code() -> None:
    message = "job job1 cannot be reduced: 1 tile(s) not recorded done (3)"
    cause = lambda_cause("IncompleteJobError", message)
    body = state_body({"Error": "IncompleteJobError", "Cause": cause})
    assert body == {"code": "incomplete_job", "message": message}


def test_a_distributed_map_failure_is_a_runner_error() -> None:
    body = state_body(
        {"Error": "States.ExceedToleratedFailureThreshold", "Cause": "The specified tolerance threshold was exceeded"}
    )
    assert body == {
        "code": "runner_error",
        "message": "States.ExceedToleratedFailureThreshold: The specified tolerance threshold was exceeded",
    }


def test_a_lambda_timeout_is_a_runner_error() -> None:
    body = state_body(
        {"Error": "Sandbox.Timedout", "Cause": lambda_cause("Sandbox.Timedout", "Task timed out after 900.00 seconds")}
    )
    assert body == {"code": "runner_error", "message": "Sandbox.Timedout: Task timed out after 900.00 seconds"}


def test_an_unexpected_exception_is_internal_and_named() -> None:
    body = state_body({"Error": "KeyError", "Cause": lambda_cause("KeyError", "'pk'")})
    assert body == {"code": "internal_error", "message": "KeyError: 'pk'"}


def test_a_missing_cause_still_gives_a_message() -> None:
    body = state_body({"Error": "States.Timeout"})
    assert body == {"code": "runner_error", "message": "States.Timeout"}


def test_a_huge_cause_is_cut_to_size() -> None:
    body = state_body({"Error": "StoreError", "Cause": lambda_cause("StoreError", "x" * 50_000)})
    assert body["code"] == "store_error"
    assert len(body["message"]) == MAX_ERROR_MESSAGE


@pytest.mark.parametrize("exc", [
    InvalidSpecError("a.shape", "must be two sizes"), TileFailedError(3, "the potential is infinite"),
    IncompleteJobError("job1", [1, 2]), JobNotFoundError("j9"), ConflictError("lost a race"),
    StoreError("throttled"), KeyError("pk"),
], ids=lambda exc: type(exc).__name__)
def test_an_error_reported_by_a_lambda_or_a_spot_worker_keeps_its_body(exc: Exception) -> None:
    # The spot worker reports failures in the Lambda runtime's shape; mark_failed decodes both.
    state = {"Error": type(exc).__name__, "Cause": error_cause(exc)}
    assert state_body(state) == error_body(exc)


@pytest.mark.parametrize(("exc", "status", "body"), [
    (InvalidSpecError("a", "contains NaN or inf"), 400,
     {"code": "invalid_input", "message": "contains NaN or inf", "field": "a"}),
    (JobNotFoundError("j9"), 404, {"code": "job_not_found", "message": "no job with id 'j9'"}),
    (ConflictError("job j1 is SUCCEEDED"), 409, {"code": "conflict", "message": "job j1 is SUCCEEDED"}),
    (StoreError("throttled"), 503, {"code": "store_error", "message": "throttled"}),
    (TileFailedError(2, "overflow"), 500, {"code": "tile_failed", "message": "tile 2: overflow", "tile_id": 2}),
])
def test_the_rest_api_answers_an_error_with_its_status_and_body(
    exc: TilefanError, status: int, body: dict[str, Any]
) -> None:
    assert http_error(exc) == (status, body)


# --------------------------------------------------------------------------- handlers over memory ports


def test_tile_handler_records_the_tile_once_and_emits_metrics(
    ports: Ports, capsys: pytest.CaptureFixture[str]
) -> None:
    running_add_job(ports)
    event = {**GOOD, "tile_id": 3}
    assert lambdas.tile_handler(event, Context()) == {"job_id": "job1", "tile_id": 3, "recorded": True}
    first = emitted_metrics(capsys.readouterr().out)
    assert first["tiles_done"] == 1
    assert first["bytes_read"] == 2 * 4 * 4 * 8 and first["bytes_written"] == 4 * 4 * 8
    assert first["tile_seconds"] >= 0
    result = ports.jobs.done[("job1", 3)]  # type: ignore[attr-defined]
    assert result.worker == "lambda:req-1" and result.route == "lambda"

    # A redelivery computes again but records nothing, and does not count as done.
    assert lambdas.tile_handler(event, Context())["recorded"] is False
    again = emitted_metrics(capsys.readouterr().out)
    assert "tiles_done" not in again and again["bytes_written"] == 4 * 4 * 8


def test_tile_handler_skips_a_job_that_is_not_running(ports: Ports, capsys: pytest.CaptureFixture[str]) -> None:
    running_add_job(ports)
    ports.jobs.transition("job1", Status.CANCELLED)
    assert lambdas.tile_handler({**GOOD, "tile_id": 0}, Context())["recorded"] is False
    assert emitted_metrics(capsys.readouterr().out) == {"tiles_skipped": 1}


def test_mark_failed_records_the_parsed_error_and_drops_output(ports: Ports) -> None:
    running_add_job(ports)
    cause = lambda_cause("TileFailedError", "tile 2: the result overflowed to inf")
    out = lambdas.mark_failed_handler({**GOOD, "error": {"Error": "TileFailedError", "Cause": cause}}, Context())
    assert out == {"job_id": "job1", "status": "FAILED"}
    record = ports.jobs.get_job("job1")
    assert record.error == {"code": "tile_failed", "message": "tile 2: the result overflowed to inf", "tile_id": 2}
    assert ports.blobs.discarded == ["jobs/job1/out.npy"]  # type: ignore[attr-defined]


def test_mark_failed_on_an_unknown_job_reports_no_status(ports: Ports) -> None:
    event = {"job_id": "nope", "execution_id": EXECUTION, "error": {"Error": "JobNotFoundError", "Cause": ""}}
    assert lambdas.mark_failed_handler(event, Context()) == {"job_id": "nope", "status": None}


def test_reduce_handler_passes_the_pipeline_error_through(ports: Ports) -> None:
    running_add_job(ports)
    ports.jobs.transition("job1", Status.CANCELLED)
    with pytest.raises(ConflictError):
        lambdas.reduce_handler(GOOD, Context())


def test_handlers_accept_a_context_without_lambda_attributes(ports: Ports) -> None:
    running_add_job(ports)
    assert lambdas.tile_handler({**GOOD, "tile_id": 0}, None)["recorded"] is True
    assert ports.jobs.done[("job1", 0)].worker == "lambda:unknown"  # type: ignore[attr-defined]


def test_the_app_deploys_one_function_per_handler_under_a_name_its_module_binds() -> None:
    import app as chalice_app

    deployed = {f.name: f.handler_string for f in chalice_app.app.pure_lambda_functions}
    assert deployed == {name: f"app.{name}" for name in lambdas.HANDLERS}
    # The Lambda runtime imports app and calls the attribute the handler string names.
    for name, where in deployed.items():
        assert getattr(chalice_app, where.split(".", 1)[1]) is chalice_app.app.handler_map[name]


def test_each_app_function_hands_its_event_and_context_to_its_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    import app as chalice_app

    for name in lambdas.HANDLERS:
        monkeypatch.setitem(lambdas.HANDLERS, name, lambda event, context, name=name: {name: (event, context)})
        assert getattr(chalice_app, name)({"job_id": "j1"}, "ctx") == {name: ({"job_id": "j1"}, "ctx")}

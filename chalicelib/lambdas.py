"""The state machine's Lambda handlers: thin doors over ``tilefan.pipeline.steps``.

Each handler checks the shape of its event, gets the ports (built by bootstrap on first
use, or injected with ``set_ports``), calls one pipeline step and returns a small JSON
object. A malformed event raises ``InvalidSpecError`` naming the field; the state machine
never retries that error type (stepfunctions/tilefan.asl.json).

Events and results (the contract with the state machine):

- plan: ``{job_id, execution_id}`` → ``{job_id, execution_id, tiles_total, mode, tiles, items,
  spot_tiles, spot}``; each tile (inline, or in the S3 item list) is ``{job_id, tile_id, route}``
  and ``spot`` is ``{heartbeat_seconds, timeout_seconds}`` for the spot branch's task
- capacity: ``{job_id, execution_id, spot_tiles}`` → ``{job_id, spot_tiles, running, launched}``
- tile: ``{job_id, tile_id, execution_id}`` → ``{job_id, tile_id, recorded}``
- reduce: ``{job_id, execution_id}`` → ``{job_id, status}``
- mark_failed: ``{job_id, execution_id, error: {Error, Cause}}`` → ``{job_id, status}``
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from tilefan import bootstrap
from tilefan.domain.capacity import workers_to_launch
from tilefan.domain.records import Status, TileResult
from tilefan.domain.routing import SPOT
from tilefan.errors import CapacityError, InvalidSpecError, JobNotFoundError, RunnerError, TilefanError
from tilefan.pipeline import steps
from tilefan.pipeline.inputs import items_key
from tilefan.pipeline.ports import JobStore, Ports

if TYPE_CHECKING:
    from tilefan.adapters.aws.ec2_capacity import Ec2SpotCapacity
    from tilefan.bootstrap import AwsSettings, SpotSettings

# Service name, log level and metrics namespace come from POWERTOOLS_* (.chalice/config.json).
logger = Logger()
tracer = Tracer()  # off outside Lambda and with POWERTOOLS_TRACE_DISABLED=true
metrics = Metrics()
if not metrics.namespace:
    metrics.namespace = "tilefan"  # so the handlers also run where POWERTOOLS_* is unset (tests, moto)

INLINE, DISTRIBUTED = "inline", "distributed"
MAX_ERROR_MESSAGE = 2000  # characters of a caught error kept on the job record

_ports: Ports | None = None
_settings: AwsSettings | None = None
_capacity: Ec2SpotCapacity | None = None


# --------------------------------------------------------------------------- wiring


def get_settings() -> AwsSettings:
    global _settings
    if _settings is None:
        _settings = bootstrap.aws_settings()
    return _settings


def get_ports() -> Ports:
    """The AWS ports, built on first use and kept for the life of the Lambda sandbox."""
    global _ports
    if _ports is None:
        _ports = bootstrap.build_aws_ports(get_settings())
    return _ports


def set_ports(ports: Ports | None, settings: AwsSettings | None = None) -> None:
    """Use these ports (and settings) instead of building them; ``None`` goes back to bootstrap."""
    global _ports, _settings, _capacity
    _ports, _settings, _capacity = ports, settings, None


def get_capacity() -> Ec2SpotCapacity:
    """The EC2 adapter of the capacity step, built on first use."""
    global _capacity
    if _capacity is None:
        _capacity = bootstrap.build_capacity(get_settings())
    return _capacity


# --------------------------------------------------------------------------- handlers


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def plan_handler(event: Any, context: Any) -> dict[str, Any]:
    job_id, execution_id = _begin(event, context)
    settings = get_settings()
    the_plan = steps.plan_job(get_ports(), job_id, policy=settings.route_policy)
    out = plan_output(job_id, execution_id, steps.tile_items(the_plan), settings)
    metrics.add_metric(name="tiles_planned", unit=MetricUnit.Count, value=out["tiles_total"])
    metrics.add_metric(name="spot_tiles_planned", unit=MetricUnit.Count, value=out["spot_tiles"])
    logger.info("planned", extra={"tiles_total": out["tiles_total"], "mode": out["mode"],
                                  "spot_tiles": out["spot_tiles"]})
    return out


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def capacity_handler(event: Any, context: Any) -> dict[str, Any]:
    """Launch spot workers for a job's spot tiles, within the stage's cap.

    Workers already running count against the cap (they serve every job's tiles). EC2
    refusing to launch fails the job only when no worker is running to take its tiles.
    """
    job_id, _ = _begin(event, context)
    spot_tiles = _count(event, "spot_tiles")
    settings = get_settings()
    capacity = get_capacity()
    running = capacity.running()
    wanted = workers_to_launch(spot_tiles, running, settings.spot.max_instances)
    launched: list[str] = []
    try:
        launched = capacity.launch(wanted, job_id)
    except CapacityError as exc:
        if running == 0:
            raise
        logger.warning("could not launch more spot workers; the running ones will take the tiles",
                       extra={"error": str(exc), "running": running})
    metrics.add_metric(name="spot_workers_launched", unit=MetricUnit.Count, value=len(launched))
    logger.info("spot capacity", extra={"spot_tiles": spot_tiles, "running": running, "wanted": wanted,
                                        "launched": launched})
    return {"job_id": job_id, "spot_tiles": spot_tiles, "running": running, "launched": len(launched)}


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def tile_handler(event: Any, context: Any) -> dict[str, Any]:
    job_id, _ = _begin(event, context)
    tile_id = _tile_id(event)
    logger.append_keys(tile_id=tile_id)
    tracer.put_annotation("tile_id", str(tile_id))
    ports = get_ports()
    tap = _TileResultTap(ports.jobs)
    recorded = steps.run_tile(
        replace(ports, jobs=cast(JobStore, tap)), job_id, tile_id,
        worker=f"lambda:{getattr(context, 'aws_request_id', None) or 'unknown'}", route="lambda",
    )
    _tile_metrics(tap.result, recorded)
    return {"job_id": job_id, "tile_id": tile_id, "recorded": recorded}


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def reduce_handler(event: Any, context: Any) -> dict[str, Any]:
    job_id, _ = _begin(event, context)
    record = steps.reduce_job(get_ports(), job_id)
    metrics.add_metric(name="jobs_succeeded", unit=MetricUnit.Count, value=1)
    logger.info("reduced", extra={"status": record.status.value})
    return {"job_id": job_id, "status": record.status.value}


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def mark_failed_handler(event: Any, context: Any) -> dict[str, Any]:
    job_id, _ = _begin(event, context)
    error = error_from_state(_state_error(event))
    ports = get_ports()
    try:
        steps.fail_job(ports, job_id, error)
        status = ports.jobs.get_job(job_id).status.value
    except JobNotFoundError:
        # Nothing to mark (the plan step failed on an unknown id); the execution still fails.
        logger.warning("no such job to mark failed", extra={"error": error})
        return {"job_id": job_id, "status": None}
    if status == Status.FAILED.value:  # not when it had already ended (e.g. cancelled)
        metrics.add_metric(name="jobs_failed", unit=MetricUnit.Count, value=1)
    logger.info("job failed", extra={"error": error, "status": status})
    return {"job_id": job_id, "status": status}


# --------------------------------------------------------------------------- pure helpers


class PlanSettings(Protocol):
    @property
    def bucket(self) -> str: ...

    @property
    def distributed_threshold(self) -> int: ...

    @property
    def spot(self) -> SpotSettings: ...


def plan_output(
    job_id: str, execution_id: str, items: Sequence[Mapping[str, Any]], settings: PlanSettings
) -> dict[str, Any]:
    """What the plan step hands the state machine: the map mode, where the items are, how
    many tiles go to spot, and the spot task's heartbeat and timeout.

    Up to ``distributed_threshold`` tiles travel in the state (inline Map); above it the
    Distributed Map reads them from S3, keeping the state far below its 256 KiB cap.
    ``items`` are ``steps.tile_items``: each carries its route, which picks its branch.
    """
    distributed = len(items) > settings.distributed_threshold
    return {
        "job_id": job_id,
        "execution_id": execution_id,
        "tiles_total": len(items),
        "mode": DISTRIBUTED if distributed else INLINE,
        "tiles": [] if distributed else [dict(item) for item in items],
        "items": {"bucket": settings.bucket, "key": items_key(job_id)},
        "spot_tiles": sum(1 for item in items if item.get("route") == SPOT),
        "spot": {"heartbeat_seconds": settings.spot.heartbeat_s, "timeout_seconds": settings.spot.timeout_s},
    }


_TILE_PREFIX = re.compile(r"^tile (\d+): ")


def error_from_state(error: Mapping[str, str]) -> dict[str, Any]:
    """The job record's ``error`` for an error the state machine caught (``{Error, Cause}``).

    A Lambda's Cause is JSON carrying ``errorType`` and ``errorMessage``; our own errors map
    back to their codes, and a message from a tile ("tile 3: ...") gives its tile id.

    >>> cause = '{"errorType": "TileFailedError", "errorMessage": "tile 3: the potential is infinite"}'
    >>> error_from_state({"Error": "TileFailedError", "Cause": cause})
    {'code': 'tile_failed', 'message': 'tile 3: the potential is infinite', 'tile_id': 3}
    >>> error_from_state({"Error": "States.Timeout", "Cause": ""})
    {'code': 'runner_error', 'message': 'States.Timeout'}
    """
    name = error["Error"]
    cause = error.get("Cause") or ""
    error_type, message = name, cause
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error_type = str(parsed.get("errorType") or name)
        message = str(parsed.get("errorMessage") or "")
    ours = _tilefan_errors().get(error_type)
    body: dict[str, Any]
    if ours is not None:
        body = {"code": ours.code, "message": message or error_type}
        if issubclass(ours, InvalidSpecError) and ": " in message:
            body["field"] = message.split(": ", 1)[0]
    elif name.startswith(("States.", "Lambda.", "Sandbox.")) or error_type.startswith(("Lambda.", "Sandbox.")):
        body = {"code": RunnerError.code, "message": f"{error_type}: {message}" if message else error_type}
    else:
        body = {"code": TilefanError.code, "message": f"{error_type}: {message}" if message else error_type}
    body["message"] = body["message"][:MAX_ERROR_MESSAGE]
    tile = _TILE_PREFIX.match(message)
    if tile:
        body["tile_id"] = int(tile.group(1))
    return body


def _tilefan_errors() -> dict[str, type[TilefanError]]:
    def walk(cls: type[TilefanError]) -> Iterator[type[TilefanError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from walk(sub)

    return {cls.__name__: cls for cls in walk(TilefanError)}


# --------------------------------------------------------------------------- event shape


def _begin(event: Any, context: Any) -> tuple[str, str]:
    """Check the fields every step event has, and tag this invocation's logs and trace."""
    logger.clear_state()
    if not isinstance(event, Mapping):
        raise InvalidSpecError("event", f"must be a JSON object, got {type(event).__name__}")
    job_id = _text(event, "job_id")
    execution_id = _text(event, "execution_id")
    logger.append_keys(
        job_id=job_id, execution_id=execution_id, request_id=getattr(context, "aws_request_id", None)
    )
    tracer.put_annotation("job_id", job_id)
    return job_id, execution_id


def _text(event: Mapping[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidSpecError(name, f"must be a non-empty string, got {value!r}")
    return value


def _count(event: Mapping[str, Any], name: str) -> int:
    value = event.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidSpecError(name, f"must be an integer >= 0, got {value!r}")
    return value


def _tile_id(event: Mapping[str, Any]) -> int:
    value = event.get("tile_id")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidSpecError("tile_id", f"must be an integer >= 0, got {value!r}")
    return value


def _state_error(event: Mapping[str, Any]) -> dict[str, str]:
    error = event.get("error")
    if not isinstance(error, Mapping):
        raise InvalidSpecError("error", f"must be an object with Error and Cause, got {error!r}")
    name, cause = error.get("Error"), error.get("Cause", "")
    if not isinstance(name, str) or not name:
        raise InvalidSpecError("error.Error", f"must be a non-empty string, got {name!r}")
    if cause is not None and not isinstance(cause, str):
        raise InvalidSpecError("error.Cause", f"must be a string, got {cause!r}")
    return {"Error": name, "Cause": cause or ""}


# --------------------------------------------------------------------------- tile metrics


class _TileResultTap:
    """Hands every call on to the job store, keeping the TileResult the tile records."""

    def __init__(self, jobs: JobStore) -> None:
        self._jobs = jobs
        self.result: TileResult | None = None

    def record_tile_done(self, job_id: str, result: TileResult) -> bool:
        self.result = result
        return self._jobs.record_tile_done(job_id, result)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._jobs, name)


def _tile_metrics(result: TileResult | None, recorded: bool) -> None:
    if result is None:  # the job was no longer running: nothing computed
        metrics.add_metric(name="tiles_skipped", unit=MetricUnit.Count, value=1)
        logger.info("tile skipped: job not running")
        return
    seconds = result.finished_at - result.started_at
    if recorded:
        metrics.add_metric(name="tiles_done", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="tile_seconds", unit=MetricUnit.Seconds, value=seconds)
    metrics.add_metric(name="bytes_read", unit=MetricUnit.Bytes, value=result.bytes_read)
    metrics.add_metric(name="bytes_written", unit=MetricUnit.Bytes, value=result.bytes_written)
    logger.info("tile done", extra={
        "recorded": recorded, "seconds": seconds, "bytes_read": result.bytes_read,
        "bytes_written": result.bytes_written, "units": result.units,
    })

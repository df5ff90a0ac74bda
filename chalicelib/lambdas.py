"""The state machine's Lambda handlers: thin doors over the pipeline steps (``tilefan.pipeline``).

Each handler checks the shape of its event, gets the ports (built by bootstrap on first
use, or injected with ``set_ports``), calls one pipeline step and returns a small JSON
object. A malformed event raises ``InvalidSpecError`` naming the field; the state machine
never retries that error type (stepfunctions/tilefan.asl.json).

Events and results (the contract with the state machine):

- plan: ``{job_id, execution_id}`` → ``{job_id, execution_id, tiles_total, mode, tiles, items,
  spot_tiles, spot}``; each tile (inline, or in the S3 item list) is ``{job_id, tile_id, route}``
  and ``spot`` is ``{heartbeat_seconds, timeout_seconds}`` for the spot branch's task
- capacity: ``{job_id, execution_id, spot_tiles}`` → ``{job_id, spot_tiles, running, launched}``
- tile: ``{job_id, tile_id, execution_id}`` → ``{job_id, tile_id, recorded}``; or a batch from the
  packaged Distributed Map's ItemBatcher, ``{Items: [tile items], BatchInput: {execution_id, ...}}``
  → ``{job_id, tiles: [{tile_id, recorded, outcome}], spot_items}`` (``tilefan.pipeline.tile_batch``)
- reduce: ``{job_id, execution_id}`` → ``{job_id, status}``
- mark_failed: ``{job_id, execution_id, error: {Error, Cause}}`` → ``{job_id, status}``; or an
  execution's end from EventBridge → ``{job_id, status, changed}`` (``pipeline.execution_end``)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from tilefan import bootstrap
from tilefan.compute.kernel_choice import AtomsKernel, choose_atoms_kernel
from tilefan.domain.capacity import workers_to_launch
from tilefan.domain.records import Status
from tilefan.domain.routing import SPOT
from tilefan.errors import CapacityError, JobNotFoundError
from tilefan.pipeline import event_fields as fields
from tilefan.pipeline import execution_end
from tilefan.pipeline.error_codec import error_body, error_from_state
from tilefan.pipeline.inputs import items_key
from tilefan.pipeline.lifecycle import fail_job
from tilefan.pipeline.plan import plan_job, tile_items
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.reduce import reduce_job
from tilefan.pipeline.tile import TileRun, run_tile
from tilefan.pipeline.tile_batch import BatchItem, batch_items, batch_size, is_batch, run_batch

if TYPE_CHECKING:
    from tilefan.adapters.aws.ec2_capacity import Ec2SpotCapacity
    from tilefan.settings import AwsSettings, SpotSettings

# Service name, log level and metrics namespace come from POWERTOOLS_* (.chalice/config.json).
logger = Logger()
tracer = Tracer()  # off outside Lambda and with POWERTOOLS_TRACE_DISABLED=true
metrics = Metrics()
if not metrics.namespace:
    metrics.namespace = "tilefan"  # so the handlers also run where POWERTOOLS_* is unset (tests, moto)

INLINE, DISTRIBUTED = "inline", "distributed"

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
    the_plan = plan_job(get_ports(), job_id, policy=settings.route_policy)
    out = plan_output(job_id, execution_id, tile_items(the_plan), settings,
                      batch_items=batch_size(the_plan, settings.route_policy))
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
    spot_tiles = fields.integer(event, "spot_tiles")
    settings = get_settings()
    capacity = get_capacity()
    running = capacity.running()
    wanted = workers_to_launch(spot_tiles, running, settings.route_policy.spot_max_workers)
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


@functools.cache
def _atoms_kernel() -> AtomsKernel:
    """The C kernel the package ships (``make package`` builds it), else NumPy's: chosen
    once per container, by the one rule every backend uses. A Lambda runs one tile at a
    time, so the C kernel's threads use every vCPU it pays for (``os.sched_getaffinity``:
    6 at 10,240 MB)."""
    return choose_atoms_kernel("auto")


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def tile_handler(event: Any, context: Any) -> dict[str, Any]:
    if isinstance(event, Mapping) and is_batch(event):
        return _tile_batch(event, context)
    job_id, _ = _begin(event, context)
    tile_id = fields.integer(event, "tile_id")
    logger.append_keys(tile_id=tile_id)
    tracer.put_annotation("tile_id", str(tile_id))
    run = _lambda_tile(job_id, tile_id, context)
    return {"job_id": job_id, "tile_id": tile_id, "recorded": run.recorded}


def _lambda_tile(job_id: str, tile_id: int, context: Any) -> TileRun:
    """Run one tile on this Lambda (alone or in a batch) and count it in the metrics."""
    worker = f"lambda:{getattr(context, 'aws_request_id', None) or 'unknown'}"
    run = run_tile(get_ports(), job_id, tile_id, worker=worker, route="lambda", atoms_kernel=_atoms_kernel())
    _tile_metrics(run)
    return run


def _tile_batch(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """A batch of tiles (the packaged Distributed Map batches its items): Lambda tiles run
    here one by one, spot tiles go back to the child's spot branch."""
    logger.clear_state()
    items = batch_items(event)
    logger.append_keys(job_id=items[0].job_id, request_id=getattr(context, "aws_request_id", None))
    tracer.put_annotation("job_id", items[0].job_id)

    def one(item: BatchItem) -> TileRun:
        logger.append_keys(tile_id=item.tile_id)
        return _lambda_tile(item.job_id, item.tile_id, context)

    out = run_batch(items, one)
    logger.info("tile batch done", extra={"tiles": len(out["tiles"]), "spot_items": len(out["spot_items"])})
    return out


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def reduce_handler(event: Any, context: Any) -> dict[str, Any]:
    job_id, _ = _begin(event, context)
    record = reduce_job(get_ports(), job_id)
    metrics.add_metric(name="jobs_succeeded", unit=MetricUnit.Count, value=1)
    logger.info("reduced", extra={"status": record.status.value})
    return {"job_id": job_id, "status": record.status.value}


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def mark_failed_handler(event: Any, context: Any) -> dict[str, Any]:
    if execution_end.is_execution_event(event):
        return _execution_ended(event)
    job_id, _ = _begin(event, context)
    error = error_body(error_from_state(fields.state_error(event)))
    ports = get_ports()
    try:
        fail_job(ports, job_id, error)
        status = ports.jobs.get_job(job_id).status.value
    except JobNotFoundError:
        # Nothing to mark (the plan step failed on an unknown id); the execution still fails.
        logger.warning("no such job to mark failed", extra={"error": error})
        return {"job_id": job_id, "status": None}
    if status == Status.FAILED.value:  # not when it had already ended (e.g. cancelled)
        metrics.add_metric(name="jobs_failed", unit=MetricUnit.Count, value=1)
    logger.info("job failed", extra={"error": error, "status": status})
    return {"job_id": job_id, "status": status}


def _execution_ended(event: Mapping[str, Any]) -> dict[str, Any]:
    """An execution ended without marking its job (timed out, aborted, ...): end the job, once."""
    ended = execution_end.parse(event)
    status, changed = execution_end.settle(get_ports(), ended)
    if changed and status == Status.FAILED.value:
        metrics.add_metric(name="jobs_failed", unit=MetricUnit.Count, value=1)
    logger.info("execution ended", extra={"job_id": ended.job_id, "execution_status": ended.status,
                                          "status": status, "changed": changed})
    return {"job_id": ended.job_id, "status": status, "changed": changed}


# Every handler by the name of its Lambda function (app.py registers one function for each).
HANDLERS: dict[str, Callable[[Any, Any], dict[str, Any]]] = {
    "plan": plan_handler, "capacity": capacity_handler, "tile": tile_handler, "reduce": reduce_handler,
    "mark_failed": mark_failed_handler,
}


# --------------------------------------------------------------------------- pure helpers


class PlanSettings(Protocol):
    @property
    def bucket(self) -> str: ...

    @property
    def distributed_threshold(self) -> int: ...

    @property
    def spot(self) -> SpotSettings: ...


def plan_output(
    job_id: str, execution_id: str, items: Sequence[Mapping[str, Any]], settings: PlanSettings,
    *, batch_items: int = 1,
) -> dict[str, Any]:
    """What the plan step hands the state machine: the map mode, where the items are, how
    many tiles go to spot, and the spot task's heartbeat and timeout.

    Up to ``distributed_threshold`` tiles travel in the state (inline Map); above it the
    Distributed Map reads them from S3, keeping the state far below its 256 KiB cap.
    ``items`` are ``tilefan.pipeline.plan.tile_items``: each carries its route, which picks its branch.
    ``batch_items`` is how many items the packaged Distributed Map batches into one child
    (its ItemBatcher reads it; the definition moto runs has no ItemBatcher and ignores it).
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
        "batch_items": batch_items,
    }


# --------------------------------------------------------------------------- event shape


def _begin(event: Any, context: Any) -> tuple[str, str]:
    """Check the fields every step event has, and tag this invocation's logs and trace."""
    logger.clear_state()
    event = fields.mapping(event, "event")
    job_id = fields.text(event, "job_id")
    execution_id = fields.text(event, "execution_id")
    logger.append_keys(
        job_id=job_id, execution_id=execution_id, request_id=getattr(context, "aws_request_id", None)
    )
    tracer.put_annotation("job_id", job_id)
    return job_id, execution_id


# --------------------------------------------------------------------------- tile metrics


def _tile_metrics(run: TileRun) -> None:
    result, recorded = run.result, run.recorded
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
        "recorded": recorded, "outcome": run.outcome.value, "seconds": seconds, "bytes_read": result.bytes_read,
        "bytes_written": result.bytes_written, "units": result.units,
    })

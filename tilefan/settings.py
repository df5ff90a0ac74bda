"""Settings parsed from a mapping of environment variables, one setting per variable.

These functions take the mapping as an argument: ``tilefan.bootstrap`` is the only reader
of ``os.environ`` and hands it in. A bad value raises ``InvalidSpecError`` naming the
variable. The AWS list prices the planner and the cost model charge are settings too
(``LIST_PRICES``): the domain takes them as a value in the ``RoutePolicy``. So are the
sizes an HTTP request may have (``HttpLimits``), which only the REST doors and the
service's body caps read: a job's own limits (``Limits``) know nothing of HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from tilefan.compute.kernel_choice import KERNEL_CHOICES
from tilefan.domain.routing import Prices, RoutePolicy
from tilefan.domain.sfn_limits import HISTORY_EVENT_CAP, max_inline_tiles
from tilefan.domain.spec.parse import Limits
from tilefan.domain.transfer import function_io_mb_s, io_streams
from tilefan.errors import InvalidSpecError

Env = Mapping[str, str]

# us-east-1 (N. Virginia), on-demand list prices in USD as published on the services'
# pricing pages in November 2024 (DynamoDB's on-demand prices are those after its
# 1 November 2024 cut). No free tier, no Savings Plans, no volume tiers: Lambda's x86 price
# is the first tier (up to 6 billion GB-s a month). A deployment in another region, or
# after a price change, edits these figures; docs/cost-model.md says how each is used.
LIST_PRICES = Prices(
    as_of="2024-11 (us-east-1 list prices)",
    lambda_gb_s=0.0000166667,  # x86 duration, per GB-second
    lambda_request=0.20 / 1e6,  # per invocation
    sfn_transition=0.025 / 1000,  # Standard workflows, per state transition
    dynamo_write_unit=0.625 / 1e6,  # on-demand write request unit (1 KB; twice that in a transaction)
    dynamo_read_unit=0.125 / 1e6,  # on-demand read request unit (4 KB strongly consistent)
    s3_put=0.005 / 1000,  # PUT, COPY, POST, LIST (and UploadPartCopy, a PUT) per request
    s3_get=0.0004 / 1000,  # GET and all other requests
    # Not a list price: spot prices move with the market, so this is a planning figure for the
    # launch template's c7i.4xlarge (on demand $0.714 an hour), tuned by TILEFAN_SPOT_HOUR_PRICE.
    spot_hour=0.25,
)


def list_policy() -> RoutePolicy:
    """The planner's defaults at the list prices: what ``route_policy`` gives with nothing set."""
    return RoutePolicy(prices=LIST_PRICES)


@dataclass(frozen=True)
class HttpLimits:
    """What one HTTP request may carry, checked by the service's body caps
    (``tilefan.service.body_caps``) in the routes, the WSGI adapter and waitress."""

    # A JSON body (POST /jobs, POST /uploads): TILEFAN_MAX_BODY_BYTES.
    max_body_bytes: int = 64 * 1024
    # An upload's bytes (PUT /uploads/..., or the presigned POST on AWS), which the server's
    # HTTP front end refuses before reading when declared larger: TILEFAN_MAX_UPLOAD_BYTES.
    max_upload_bytes: int = 256 << 20


@dataclass(frozen=True)
class Config:
    """How this install runs: the backend, its home, its workers and kernel, its limits (from
    TILEFAN_* variables, ``load_config``)."""

    backend: str = "embedded"
    home: Path = field(default_factory=lambda: Path.home() / ".tilefan")
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    kernel: str = "auto"
    limits: Limits = field(default_factory=Limits)
    http_limits: HttpLimits = field(default_factory=HttpLimits)
    route_policy: RoutePolicy = field(default_factory=list_policy)


@dataclass(frozen=True)
class SpotSettings:
    """The spot branch: its queue, the heartbeat contract, the fleet and the worker loop.

    The cap on live workers is ``RoutePolicy.spot_max_workers``: the planner's cost estimate
    and the capacity step read the same number.
    """

    queue_url: str = ""
    dlq_url: str = ""
    heartbeat_s: int = 60  # the spot task's HeartbeatSeconds
    timeout_s: int = 21_600  # its TimeoutSeconds: queueing, boot and compute together
    launch_template: str = ""
    fleet: str = "tilefan"
    subnets: tuple[str, ...] = ()
    imds_url: str = "http://169.254.169.254"
    idle_s: int = 300
    visibility_s: int = 120
    wait_s: int = 20
    interruption_poll_s: float = 5.0
    # A tile still computing after this long is abandoned and the worker exits (a thread
    # cannot be killed). When set, it must be below timeout_s: a limit the task's own
    # timeout always beats would never act.
    tile_limit_s: float = 3600.0


@dataclass(frozen=True)
class AwsSettings:
    """The AWS backend as deployed (``aws_settings``): its bucket, table, state machine and region,
    and how it runs jobs there (inline Map size, record TTL, spot workers, routes, S3 streams)."""

    bucket: str
    table: str
    state_machine_arn: str
    region: str
    distributed_threshold: int = 256
    ttl_days: int = 30
    spot: SpotSettings = field(default_factory=SpotSettings)
    route_policy: RoutePolicy = field(default_factory=list_policy)
    s3_streams: int = field(default_factory=lambda: io_streams(list_policy().lambda_memory_mb))


# S3 advises 8–16 concurrent requests a function; each is a thread and a connection, and
# far more than that would only queue on the function's own network.
MAX_S3_STREAMS = 64


def inline_threshold(env: Env) -> int:
    """TILEFAN_DISTRIBUTED_THRESHOLD, refused above what the history event cap allows."""
    value = env_int(env, "TILEFAN_DISTRIBUTED_THRESHOLD", 256)
    if value > max_inline_tiles():
        raise InvalidSpecError("TILEFAN_DISTRIBUTED_THRESHOLD",
                               f"must be at most {max_inline_tiles()} (an inline Map of more tiles would near the "
                               f"execution's {HISTORY_EVENT_CAP:,}-event history cap), got {value}")
    return value


def env_int(env: Env, name: str, default: int) -> int:
    """A whole number of at least 1, or ``default`` when unset or empty."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidSpecError(name, f"must be an integer, got {raw!r}") from None
    if value < 1:
        raise InvalidSpecError(name, f"must be at least 1, got {value}")
    return value


def env_float(env: Env, name: str, default: float, *, maximum: float | None = None) -> float:
    """A number greater than 0 (and at most ``maximum``), or ``default`` when unset or empty."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidSpecError(name, f"must be a number, got {raw!r}") from None
    if not value > 0 or (maximum is not None and value > maximum):
        bound = f" and at most {maximum:g}" if maximum is not None else ""
        raise InvalidSpecError(name, f"must be greater than 0{bound}, got {raw}")
    return value


def parse_config(env: Env) -> Config:
    defaults = Limits()
    limits = Limits(
        max_matrix_elements=env_int(env, "TILEFAN_MAX_MATRIX_ELEMENTS", defaults.max_matrix_elements),
        max_dim=env_int(env, "TILEFAN_MAX_DIM", defaults.max_dim),
        max_grid_points=env_int(env, "TILEFAN_MAX_GRID_POINTS", defaults.max_grid_points),
        max_atoms=env_int(env, "TILEFAN_MAX_ATOMS", defaults.max_atoms),
        max_tiles=env_int(env, "TILEFAN_MAX_TILES", defaults.max_tiles),
        max_cost_usd=env_float(env, "TILEFAN_MAX_COST_USD", defaults.max_cost_usd),
        max_concurrent_jobs=env_int(env, "TILEFAN_MAX_CONCURRENT_JOBS", defaults.max_concurrent_jobs),
        max_queued_jobs=env_int(env, "TILEFAN_MAX_QUEUED_JOBS", defaults.max_queued_jobs),
    )
    kernel = env.get("TILEFAN_KERNEL", "auto")
    if kernel not in KERNEL_CHOICES:
        raise InvalidSpecError("TILEFAN_KERNEL", f"must be auto, numpy or compiled, got {kernel!r}")
    home = Path(env["TILEFAN_HOME"]) if env.get("TILEFAN_HOME") else Path.home() / ".tilefan"
    return Config(
        backend=env.get("TILEFAN_BACKEND", "embedded"),
        home=home,
        workers=env_int(env, "TILEFAN_WORKERS", os.cpu_count() or 1),
        kernel=kernel,
        limits=limits,
        http_limits=http_limits(env),
        route_policy=route_policy(env),
    )


def http_limits(env: Env) -> HttpLimits:
    d = HttpLimits()
    return HttpLimits(
        max_body_bytes=env_int(env, "TILEFAN_MAX_BODY_BYTES", d.max_body_bytes),
        max_upload_bytes=env_int(env, "TILEFAN_MAX_UPLOAD_BYTES", d.max_upload_bytes),
    )


def s3_streams(env: Env, memory_mb: int | None = None) -> int:
    """S3 requests a store keeps in flight: ``TILEFAN_S3_STREAMS``, or what the function's
    memory affords (``memory_mb``, else Lambda's ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``; off
    Lambda, as on a spot worker, what the tile function's would)."""
    if memory_mb is None:
        memory_mb = env_int(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", list_policy().lambda_memory_mb)
    streams = env_int(env, "TILEFAN_S3_STREAMS", io_streams(memory_mb))
    if streams > MAX_S3_STREAMS:
        raise InvalidSpecError("TILEFAN_S3_STREAMS", f"must be at most {MAX_S3_STREAMS}, got {streams}")
    return streams


def route_policy(env: Env) -> RoutePolicy:
    """Where tiles go: the Lambda safety margins, the spot price and the spot worker cap,
    and the tile function's S3 rate, which follows its streams (not the planner's own)."""
    d = list_policy()
    return replace(
        d,
        lambda_io_mb_s=function_io_mb_s(s3_streams(env, d.lambda_memory_mb)),
        memory_margin=env_float(env, "TILEFAN_LAMBDA_MEMORY_MARGIN", d.memory_margin, maximum=1.0),
        time_margin=env_float(env, "TILEFAN_LAMBDA_TIME_MARGIN", d.time_margin, maximum=1.0),
        prices=replace(d.prices, spot_hour=env_float(env, "TILEFAN_SPOT_HOUR_PRICE", d.prices.spot_hour)),
        spot_max_workers=env_int(env, "TILEFAN_SPOT_MAX_INSTANCES", d.spot_max_workers),
    )


def spot_settings(env: Env) -> SpotSettings:
    d = SpotSettings()
    heartbeat = env_int(env, "TILEFAN_SPOT_HEARTBEAT_S", d.heartbeat_s)
    timeout = env_int(env, "TILEFAN_SPOT_TIMEOUT_S", d.timeout_s)
    if heartbeat >= timeout:
        raise InvalidSpecError("TILEFAN_SPOT_HEARTBEAT_S", f"must be less than TILEFAN_SPOT_TIMEOUT_S ({timeout})")
    wait = env_int(env, "TILEFAN_WORKER_WAIT_S", d.wait_s)
    if wait > 20:
        raise InvalidSpecError("TILEFAN_WORKER_WAIT_S", f"SQS long-polls for at most 20 s, got {wait}")
    tile_limit = env_float(env, "TILEFAN_WORKER_TILE_LIMIT_S", d.tile_limit_s)
    if env.get("TILEFAN_WORKER_TILE_LIMIT_S") and tile_limit >= timeout:
        raise InvalidSpecError("TILEFAN_WORKER_TILE_LIMIT_S",
                               f"must be less than TILEFAN_SPOT_TIMEOUT_S ({timeout}), got {tile_limit:g}")
    return SpotSettings(
        queue_url=env.get("TILEFAN_SPOT_QUEUE_URL", ""),
        dlq_url=env.get("TILEFAN_SPOT_DLQ_URL", ""),
        heartbeat_s=heartbeat,
        timeout_s=timeout,
        launch_template=env.get("TILEFAN_SPOT_LAUNCH_TEMPLATE", ""),
        fleet=env.get("TILEFAN_SPOT_FLEET") or d.fleet,
        subnets=tuple(s.strip() for s in env.get("TILEFAN_SPOT_SUBNETS", "").split(",") if s.strip()),
        imds_url=env.get("TILEFAN_IMDS_URL") or d.imds_url,
        idle_s=env_int(env, "TILEFAN_WORKER_IDLE_S", d.idle_s),
        visibility_s=env_int(env, "TILEFAN_WORKER_VISIBILITY_S", d.visibility_s),
        wait_s=wait,
        interruption_poll_s=env_float(env, "TILEFAN_WORKER_INTERRUPTION_POLL_S", d.interruption_poll_s),
        tile_limit_s=tile_limit,
    )


def parse_aws_settings(env: Env) -> AwsSettings:
    missing = [n for n in ("TILEFAN_BUCKET", "TILEFAN_TABLE") if not env.get(n)]
    if missing:
        raise InvalidSpecError(missing[0], "must be set for the aws backend")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    return AwsSettings(
        bucket=env["TILEFAN_BUCKET"],
        table=env["TILEFAN_TABLE"],
        state_machine_arn=env.get("TILEFAN_STATE_MACHINE_ARN", ""),
        region=region,
        distributed_threshold=inline_threshold(env),
        ttl_days=env_int(env, "TILEFAN_TTL_DAYS", 30),
        spot=spot_settings(env),
        route_policy=route_policy(env),
        s3_streams=s3_streams(env),
    )

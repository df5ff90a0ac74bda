"""The one place that reads configuration and wires the backend together.

Nothing else in tilefan reads environment variables. ``TILEFAN_BACKEND`` picks
``embedded`` (default) or ``aws``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tilefan.adapters.embedded.localfs import LocalBlobStore
from tilefan.adapters.embedded.sqlite_store import SqliteJobStore
from tilefan.domain.routing import RoutePolicy
from tilefan.domain.spec import Limits
from tilefan.errors import InvalidSpecError
from tilefan.pipeline.ports import Ports


@dataclass(frozen=True)
class Config:
    backend: str = "embedded"
    home: Path = field(default_factory=lambda: Path.home() / ".tilefan")
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    kernel: str = "auto"
    limits: Limits = field(default_factory=Limits)
    route_policy: RoutePolicy = field(default_factory=RoutePolicy)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
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


def load_config(env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    defaults = Limits()
    limits = Limits(
        max_matrix_elements=_env_int(env, "TILEFAN_MAX_MATRIX_ELEMENTS", defaults.max_matrix_elements),
        max_dim=_env_int(env, "TILEFAN_MAX_DIM", defaults.max_dim),
        max_grid_points=_env_int(env, "TILEFAN_MAX_GRID_POINTS", defaults.max_grid_points),
        max_atoms=_env_int(env, "TILEFAN_MAX_ATOMS", defaults.max_atoms),
    )
    kernel = env.get("TILEFAN_KERNEL", "auto")
    if kernel not in ("auto", "numpy", "compiled"):
        raise InvalidSpecError("TILEFAN_KERNEL", f"must be auto, numpy or compiled, got {kernel!r}")
    home = Path(env["TILEFAN_HOME"]) if env.get("TILEFAN_HOME") else Path.home() / ".tilefan"
    return Config(
        backend=env.get("TILEFAN_BACKEND", "embedded"),
        home=home,
        workers=_env_int(env, "TILEFAN_WORKERS", os.cpu_count() or 1),
        kernel=kernel,
        limits=limits,
        route_policy=route_policy(env),
    )


def embedded_ports(home: Path) -> Ports:
    return Ports(blobs=LocalBlobStore(home / "blobs"), jobs=SqliteJobStore(home / "jobs.sqlite3"))


def build_embedded(config: Config, *, threaded: bool = False):  # type: ignore[no-untyped-def]
    """Ports and runner for the embedded backend (``threaded`` when run from a server)."""
    from tilefan.service.local_runner import LocalRunner, PoolSettings

    ports = embedded_ports(config.home)
    make_ports = functools.partial(embedded_ports, config.home)
    settings = PoolSettings(
        workers=config.workers, kernel=config.kernel, start_method="forkserver" if threaded else "fork",
        policy=config.route_policy,
    )
    return ports, LocalRunner(ports, make_ports, settings)


# --------------------------------------------------------------------------- AWS


@dataclass(frozen=True)
class AwsSettings:
    bucket: str
    table: str
    state_machine_arn: str
    region: str
    distributed_threshold: int = 256
    ttl_days: int = 30
    spot: SpotSettings = field(default_factory=lambda: SpotSettings())
    route_policy: RoutePolicy = field(default_factory=RoutePolicy)


def aws_settings(env: Mapping[str, str] | None = None) -> AwsSettings:
    env = os.environ if env is None else env
    missing = [n for n in ("TILEFAN_BUCKET", "TILEFAN_TABLE") if not env.get(n)]
    if missing:
        raise InvalidSpecError(missing[0], "must be set for the aws backend")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    return AwsSettings(
        bucket=env["TILEFAN_BUCKET"],
        table=env["TILEFAN_TABLE"],
        state_machine_arn=env.get("TILEFAN_STATE_MACHINE_ARN", ""),
        region=region,
        distributed_threshold=_env_int(env, "TILEFAN_DISTRIBUTED_THRESHOLD", 256),
        ttl_days=_env_int(env, "TILEFAN_TTL_DAYS", 30),
        spot=spot_settings(env),
        route_policy=route_policy(env),
    )


def build_aws_ports(settings: AwsSettings | None = None, session=None) -> Ports:  # type: ignore[no-untyped-def]
    """S3 and DynamoDB ports; boto3 clients are created here, on first use, never at import."""
    import boto3
    from botocore.config import Config as BotoConfig

    from tilefan.adapters.aws.dynamo_store import DynamoJobStore
    from tilefan.adapters.aws.s3_store import S3BlobStore

    settings = settings or aws_settings()
    session = session or boto3.session.Session(region_name=settings.region)
    # SigV4 and the regional endpoint: presigned upload URLs are otherwise signed with SigV2.
    s3 = session.client("s3", config=BotoConfig(signature_version="s3v4", s3={"addressing_style": "virtual"}))
    return Ports(
        blobs=S3BlobStore(s3, settings.bucket),
        jobs=DynamoJobStore(session.client("dynamodb"), settings.table, ttl_days=settings.ttl_days),
    )


def build_aws_runner(settings: AwsSettings | None = None, session=None):  # type: ignore[no-untyped-def]
    import boto3

    from tilefan.adapters.aws.sfn_runner import StepFunctionsRunner

    settings = settings or aws_settings()
    session = session or boto3.session.Session(region_name=settings.region)
    return StepFunctionsRunner(session.client("stepfunctions"), settings.state_machine_arn, settings.region)


def build_service(config: Config | None = None):  # type: ignore[no-untyped-def]
    """The REST API's service over the configured backend."""
    from tilefan.service.jobs import JobService

    config = config or load_config()
    if config.backend == "aws":
        from tilefan.service.sfn_job_runner import StepFunctionsJobRunner

        settings = aws_settings()
        ports = build_aws_ports(settings)
        runner = StepFunctionsJobRunner(build_aws_runner(settings), ports, settings.state_machine_arn)
        return JobService(ports, runner, config.limits, policy=settings.route_policy)
    if config.backend != "embedded":
        raise InvalidSpecError("TILEFAN_BACKEND", f"must be embedded or aws, got {config.backend!r}")
    ports, local = build_embedded(config, threaded=True)
    return JobService(ports, local, config.limits, policy=config.route_policy)


# --------------------------------------------------------------------------- spot workers


def _env_float(env: Mapping[str, str], name: str, default: float, *, maximum: float | None = None) -> float:
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


def route_policy(env: Mapping[str, str] | None = None) -> RoutePolicy:
    """Where tiles go: the Lambda safety margins, and the spot price the cost rule uses."""
    env = os.environ if env is None else env
    d = RoutePolicy()
    return RoutePolicy(
        memory_margin=_env_float(env, "TILEFAN_LAMBDA_MEMORY_MARGIN", d.memory_margin, maximum=1.0),
        time_margin=_env_float(env, "TILEFAN_LAMBDA_TIME_MARGIN", d.time_margin, maximum=1.0),
        spot_hour_price=_env_float(env, "TILEFAN_SPOT_HOUR_PRICE", d.spot_hour_price),
        spot_max_workers=_env_int(env, "TILEFAN_SPOT_MAX_INSTANCES", d.spot_max_workers),
    )


@dataclass(frozen=True)
class SpotSettings:
    """The spot branch: its queue, the heartbeat contract, the fleet and the worker loop."""

    queue_url: str = ""
    dlq_url: str = ""
    heartbeat_s: int = 60  # the spot task's HeartbeatSeconds
    timeout_s: int = 21_600  # its TimeoutSeconds: queueing, boot and compute together
    max_instances: int = 4  # the stage's cap on live workers
    launch_template: str = ""
    fleet: str = "tilefan"
    subnets: tuple[str, ...] = ()
    imds_url: str = "http://169.254.169.254"
    idle_s: int = 300
    visibility_s: int = 120
    wait_s: int = 20
    interruption_poll_s: float = 5.0


def spot_settings(env: Mapping[str, str] | None = None) -> SpotSettings:
    env = os.environ if env is None else env
    d = SpotSettings()
    heartbeat = _env_int(env, "TILEFAN_SPOT_HEARTBEAT_S", d.heartbeat_s)
    timeout = _env_int(env, "TILEFAN_SPOT_TIMEOUT_S", d.timeout_s)
    if heartbeat >= timeout:
        raise InvalidSpecError("TILEFAN_SPOT_HEARTBEAT_S", f"must be less than TILEFAN_SPOT_TIMEOUT_S ({timeout})")
    wait = _env_int(env, "TILEFAN_WORKER_WAIT_S", d.wait_s)
    if wait > 20:
        raise InvalidSpecError("TILEFAN_WORKER_WAIT_S", f"SQS long-polls for at most 20 s, got {wait}")
    return SpotSettings(
        queue_url=env.get("TILEFAN_SPOT_QUEUE_URL", ""),
        dlq_url=env.get("TILEFAN_SPOT_DLQ_URL", ""),
        heartbeat_s=heartbeat,
        timeout_s=timeout,
        max_instances=_env_int(env, "TILEFAN_SPOT_MAX_INSTANCES", d.max_instances),
        launch_template=env.get("TILEFAN_SPOT_LAUNCH_TEMPLATE", ""),
        fleet=env.get("TILEFAN_SPOT_FLEET") or d.fleet,
        subnets=tuple(s.strip() for s in env.get("TILEFAN_SPOT_SUBNETS", "").split(",") if s.strip()),
        imds_url=env.get("TILEFAN_IMDS_URL") or d.imds_url,
        idle_s=_env_int(env, "TILEFAN_WORKER_IDLE_S", d.idle_s),
        visibility_s=_env_int(env, "TILEFAN_WORKER_VISIBILITY_S", d.visibility_s),
        wait_s=wait,
        interruption_poll_s=_env_float(env, "TILEFAN_WORKER_INTERRUPTION_POLL_S", d.interruption_poll_s),
    )


def build_capacity(settings: AwsSettings | None = None, session=None):  # type: ignore[no-untyped-def]
    """The EC2 adapter the capacity step launches spot workers with."""
    import boto3

    from tilefan.adapters.aws.ec2_capacity import Ec2SpotCapacity

    settings = settings or aws_settings()
    if not settings.spot.launch_template:
        raise InvalidSpecError("TILEFAN_SPOT_LAUNCH_TEMPLATE", "must be set to launch spot workers")
    session = session or boto3.session.Session(region_name=settings.region)
    return Ec2SpotCapacity(session.client("ec2"), settings.spot.launch_template, settings.spot.fleet,
                           settings.spot.subnets)


def build_worker(settings: AwsSettings | None = None, session=None, *, kernel: str = "auto",  # type: ignore[no-untyped-def]
                 name: str | None = None):
    """A spot worker over the AWS ports, the spot queue, Step Functions and IMDSv2."""
    import boto3

    from tilefan.adapters.aws.imds import Imds
    from tilefan.adapters.aws.sqs_queue import SqsTileQueue
    from tilefan.adapters.aws.task_tokens import TaskTokens
    from tilefan.domain import kernels
    from tilefan.errors import MetadataError
    from tilefan.pipeline import steps
    from tilefan.service.worker import Worker, WorkerOptions

    settings = settings or aws_settings()
    spot = settings.spot
    for value, name_ in ((spot.queue_url, "TILEFAN_SPOT_QUEUE_URL"), (spot.dlq_url, "TILEFAN_SPOT_DLQ_URL")):
        if not value:
            raise InvalidSpecError(name_, "must be set for tilefan worker")
    session = session or boto3.session.Session(region_name=settings.region)
    ports = build_aws_ports(settings, session=session)
    imds = Imds(spot.imds_url)
    if name is None:
        try:
            name = f"spot:{imds.instance_id()}"
        except MetadataError:
            import socket

            name = f"spot:{socket.gethostname()}"
    atoms_kernel = kernels.atoms_potential
    if kernel != "numpy":
        from tilefan.domain import fastkernels

        atoms_kernel = fastkernels.load() or kernels.atoms_potential
    worker_name = name

    def tile_fn(job_id: str, tile_id: int) -> bool:
        return steps.run_tile(ports, job_id, tile_id, worker=worker_name, route="spot", atoms_kernel=atoms_kernel)

    options = WorkerOptions(name=name, wait_s=spot.wait_s, visibility_s=spot.visibility_s, idle_s=spot.idle_s,
                            interruption_poll_s=spot.interruption_poll_s)
    return Worker(
        queue=SqsTileQueue(session.client("sqs"), spot.queue_url, spot.dlq_url),
        tokens=TaskTokens(session.client("stepfunctions")), jobs=ports.jobs, tile_fn=tile_fn, notices=imds,
        options=options,
    )

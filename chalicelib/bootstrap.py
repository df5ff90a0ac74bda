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

from chalicelib.adapters.localfs import LocalBlobStore
from chalicelib.adapters.sqlite_store import SqliteJobStore
from chalicelib.domain.spec import Limits
from chalicelib.errors import InvalidSpecError
from chalicelib.pipeline.ports import Ports


@dataclass(frozen=True)
class Config:
    backend: str = "embedded"
    home: Path = field(default_factory=lambda: Path.home() / ".tilefan")
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    kernel: str = "auto"
    limits: Limits = field(default_factory=Limits)


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
    )


def embedded_ports(home: Path) -> Ports:
    return Ports(blobs=LocalBlobStore(home / "blobs"), jobs=SqliteJobStore(home / "jobs.sqlite3"))


def build_embedded(config: Config, *, threaded: bool = False):  # type: ignore[no-untyped-def]
    """Ports and runner for the embedded backend (``threaded`` when run from a server)."""
    from chalicelib.adapters.pool_runner import LocalRunner, PoolSettings

    ports = embedded_ports(config.home)
    make_ports = functools.partial(embedded_ports, config.home)
    settings = PoolSettings(
        workers=config.workers, kernel=config.kernel, start_method="forkserver" if threaded else "fork"
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
    )


def build_aws_ports(settings: AwsSettings | None = None, session=None) -> Ports:  # type: ignore[no-untyped-def]
    """S3 and DynamoDB ports; boto3 clients are created here, on first use, never at import."""
    import boto3
    from botocore.config import Config as BotoConfig

    from chalicelib.adapters.dynamo_store import DynamoJobStore
    from chalicelib.adapters.s3_store import S3BlobStore

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

    from chalicelib.adapters.sfn_runner import StepFunctionsRunner

    settings = settings or aws_settings()
    session = session or boto3.session.Session(region_name=settings.region)
    return StepFunctionsRunner(session.client("stepfunctions"), settings.state_machine_arn, settings.region)


def build_service(config: Config | None = None):  # type: ignore[no-untyped-def]
    """The REST API's service over the configured backend."""
    from chalicelib.entrypoints.service import JobService

    config = config or load_config()
    if config.backend == "aws":
        from chalicelib.adapters.aws_runner import StepFunctionsJobRunner

        settings = aws_settings()
        ports = build_aws_ports(settings)
        runner = StepFunctionsJobRunner(build_aws_runner(settings), ports, settings.state_machine_arn)
        return JobService(ports, runner, config.limits)
    if config.backend != "embedded":
        raise InvalidSpecError("TILEFAN_BACKEND", f"must be embedded or aws, got {config.backend!r}")
    ports, local = build_embedded(config, threaded=True)
    return JobService(ports, local, config.limits)

"""The one place that reads configuration and wires the backend together.

Nothing else in tilefan reads environment variables: this module hands ``os.environ`` to
the parsers in ``tilefan.settings``. ``TILEFAN_BACKEND`` picks ``embedded`` (default) or
``aws``. Backend modules are imported inside the builders, so the CLI never loads boto3
and a Lambda never loads the process pool.
"""

from __future__ import annotations

import functools
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tilefan.adapters.embedded.localfs import LocalBlobStore, local_ports
from tilefan.adapters.embedded.sqlite_store import SqliteJobStore
from tilefan.errors import InvalidSpecError
from tilefan.pipeline.ports import Ports
from tilefan.settings import AwsSettings, Config, Env, SpotSettings, parse_aws_settings, parse_config

if TYPE_CHECKING:
    from tilefan.adapters.aws.ec2_capacity import Ec2SpotCapacity
    from tilefan.adapters.aws.sfn_runner import StepFunctionsRunner
    from tilefan.adapters.embedded.held_arrays import HeldArrays
    from tilefan.runtimes.embedded.scheduler import Scheduler
    from tilefan.runtimes.spot.worker import Worker, WorkerOptions
    from tilefan.service.core import JobCore

__all__ = ["AwsSettings", "Config", "SpotSettings", "api_authorizer", "aws_settings", "build_aws_ports",
           "build_aws_runner", "build_capacity", "build_core", "build_scheduler", "build_service", "build_worker",
           "embedded_ports", "hold_in_memory", "load_config", "remote_settings", "spot_worker_options"]


def load_config(env: Env | None = None) -> Config:
    """The embedded backend's and the REST API's configuration (from ``os.environ`` by default)."""
    return parse_config(os.environ if env is None else env)


def remote_settings(env: Env | None = None) -> tuple[str | None, str | None]:
    """``TILEFAN_ENDPOINT`` and ``TILEFAN_TOKEN``: a remote API for the CLI, and its token."""
    env = os.environ if env is None else env
    return env.get("TILEFAN_ENDPOINT") or None, env.get("TILEFAN_TOKEN") or None


def aws_settings(env: Env | None = None) -> AwsSettings:
    """The AWS backend's settings (from ``os.environ`` by default)."""
    return parse_aws_settings(os.environ if env is None else env)


def api_authorizer(env: Env | None = None) -> Any:
    """Who may call the REST API on AWS: IAM (SigV4) by default; a Cognito user pool when
    ``TILEFAN_COGNITO_USER_POOL_ARN`` is set where the stage is packaged. ``tilefan serve``
    ignores it (its own Host and token check applies)."""
    from chalice import CognitoUserPoolAuthorizer, IAMAuthorizer

    pool = (os.environ if env is None else env).get("TILEFAN_COGNITO_USER_POOL_ARN", "")
    if pool:
        return CognitoUserPoolAuthorizer("tilefan-users", provider_arns=[pool])
    return IAMAuthorizer()


# --------------------------------------------------------------------------- embedded


def hold_in_memory(home: Path, max_output_bytes: int) -> HeldArrays:
    """Arrays a temporary ``home`` keeps in this process's memory (``held_arrays``): hand them
    to ``build_core`` as ``held``; outputs over ``max_output_bytes`` stay files."""
    from tilefan.adapters.embedded.held_arrays import HeldArrays

    return HeldArrays(home, max_output_bytes=max_output_bytes)


def embedded_ports(home: Path, held: HeldArrays | None = None) -> Ports:
    """The home's ports; ``held``: inputs and outputs kept in this process's memory (``held_arrays``)."""
    jobs = SqliteJobStore(home / "jobs.sqlite3")
    if held is not None:
        from tilefan.adapters.embedded.held_arrays import HeldBlobStore

        blobs = HeldBlobStore(home / "blobs", held)
        return replace(local_ports(blobs, jobs), in_place=blobs, memory_outputs=blobs)
    return local_ports(LocalBlobStore(home / "blobs"), jobs)


def build_scheduler(config: Config, *, threaded: bool = False, only: set[str] | None = None,
                    held: HeldArrays | None = None) -> Scheduler:
    """The home's scheduler: its SQLite queue, one pool of ``config.workers`` processes and
    the home's lease (``only``: run just these jobs, as the CLI does; ``held``: inputs and
    outputs in this process's memory, which its pool's forked workers share)."""
    from tilefan.adapters.embedded.lease import FileLease
    from tilefan.runtimes.embedded.scheduler import PoolSettings, Scheduler

    ports = embedded_ports(config.home, held)
    assert isinstance(ports.jobs, SqliteJobStore)
    settings = PoolSettings(
        workers=config.workers, kernel=config.kernel, start_method="forkserver" if threaded else "fork",
        policy=config.route_policy,
    )
    # A CLI interrupted with Ctrl-C should not wait long for its tiles in flight.
    # Every job here is the home's one owner's: the owner's cap on jobs at once bounds how
    # many run, and the rest wait in the queue.
    max_jobs = min(max(2, config.workers), config.limits.max_concurrent_jobs)
    return Scheduler(ports, functools.partial(embedded_ports, config.home, held), settings, ports.jobs,
                     FileLease(config.home / "scheduler.lock"), only=only, grace_s=10.0 if only is None else 2.0,
                     max_jobs=max_jobs)


def build_core(config: Config | None = None, *, one_shot: bool = False,
               held: HeldArrays | None = None) -> JobCore:
    """The application core over the configured backend, for every door.

    A server's core (``tilefan serve``, the Chalice app, the local job commands) starts
    each job on its runner in the background. A ``one_shot`` core (``tilefan run`` and
    ``resume``, the Python API) runs each job it is asked to here, in this process, on the
    home's scheduler for just that job; if a server holds the home's lease, that server
    runs it and the core follows its record. ``held`` (one-shot only, in a home no server
    knows of: the Python API's temporary one) keeps the job's inputs and outputs in this
    process's memory instead of in files."""
    from tilefan.service.core import JobCore

    config = config or load_config()
    # A one-shot run is always the embedded backend's, in the configured home.
    if not one_shot and config.backend == "aws":
        from tilefan.runtimes.stepfunctions.job_runner import StepFunctionsJobRunner

        settings = aws_settings()
        ports = build_aws_ports(settings)
        runner = StepFunctionsJobRunner(build_aws_runner(settings), ports, settings.state_machine_arn)
        # Step Functions keeps no queue of its own and dispatches in AWS, not in this process.
        return JobCore(ports, runner, config.limits, policy=settings.route_policy, places=None, serving=None,
                       http_limits=config.http_limits)
    if not one_shot and config.backend != "embedded":
        raise InvalidSpecError("TILEFAN_BACKEND", f"must be embedded or aws, got {config.backend!r}")
    from tilefan.domain.records import LOCAL_OWNER

    # A home has one principal, so every job is LOCAL_OWNER's, whichever door submitted it.
    # A server's caller starts the scheduler (``JobService.serving``) and stops it on shutdown;
    # a one-shot core's own scheduler runs no job by itself (``only`` is empty): each job
    # runs on a scheduler of its own, made when it runs.
    held = held if one_shot else None
    scheduler = build_scheduler(config, threaded=not one_shot, only=set() if one_shot else None, held=held)
    here = functools.partial(_scheduler_of_one, config, held) if one_shot else None
    return JobCore(scheduler.ports, scheduler, config.limits, policy=config.route_policy, principal=LOCAL_OWNER,
                   queue=True, places=scheduler, serving=None if one_shot else scheduler, here=here,
                   http_limits=config.http_limits)


def _scheduler_of_one(config: Config, held: HeldArrays | None, job_id: str) -> Scheduler:
    return build_scheduler(config, only={job_id}, held=held)


def build_service(config: Config | None = None) -> JobCore:
    """The REST API's core: a server's ``build_core``."""
    return build_core(config)


# --------------------------------------------------------------------------- AWS


def _session(settings: AwsSettings, session: Any) -> Any:
    """The boto3 session to build clients from: the caller's, or one in the settings' region."""
    if session is not None:
        return session
    import boto3

    return boto3.session.Session(region_name=settings.region)


def build_aws_ports(settings: AwsSettings | None = None, session: Any = None) -> Ports:
    """S3 and DynamoDB ports; boto3 clients are created here, on first use, never at import."""
    from botocore.config import Config as BotoConfig

    from tilefan.adapters.aws.dynamo_items import SHARDS
    from tilefan.adapters.aws.dynamo_store import DynamoJobStore
    from tilefan.adapters.aws.s3_store import S3BlobStore, s3_ports
    from tilefan.pipeline.assemble import REQUESTS_IN_FLIGHT

    settings = settings or aws_settings()
    session = _session(settings, session)
    # SigV4 and the regional endpoint: presigned upload URLs are otherwise signed with SigV2.
    # A connection for each request the reducer has in flight and each of the store's
    # streams (botocore keeps 10 otherwise).
    s3 = session.client("s3", config=BotoConfig(signature_version="s3v4", s3={"addressing_style": "virtual"},
                                                max_pool_connections=REQUESTS_IN_FLIGHT + settings.s3_streams))
    dynamodb = session.client("dynamodb", config=BotoConfig(max_pool_connections=SHARDS))
    return s3_ports(S3BlobStore(s3, settings.bucket, streams=settings.s3_streams),
                    DynamoJobStore(dynamodb, settings.table, ttl_days=settings.ttl_days))


def build_aws_runner(settings: AwsSettings | None = None, session: Any = None) -> StepFunctionsRunner:
    from tilefan.adapters.aws.sfn_runner import StepFunctionsRunner

    settings = settings or aws_settings()
    client = _session(settings, session).client("stepfunctions")
    return StepFunctionsRunner(client, settings.state_machine_arn, settings.region)


def build_capacity(settings: AwsSettings | None = None, session: Any = None) -> Ec2SpotCapacity:
    """The EC2 adapter the capacity step launches spot workers with."""
    from tilefan.adapters.aws.ec2_capacity import Ec2SpotCapacity

    settings = settings or aws_settings()
    if not settings.spot.launch_template:
        raise InvalidSpecError("TILEFAN_SPOT_LAUNCH_TEMPLATE", "must be set to launch spot workers")
    session = _session(settings, session)
    return Ec2SpotCapacity(session.client("ec2"), settings.spot.launch_template, settings.spot.fleet,
                           settings.spot.subnets)


def spot_worker_options(spot: SpotSettings, name: str) -> WorkerOptions:
    """The worker loop's options from the spot settings (``TILEFAN_WORKER_*``)."""
    from tilefan.runtimes.spot.worker import WorkerOptions

    return WorkerOptions(name=name, wait_s=spot.wait_s, visibility_s=spot.visibility_s, idle_s=spot.idle_s,
                         interruption_poll_s=spot.interruption_poll_s, tile_limit_s=spot.tile_limit_s)


def build_worker(
    settings: AwsSettings | None = None, session: Any = None, *, kernel: str = "auto", name: str | None = None,
) -> Worker:
    """A spot worker over the AWS ports, the spot queue, Step Functions and IMDSv2.

    ``kernel`` is ``TILEFAN_KERNEL``: ``compiled`` without the C kernel refuses to start. The
    worker runs one tile at a time, so each tile computes on every CPU of the instance
    (``tilefan.compute.threads``, whose default budget is all of them).
    """
    from tilefan.adapters.aws.imds import Imds
    from tilefan.adapters.aws.sqs_queue import SqsTileQueue
    from tilefan.adapters.aws.task_tokens import TaskTokens
    from tilefan.compute.kernel_choice import choose_atoms_kernel
    from tilefan.errors import MetadataError
    from tilefan.pipeline.tile import run_tile
    from tilefan.runtimes.spot.worker import Worker

    settings = settings or aws_settings()
    spot = settings.spot
    for value, name_ in ((spot.queue_url, "TILEFAN_SPOT_QUEUE_URL"), (spot.dlq_url, "TILEFAN_SPOT_DLQ_URL")):
        if not value:
            raise InvalidSpecError(name_, "must be set for tilefan worker")
    atoms_kernel = choose_atoms_kernel(kernel)
    session = _session(settings, session)
    ports = build_aws_ports(settings, session=session)
    imds = Imds(spot.imds_url)
    if name is None:
        try:
            name = f"spot:{imds.instance_id()}"
        except MetadataError:
            import socket

            name = f"spot:{socket.gethostname()}"
    worker_name = name

    def tile_fn(job_id: str, tile_id: int) -> bool:
        return run_tile(ports, job_id, tile_id, worker=worker_name, route="spot", atoms_kernel=atoms_kernel).recorded

    options = spot_worker_options(spot, name)
    return Worker(
        queue=SqsTileQueue(session.client("sqs"), spot.queue_url, spot.dlq_url),
        tokens=TaskTokens(session.client("stepfunctions")), jobs=ports.jobs, tile_fn=tile_fn, notices=imds,
        options=options,
    )

"""The job commands on this machine's job store: ``jobs``, ``status``, ``cancel``, ``result``, ``report``.

They read and write the same store as ``tilefan run`` (``TILEFAN_HOME``), so a job run in
one terminal can be watched, cancelled or reported on from another.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tilefan.entrypoints.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    add_endpoint,
    endpoint_of,
    print_job,
    print_jobs,
    write_report_folder,
)

if TYPE_CHECKING:
    from tilefan.service.core import JobCore

JOB_COMMANDS = ("jobs", "status", "cancel", "result", "report")


def add_job_commands(sub: Any) -> None:
    """Add the job commands to the ``tilefan`` parser's subcommands."""
    jobs = sub.add_parser("jobs", help="list recent jobs, newest first")
    jobs.add_argument("--limit", type=int, default=20, help="how many (1-100, default 20)")
    jobs.add_argument("--json", action="store_true", help="print the list as JSON")
    for name, text in (("status", "show one job"), ("cancel", "cancel a QUEUED or RUNNING job")):
        p = sub.add_parser(name, help=text)
        p.add_argument("job_id")
        p.add_argument("--json", action="store_true", help="print the job record as JSON")
    result = sub.add_parser("result", help="copy a job's array result (C, or the atoms field) to a file")
    result.add_argument("job_id")
    result.add_argument("--out", required=True, help="where to write it (.npy; an atoms field also as a map: "
                                                     ".dx, .mrc or .ccp4)")
    report = sub.add_parser("report", help="write logs.csv, error.csv, performance.txt and runtime.png")
    report.add_argument("job_id")
    report.add_argument("--out", required=True, help="the folder to write into")
    for p in (jobs, sub.choices["status"], sub.choices["cancel"], result, report):
        add_endpoint(p)


def run_job_command(args: argparse.Namespace) -> int:
    from tilefan.errors import JobNotFoundError, TilefanError

    try:
        endpoint, token = endpoint_of(args)
        if endpoint:
            from tilefan.entrypoints.sdk.client import Client

            client = Client(endpoint, token=token)
            return job_command(args, client, lambda job_id, out: _remote_result(client, job_id, out))
        from tilefan.bootstrap import build_service, load_config

        service = build_service(load_config())
        return job_command(args, service, lambda job_id, out: _result(service, job_id, out))
    except JobNotFoundError:
        print(f"error: no job {args.job_id} here", file=sys.stderr)
        return EXIT_INVALID
    except TilefanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def job_command(args: argparse.Namespace, jobs: Any, fetch_result: Callable[[str, Path], int]) -> int:
    """One job command over ``jobs``: this machine's JobService or a remote Client, which
    answer ``list``, ``get``, ``cancel`` and ``report`` alike; only fetching a result differs."""
    if args.command == "jobs":
        return print_jobs(jobs.list(args.limit), args.json)
    if args.command == "status":
        return print_job(jobs.get(args.job_id), args.json)
    if args.command == "cancel":
        return print_job(jobs.cancel(args.job_id), args.json)
    if args.command == "result":
        return fetch_result(args.job_id, Path(args.out))
    return write_report_folder(jobs.report(args.job_id), Path(args.out))


def _remote_result(client: Any, job_id: str, out: Path) -> int:
    from tilefan.adapters.maps import map_format

    doc = client.get(job_id)
    if doc["kind"] != "atoms":
        path = client.result(job_id, out)
    elif map_format(out) is None:
        path = client.field(job_id, out)
    else:
        # Converted here, from the .npy the API streams (a presigned GET on AWS): any size.
        staged = out.with_name(f".{out.name}.{doc['job_id']}.npy")
        try:
            client.field(job_id, staged)
            path = _write_map(doc, staged, out)
        finally:
            staged.unlink(missing_ok=True)
    print(f"{path} ({Path(path).stat().st_size} bytes)")
    return EXIT_OK


def _write_map(doc: dict[str, Any], source: Path, out: Path) -> Path:
    """The atoms field ``source`` (.npy) as the map ``out`` names (.dx, .mrc, .ccp4)."""
    import numpy as np

    from tilefan.adapters.maps import write_map

    spec = doc["spec"]
    return write_map(out, np.load(source, mmap_mode="r"), tuple(spec["origin"]), float(spec["spacing"]))


def _result(core: JobCore, job_id: str, out: Path) -> int:
    """Copy (or convert to the map ``out`` names) the file the core says holds the result;
    a job without one is the core's NotFoundError, which ``run_job_command`` prints."""
    from tilefan.adapters.maps import map_format

    doc, source = core.result_file(job_id)
    if doc["kind"] == "atoms" and map_format(out) is not None:
        _write_map(doc, source, out)
    else:
        shutil.copyfile(source, out)
    print(f"{out} ({out.stat().st_size} bytes)")
    return EXIT_OK

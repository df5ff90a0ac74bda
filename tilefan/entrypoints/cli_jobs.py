"""The job commands on this machine's job store: ``jobs``, ``status``, ``cancel``, ``result``, ``report``.

They read and write the same store as ``tilefan run`` (``TILEFAN_HOME``), so a job run in
one terminal can be watched, cancelled or reported on from another.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from tilefan.entrypoints.cli_run import EXIT_FAILED, EXIT_INVALID, EXIT_OK

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
    result.add_argument("--out", required=True, help="where to write it (.npy)")
    report = sub.add_parser("report", help="write logs.csv, error.csv, performance.txt and runtime.png")
    report.add_argument("job_id")
    report.add_argument("--out", required=True, help="the folder to write into")
    for p in (jobs, sub.choices["status"], sub.choices["cancel"], result, report):
        add_endpoint(p)


def add_endpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", metavar="URL", help="a deployed API or a remote tilefan serve "
                                                     "(default: TILEFAN_ENDPOINT; unset: this machine)")


def _age(started: float | None) -> str:
    """
    >>> _age(0.0)[-4:]
    'ago)'
    >>> _age(None)
    ''
    """
    if started is None:
        return ""
    seconds = max(time.time() - started, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"({seconds / size:.0f} {unit} ago)"
    return f"({seconds:.0f} s ago)"


def _line(doc: dict[str, Any]) -> str:
    prog = doc["progress"]
    wall = (doc.get("timings") or {}).get("wall_s")
    took = f"{wall:8.2f} s" if wall is not None else " " * 10
    return (f"{doc['job_id']}  {doc['kind']:<6}  {doc['status']:<9}  {prog['tiles_done']:>5}/{prog['tiles_total']:<5} "
            f"tiles  {prog['percent']:5.1f}%  {took}  {_age((doc.get('timings') or {}).get('started_at'))}")


def run_job_command(args: argparse.Namespace) -> int:
    from tilefan.entrypoints.cli_remote import endpoint_of, remote_job_command
    from tilefan.errors import JobNotFoundError, TilefanError

    try:
        endpoint, token = endpoint_of(args)
        if endpoint:
            from tilefan.entrypoints.client import Client

            return remote_job_command(args, Client(endpoint, token=token))
        from tilefan.bootstrap import build_service, load_config

        return _local(args, build_service(load_config()))
    except JobNotFoundError:
        print(f"error: no job {args.job_id} here", file=sys.stderr)
        return EXIT_INVALID
    except TilefanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def print_jobs(page: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(page))
    elif not page["jobs"]:
        print("no jobs yet: start one with tilefan run")
    else:
        print("\n".join(_line(d) for d in page["jobs"]))
    return EXIT_OK


def print_job(doc: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(doc))
        return EXIT_OK
    print(_line(doc))
    if doc.get("error"):
        print(f"  error: {doc['error'].get('message')}")
    for key, value in (doc.get("result") or {}).items():
        if key != "verification":
            print(f"  {key}: {value}")
    return EXIT_OK


def write_report_folder(report: dict[str, Any], out: Path) -> int:
    from tilefan.entrypoints.report_files import write_report

    files = write_report(report, out)
    for f in files:
        print(f)
    if not any(f.name == "runtime.png" for f in files):
        print("runtime.png needs the report extra: pip install 'tilefan[report]'", file=sys.stderr)
    return EXIT_OK


def _local(args: argparse.Namespace, service: Any) -> int:
    if args.command == "jobs":
        return print_jobs(service.list(args.limit), args.json)
    if args.command == "status":
        return print_job(service.get(args.job_id), args.json)
    if args.command == "cancel":
        return print_job(service.cancel(args.job_id), args.json)
    if args.command == "result":
        return _result(service, args.job_id, Path(args.out))
    return write_report_folder(service.report(args.job_id), Path(args.out))


def _result(service: Any, job_id: str, out: Path) -> int:
    doc = service.get(job_id)
    result = doc.get("result") or {}
    source = result.get("output") or result.get("field")
    if doc["status"] != "SUCCEEDED" or not source:
        what = "has no array result (run atoms with --field-out to keep the field)" if doc["status"] == "SUCCEEDED" \
            else f"is {doc['status']}"
        print(f"error: job {job_id} {what}", file=sys.stderr)
        return EXIT_FAILED
    shutil.copyfile(service.ports.blobs.path(source), out)
    print(f"{out} ({out.stat().st_size} bytes)")
    return EXIT_OK

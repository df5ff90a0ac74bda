"""The CLI against a remote API (``--endpoint URL`` or ``TILEFAN_ENDPOINT``): the same
commands and progress bar as on this machine, by polling ``tilefan.Client``.

Local input files are uploaded first (``POST /uploads``) and named in the spec by what the
API answers; the result is downloaded from ``GET /jobs/{id}/result`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tilefan.entrypoints.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    field_message,
    summary,
)
from tilefan.entrypoints.sdk.client import Client


def _upload_inputs(client: Client, raw: dict[str, Any]) -> dict[str, Any]:
    uploaded: dict[str, dict[str, Any]] = {}  # a molecule that is both the atoms and --around goes once
    for role in ("a", "b", "atoms", "around"):
        value = raw.get(role)
        if isinstance(value, dict) and value.get("file") is not None:
            path = value["file"]
            if path not in uploaded:
                uploaded[path] = client.upload(path)
            raw[role] = {**value, **uploaded[path]} if role == "around" else uploaded[path]
    return raw


def remote_run(args: argparse.Namespace, raw: dict[str, Any], client: Client) -> int:
    """Submit, follow with a progress bar, download the result; exit codes as for a local run."""
    from tilefan.entrypoints.report.progress import throughput_line

    if raw.pop("field_out", None) is not None:
        print("error: --field-out: not available with --endpoint; the field stays on the server", file=sys.stderr)
        return EXIT_INVALID
    out = raw.pop("out", None)
    doc = client.submit(_upload_inputs(client, raw))
    try:
        final = client.wait(doc["job_id"], progress=sys.stderr.isatty(), poll_s=0.25)
    except KeyboardInterrupt:
        client.cancel(doc["job_id"])
        print(f"\ninterrupted: job {doc['job_id']} cancelled", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(final))
    if final.get("error"):
        err = final["error"]
        print(f"error: {field_message(err.get('field'), err.get('message', ''))}", file=sys.stderr)
        return EXIT_INVALID if err.get("code") == "invalid_input" else EXIT_FAILED
    if final["status"] != "SUCCEEDED":
        print(f"error: job {final['job_id']} {final['status']}", file=sys.stderr)
        return EXIT_FAILED
    if out is not None:
        client.result(final["job_id"], out)
        (final.get("result") or {})["output"] = out
    if not args.json:
        report = client.report(final["job_id"])["summary"]
        summary(final, sys.stdout, report.get("route_counts"))
        line = throughput_line(final, report.get("tile_seconds_total"))
        if line:
            print(line)
    return EXIT_OK

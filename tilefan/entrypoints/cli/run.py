"""``tilefan run``: build the spec from the flags, run it here with a progress bar, summarise.

``--dry-run`` prints the plan as a table (``--json`` keeps the whole manifest).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from tilefan.entrypoints.cli.common import EXIT_FAILED, EXIT_INVALID, EXIT_OK, FLAG_OF, field_message, summary

if TYPE_CHECKING:
    from tilefan.service.core import DryRun


def _abs(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(path)


def raw_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON-shaped spec the REST API would receive for the same job."""
    raw: dict[str, Any] = {"kind": args.kind, "verify": bool(args.verify)}
    if args.tile is not None:
        raw["tile"] = args.tile
    if args.route is not None:
        raw["route"] = args.route
    if args.kind in ("matmul", "add"):
        for role in ("a", "b"):
            path, shape = getattr(args, role), getattr(args, f"shape_{role}")
            if path is not None and shape is not None:
                raise _flag_error(f"--{role}", f"give either --{role} or --shape-{role}, not both")
            if path is not None:
                raw[role] = {"file": _abs(path)}
            elif shape is not None:
                raw[role] = {"shape": shape}
            else:
                raise _flag_error(f"--{role}", f"is required: give --{role} FILE.npy or --shape-{role} NxM")
        if args.seed is not None:
            raw["seed"] = args.seed
        if args.dtype is not None:
            raw["dtype"] = args.dtype
        if args.out is not None:
            raw["out"] = _abs(args.out)
        return raw
    if args.grid is not None:
        raw["grid"] = args.grid if "x" in args.grid.lower() else _maybe_int(args.grid)
    if args.atoms_file is not None and args.atoms is not None:
        raise _flag_error("--atoms", "give either --atoms N or --atoms-file, not both")
    if args.atoms_file is not None:
        raw["atoms"] = {"file": _abs(args.atoms_file)}
    elif args.atoms is not None:
        raw["atoms"] = {"count": _maybe_int(args.atoms), "seed": _maybe_int(args.seed or "0")}
    _around(args, raw)
    for name in ("spacing", "origin", "softening", "precision", "units"):
        if getattr(args, name) is not None:
            raw[name] = getattr(args, name)
    if args.field_out is not None:
        raw["field_out"] = _abs(args.field_out)
    return raw


def _around(args: argparse.Namespace, raw: dict[str, Any]) -> None:
    """``--around FILE --margin M``: the grid placed around FILE, which is also the atoms unless others are given."""
    if args.around is None:
        if args.margin is not None:
            raise _flag_error("--margin", "only places a grid with --around FILE")
        return
    if args.margin is None:
        raise _flag_error("--margin", "is required with --around: the Å kept beyond the atoms, e.g. --margin 8")
    # Named as around.file even when it is the atoms too, so an error in it names --around.
    raw["around"] = {"margin": args.margin, "file": _abs(args.around)}
    if "atoms" not in raw:
        raw["atoms"] = {"file": _abs(args.around)}


def _maybe_int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


class _FlagError(Exception):
    def __init__(self, flag: str, message: str) -> None:
        super().__init__(f"{flag}: {message}")


def _flag_error(flag: str, message: str) -> _FlagError:
    return _FlagError(flag, message)


def cmd_run(args: argparse.Namespace) -> int:
    from tilefan.bootstrap import build_core, load_config
    from tilefan.entrypoints.cli.paths import PathError, refuse_output_over_input, refuse_unwritable_output
    from tilefan.entrypoints.report.field_maps import discard, finish_map, map_check, stage_map
    from tilefan.entrypoints.report.progress import JobProgress, throughput_line
    from tilefan.errors import InvalidSpecError, TilefanError
    from tilefan.pipeline.error_codec import plain_message

    try:
        raw = raw_spec(args)
        refuse_output_over_input(raw, FLAG_OF)
        refuse_unwritable_output(raw, FLAG_OF)
        from tilefan.entrypoints.cli.common import endpoint_of

        endpoint, token = endpoint_of(args)
        if endpoint and not args.dry_run:
            from tilefan.entrypoints.cli.remote import remote_run
            from tilefan.entrypoints.sdk.client import Client

            return remote_run(args, raw, Client(endpoint, token=token))
        config = load_config()
        if args.workers is not None:
            if args.workers < 1:
                raise _flag_error("--workers", f"must be at least 1, got {args.workers}")
            from dataclasses import replace

            config = replace(config, workers=args.workers)
        core = build_core(config, one_shot=True)
        if args.dry_run:
            return _dry_run(core.plan_only(raw), config.workers, config.kernel, args.json)
        target = stage_map(raw)
        # The home's scheduler runs it here, unless a server holds the home's lease: then
        # that server runs it (with the cores it already uses) and this just follows it.
        record = core.submit_here(raw, check=None if target is None else map_check(target))
    except (_FlagError, PathError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except InvalidSpecError as exc:
        print(f"error: {field_message(exc.field, exc.message)}", file=sys.stderr)
        return EXIT_INVALID
    except TilefanError as exc:
        # Refused by a remote API, or over the owner's cap on jobs at once (local or remote):
        # the user's to fix, as bad input is.
        if exc.code in ("invalid_input", "too_many_jobs"):
            print(f"error: {field_message(getattr(exc, 'field', None), str(exc))}", file=sys.stderr)
            return EXIT_INVALID
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    bar = JobProgress(record.kind, file=sys.stderr, disable=not sys.stderr.isatty())
    try:
        final = core.run_here(record.job_id, on_progress=bar.update)
    except KeyboardInterrupt:
        # The core cancelled it, so the record says so and the partial output is removed.
        if target is not None:
            discard(target)
        print(f"\ninterrupted: job {record.job_id} cancelled, nothing written", file=sys.stderr)
        return 130
    finally:
        bar.close()
    doc = final.to_dict()
    if target is not None:
        doc = finish_map(target, doc)
    if args.json:
        print(json.dumps(doc))
    if final.error:
        err = final.error
        print(f"error: {field_message(err.get('field'), plain_message(err))}", file=sys.stderr)
        return EXIT_INVALID if err.get("code") == "invalid_input" else EXIT_FAILED
    if not args.json:
        report = core.local_report(record.job_id)["summary"]
        summary(doc, sys.stdout, report["route_counts"])
        line = throughput_line(doc, report["tile_seconds_total"])
        if line:
            print(line)
    return EXIT_OK


def _dry_run(dry: DryRun, workers: int, kernel: str, as_json: bool) -> int:
    """``--dry-run``: the plan as a table, with its time here and its AWS cost (``--json``: the manifest)."""
    if as_json:
        print(json.dumps(dry.manifest, indent=2))
    else:
        from tilefan.entrypoints.report.plan_table import plan_table, time_here

        print(plan_table(dry.manifest, time_here(dry.plan, dry.spec, workers, kernel)))
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    """Finish a job a stopped server or run left QUEUED or RUNNING, from its recorded tiles."""
    from tilefan.entrypoints.cli.resume import resume
    from tilefan.errors import JobNotFoundError
    from tilefan.pipeline.error_codec import plain_message

    try:
        final, core = resume(args.job_id)
    except JobNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    doc = final.to_dict()
    if args.json:
        print(json.dumps(doc))
    if final.error:
        print(f"error: {field_message(final.error.get('field'), plain_message(final.error))}", file=sys.stderr)
        return EXIT_FAILED
    if doc["status"] != "SUCCEEDED":
        print(f"job {args.job_id} is {doc['status']}", file=sys.stderr)
        return EXIT_FAILED
    if not args.json:
        summary(doc, sys.stdout, core.local_report(args.job_id)["summary"]["route_counts"])
    return EXIT_OK

"""``tilefan run``: build the spec from the flags, run it here with a progress bar, summarise.

``--dry-run`` prints the plan as a table (``--json`` keeps the whole manifest).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2

# Spec field → the flag a CLI user typed, so errors name what they can fix.
FLAG_OF = {
    "a": "--a", "a.file": "--a", "a.shape": "--shape-a", "a.seed": "--seed", "a.dtype": "--dtype",
    "b": "--b", "b.file": "--b", "b.shape": "--shape-b", "b.seed": "--seed", "b.dtype": "--dtype",
    "seed": "--seed", "dtype": "--dtype", "out": "--out", "tile": "--tile", "grid": "--grid",
    "atoms": "--atoms", "atoms.count": "--atoms", "atoms.seed": "--seed", "atoms.file": "--atoms-file",
    "origin": "--origin", "spacing": "--spacing", "softening": "--softening",
    "precision": "--precision", "field_out": "--field-out", "route": "--route",
}


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
    for name in ("spacing", "origin", "softening", "precision"):
        if getattr(args, name) is not None:
            raw[name] = getattr(args, name)
    if args.field_out is not None:
        raw["field_out"] = _abs(args.field_out)
    return raw


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


def field_message(field: str | None, message: str) -> str:
    flag = FLAG_OF.get(field or "", field)
    return f"{flag}: {message}" if flag else message


def _summary(record: dict[str, Any], out: TextIO, routes: dict[str, int] | None = None) -> None:
    status = record["status"]
    wall = record["timings"].get("wall_s")
    took = f" in {wall:.2f} s" if wall is not None else ""
    prog = record["progress"]
    print(f"job {record['job_id']} {record['kind']}: {status}{took} ({tile_routes(prog['tiles_total'], routes)})",
          file=out)
    result = record.get("result") or {}
    if record["kind"] == "atoms" and result:
        i, j, k = result["min_index"]
        x, y, z = result["min_point"]
        print(f"  minimum φ = {result['min_value']:.10g} at index ({i}, {j}, {k}), point ({x:g}, {y:g}, {z:g})",
              file=out)
        if result.get("field"):
            print(f"  field written to {result['field']}", file=out)
    elif result:
        shape = "x".join(str(n) for n in result["shape"])
        print(f"  C: {shape} {result['dtype']} → {result['output']}", file=out)
        sums = result["checksums"]
        print(f"  checksums: sum={sums['sum']:.10g} frobenius={sums['frobenius']:.10g}", file=out)
    check = result.get("verification")
    if check:
        verdict = "verified" if check["passed"] else "VERIFICATION FAILED"
        detail = {
            "freivalds": lambda c: f"Freivalds, {c['rounds']} rounds, worst residual "
                                   f"{c['worst_residual_over_bound']:.2g} of the rounding bound",
            "exact": lambda c: f"exact comparison, {c['mismatches']} mismatches",
            "sampled": lambda c: f"{c['samples']} sampled points recomputed in float64, "
                                 f"minimum within {c['min_error']:.2g}",
        }[check["method"]](check)
        print(f"  {verdict}: {detail}", file=out)


def tile_routes(total: int, routes: dict[str, int] | None) -> str:
    """
    >>> tile_routes(16, {"lambda": 12, "spot": 4})
    '16 tiles: 12 lambda, 4 spot'
    >>> tile_routes(6, None)
    '6 tiles'
    """
    counts = ", ".join(f"{n} {route}" for route, n in sorted((routes or {}).items()) if n)
    return f"{total} tiles: {counts}" if counts else f"{total} tiles"


def cmd_run(args: argparse.Namespace) -> int:
    from tilefan.bootstrap import build_embedded, load_config
    from tilefan.domain.plan import plan
    from tilefan.entrypoints.progress import JobProgress, throughput_line
    from tilefan.errors import InvalidSpecError, TilefanError
    from tilefan.pipeline.error_codec import plain_message
    from tilefan.pipeline.report import tile_report
    from tilefan.pipeline.submit import admit, submit_job

    try:
        raw = raw_spec(args)
        from tilefan.entrypoints.cli_remote import endpoint_of

        endpoint, token = endpoint_of(args)
        if endpoint and not args.dry_run:
            from tilefan.entrypoints.cli_remote import remote_run
            from tilefan.entrypoints.client import Client

            return remote_run(args, raw, Client(endpoint, token=token))
        config = load_config()
        if args.workers is not None:
            if args.workers < 1:
                raise _flag_error("--workers", f"must be at least 1, got {args.workers}")
            from dataclasses import replace

            config = replace(config, workers=args.workers)
        ports, runner = build_embedded(config)
        if args.dry_run:
            spec = admit(ports, raw, config.limits, config.route_policy)
            manifest = plan("dry-run", spec, config.route_policy).manifest()
            if args.json:
                print(json.dumps(manifest, indent=2))
            else:
                from tilefan.entrypoints.plan_table import plan_table

                print(plan_table(manifest, config.workers))
            return EXIT_OK
        record = submit_job(ports, raw, limits=config.limits, policy=config.route_policy)
    except _FlagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except InvalidSpecError as exc:
        print(f"error: {field_message(exc.field, exc.message)}", file=sys.stderr)
        return EXIT_INVALID
    except TilefanError as exc:
        if exc.code == "invalid_input":  # refused by a remote API
            print(f"error: {field_message(getattr(exc, 'field', None), str(exc))}", file=sys.stderr)
            return EXIT_INVALID
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    bar = JobProgress(record.kind, file=sys.stderr, disable=not sys.stderr.isatty())
    try:
        final = runner.run(record.job_id, on_progress=bar.update)
    except KeyboardInterrupt:
        # Cancel so the record says so and the partial output is removed.
        runner.cancel(record.job_id)
        print(f"\ninterrupted: job {record.job_id} cancelled, nothing written", file=sys.stderr)
        return 130
    finally:
        bar.close()
    doc = final.to_dict()
    if args.json:
        print(json.dumps(doc))
    if final.error:
        err = final.error
        print(f"error: {field_message(err.get('field'), plain_message(err))}", file=sys.stderr)
        return EXIT_INVALID if err.get("code") == "invalid_input" else EXIT_FAILED
    if not args.json:
        summary = tile_report(ports, record.job_id)["summary"]
        _summary(doc, sys.stdout, summary["route_counts"])
        line = throughput_line(doc, summary["tile_seconds_total"])
        if line:
            print(line)
    return EXIT_OK



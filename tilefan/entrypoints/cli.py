"""The ``tilefan`` command: the embedded backend's front door (``run``, ``serve``, ``worker``).

Exit codes: 0 success, 1 the job failed, 2 invalid input. Invalid input gets one line on
stderr naming the flag, and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

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


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a single line, as every other invalid input does."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INVALID, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tilefan", description="Run big numeric jobs as a tiled fan-out.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a job on this machine and wait for it")
    kinds = run.add_subparsers(dest="kind", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--tile", help="tile edge N (N×N blocks; N×N×N for atoms)")
        p.add_argument("--verify", action="store_true", help="check the result (Freivalds / exact / sampled)")
        p.add_argument("--json", action="store_true", help="print the final job record as JSON")
        p.add_argument("--dry-run", action="store_true", help="print the plan and run nothing")
        p.add_argument("--workers", type=int, help="pool size (default: the number of cores)")
        p.add_argument("--route", help="auto (default), lambda or spot: where tiles run on AWS; recorded here, "
                                       "where every tile runs in the local pool")

    for kind in ("matmul", "add"):
        p = kinds.add_parser(kind, help="C = A·B" if kind == "matmul" else "C = A + B")
        p.add_argument("--a", help="A as a .npy file")
        p.add_argument("--b", help="B as a .npy file")
        p.add_argument("--shape-a", help="random A of this shape, e.g. 3000x2000")
        p.add_argument("--shape-b", help="random B of this shape")
        p.add_argument("--seed", help="seed of the random inputs (default 0)")
        p.add_argument("--dtype", help="float32 or float64 for random inputs (default float64)")
        p.add_argument("--out", help="write C here (.npy)")
        common(p)
    p = kinds.add_parser("atoms", help="potential Σ e/|p − r| on a 3-D grid, and its minimum")
    p.add_argument("--grid", help="N (N×N×N) or NXxNYxNZ")
    p.add_argument("--atoms", help="number of random atoms")
    p.add_argument("--seed", help="seed of the random atoms (default 0)")
    p.add_argument("--atoms-file", help="atoms as N×4 .npy or .csv (x, y, z, energy)")
    p.add_argument("--spacing", help="grid spacing (default 1)")
    p.add_argument("--origin", help="grid origin X,Y,Z (default 0,0,0)")
    p.add_argument("--softening", help="softening length ε (default 0)")
    p.add_argument("--precision", help="float32 or float64 (default float64)")
    p.add_argument("--field-out", help="write the whole field here (.npy)")
    common(p)

    serve = sub.add_parser("serve", help="serve the REST API on the embedded backend")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    worker = sub.add_parser("worker", help="serve the AWS spot queue (on an EC2 spot instance; docs/spot.md)")
    worker.add_argument("--idle-seconds", type=int, help="exit after this long without work (default 300)")
    worker.add_argument("--name", help="this worker's name in reports (default: spot:<instance id>)")
    return parser


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
    from tilefan.entrypoints.cli_paths import PathError, refuse_output_over_input
    from tilefan.entrypoints.progress import ProgressBar
    from tilefan.errors import InvalidSpecError, TilefanError
    from tilefan.pipeline.error_codec import plain_message
    from tilefan.pipeline.report import tile_report
    from tilefan.pipeline.submit import admit, submit_job

    try:
        raw = raw_spec(args)
        refuse_output_over_input(raw, FLAG_OF)
        config = load_config()
        if args.workers is not None:
            if args.workers < 1:
                raise _flag_error("--workers", f"must be at least 1, got {args.workers}")
            from dataclasses import replace

            config = replace(config, workers=args.workers)
        ports, runner = build_embedded(config)
        if args.dry_run:
            spec = admit(ports, raw, config.limits, config.route_policy)
            print(json.dumps(plan("dry-run", spec, config.route_policy).manifest(), indent=2))
            return EXIT_OK
        record = submit_job(ports, raw, limits=config.limits, policy=config.route_policy)
    except (_FlagError, PathError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except InvalidSpecError as exc:
        print(f"error: {field_message(exc.field, exc.message)}", file=sys.stderr)
        return EXIT_INVALID
    except TilefanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    try:
        final = runner.run(record.job_id, on_progress=bar.update if bar else None)
    except KeyboardInterrupt:
        # Cancel so the record says so and the partial output is removed.
        runner.cancel(record.job_id)
        print(f"\ninterrupted: job {record.job_id} cancelled, nothing written", file=sys.stderr)
        return 130
    finally:
        if bar:
            bar.close()
    doc = final.to_dict()
    if args.json:
        print(json.dumps(doc))
    if final.error:
        err = final.error
        print(f"error: {field_message(err.get('field'), plain_message(err))}", file=sys.stderr)
        return EXIT_INVALID if err.get("code") == "invalid_input" else EXIT_FAILED
    if not args.json:
        _summary(doc, sys.stdout, tile_report(ports, record.job_id)["summary"]["route_counts"])
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """The same Chalice routes as on AWS, served locally over the configured backend."""
    from chalice import Chalice
    from chalice.config import Config as ChaliceConfig
    from chalice.local import create_local_server

    from tilefan.bootstrap import build_service, load_config
    from tilefan.entrypoints import rest
    from tilefan.entrypoints.rest_access import serve_access, set_access
    from tilefan.errors import InvalidSpecError

    try:
        config = load_config()
        service = build_service(config)
    except InvalidSpecError as exc:
        print(f"error: {field_message(exc.field, exc.message)}", file=sys.stderr)
        return EXIT_INVALID
    rest.set_service_factory(lambda: service)
    access = serve_access(config.home, args.host, args.port)
    set_access(access)
    app = Chalice(app_name="tilefan")
    app.register_blueprint(rest.api)
    server = create_local_server(app, ChaliceConfig.create(chalice_stage="local", app_name="tilefan"),
                                 args.host, args.port)
    print(f"tilefan API ({config.backend} backend) on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    if access.token:
        print(f"token (also in {config.home / 'token'}): {access.token}\n"
              f"  send it as 'Authorization: Bearer <token>', or open http://{args.host}:{args.port}/openapi.json"
              f"?token={access.token}", file=sys.stderr, flush=True)
    server.serve_forever()
    return EXIT_OK


# Flags whose values may start with "-" (a negative origin): argparse would read
# "--origin -1.5,0,2" as two flags, so glue the value on as "--origin=-1.5,0,2".
_SIGNED_VALUE_FLAGS = ("--origin",)


def _glue_signed_values(argv: Sequence[str]) -> list[str]:
    """
    >>> _glue_signed_values(["atoms", "--origin", "-1.5,0,2", "--grid", "4"])
    ['atoms', '--origin=-1.5,0,2', '--grid', '4']
    """
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        if items[i] in _SIGNED_VALUE_FLAGS and i + 1 < len(items) and items[i + 1].startswith("-"):
            out.append(f"{items[i]}={items[i + 1]}")
            i += 2
            continue
        out.append(items[i])
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_glue_signed_values(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "worker":
            from tilefan.entrypoints.worker_cli import cli_main

            return cli_main(args)
        return cmd_serve(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

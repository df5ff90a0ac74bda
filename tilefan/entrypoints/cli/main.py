"""The ``tilefan`` command: ``run``, the job commands (``jobs``, ``status``, ``cancel``,
``result``, ``report``), ``serve`` and ``worker``. Each command lives in its own module
(``cli.run``, ``cli.jobs``, ``cli.worker``); this one parses and dispatches.

Exit codes: 0 success, 1 the job failed, 2 invalid input. Invalid input gets one line on
stderr naming the flag, and nothing is written.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from tilefan.entrypoints.cli.common import EXIT_FAILED, EXIT_INVALID, EXIT_OK, field_message
from tilefan.entrypoints.cli.run import cmd_run


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a single line, as every other invalid input does."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INVALID, f"error: {message} (see {self.prog} --help)\n")


class _VersionAction(argparse.Action):
    """``--version``, read from the installed metadata only when asked: reading it imports
    ``importlib.metadata`` and the email parser (~0.1 s), which every command would pay."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog} {_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tilefan", description="Run big numeric jobs as a tiled fan-out.")
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a job on this machine and wait for it")
    kinds = run.add_subparsers(dest="kind", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--tile", help="tile edge N (N×N blocks; N×N×N for atoms)")
        p.add_argument("--verify", action="store_true", help="check the result (Freivalds / exact / sampled)")
        p.add_argument("--json", action="store_true", help="print the final job record as JSON")
        p.add_argument("--dry-run", action="store_true", help="print the plan and run nothing")
        p.add_argument("--workers", type=int, help="pool size (default: the number of cores)")
        p.add_argument("--route", metavar="{auto,lambda,spot}",
                       help="auto (default), lambda or spot: where tiles run on AWS; recorded here, "
                                       "where every tile runs in the local pool")
        p.add_argument("--endpoint", metavar="URL", help="run on a deployed API or a remote tilefan serve "
                                                         "(default: TILEFAN_ENDPOINT; unset: this machine)")

    for kind in ("matmul", "add"):
        p = kinds.add_parser(kind, help="C = A·B" if kind == "matmul" else "C = A + B")
        p.add_argument("--a", help="A as a .npy file, a Zarr array (A.zarr) or an HDF5 dataset (data.h5:/A)")
        p.add_argument("--b", help="B as a .npy file, a Zarr array or an HDF5 dataset")
        p.add_argument("--shape-a", help="random A of this shape, e.g. 3000x2000")
        p.add_argument("--shape-b", help="random B of this shape")
        p.add_argument("--seed", help="seed of the random inputs (default 0)")
        p.add_argument("--dtype", metavar="{float32,float64}",
                       help="float32 or float64 for random inputs (default float64)")
        p.add_argument("--out", help="write C here (.npy, or .zarr: one chunk per tile)")
        common(p)
    p = kinds.add_parser("atoms", help="potential Σ e/|p − r| on a 3-D grid, and its minimum")
    p.add_argument("--grid", help="N (N×N×N) or NXxNYxNZ")
    p.add_argument("--atoms", help="number of random atoms")
    p.add_argument("--seed", help="seed of the random atoms (default 0)")
    p.add_argument("--atoms-file", help="atoms as N×4 .npy or .csv (x, y, z, energy), or a molecule as .pqr or "
                                        "extended .xyz (positions in Å, charges in e as the energies)")
    p.add_argument("--around", metavar="FILE", help="place the grid around this molecule (.pqr, .xyz...): its "
                                                    "bounding box plus --margin, points --spacing apart; also "
                                                    "the atoms unless --atoms or --atoms-file says otherwise")
    p.add_argument("--margin", help="with --around: Å kept beyond the outermost atoms on every side")
    p.add_argument("--units", metavar="{e/A,kcal/mol/e,kT/e}",
                   help="unit of φ: e/A (Σq/r, default), kcal/mol/e (×332.0637) or kT/e at 298 K (÷0.5925 more)")
    p.add_argument("--spacing", help="grid spacing (default 1)")
    p.add_argument("--origin", help="grid origin X,Y,Z (default 0,0,0)")
    p.add_argument("--softening", help="softening length ε (default 0)")
    p.add_argument("--precision", metavar="{float32,float64}", help="float32 or float64 (default float64)")
    p.add_argument("--field-out", help="write the whole field here: .npy, or a map viewers open: .mrc/.ccp4 "
                                       "(CCP4/MRC, the formats extra) or .dx (OpenDX, up to 128³ points)")
    common(p)

    from tilefan.entrypoints.cli.jobs import add_job_commands

    add_job_commands(sub)
    serve = sub.add_parser("serve", help="serve the REST API on the embedded backend")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--threads", type=int, default=4, help="HTTP worker threads (default 4)")
    serve.add_argument("--client-timeout", type=int, default=30,
                       help="close a connection idle this many seconds, or a request (headers and JSON body) "
                            "not fully arrived this many seconds after its first byte (default 30)")
    serve.add_argument("--upload-timeout", type=int, default=600,
                       help="seconds an upload's whole request may take to arrive (default 600)")

    resume = sub.add_parser("resume", help="finish a QUEUED or RUNNING job left by a stopped server or run")
    resume.add_argument("job_id")
    resume.add_argument("--json", action="store_true", help="print the final job record as JSON")

    worker = sub.add_parser("worker", help="serve the AWS spot queue (on an EC2 spot instance; docs/spot.md)")
    worker.add_argument("--idle-seconds", type=int, help="exit after this long without work (default 300)")
    worker.add_argument("--name", help="this worker's name in reports (default: spot:<instance id>)")
    return parser


# Optional dependencies and the extra that installs each (pyproject.toml).
EXTRA_OF = {"chalice": "serve", "swagger_ui_bundle": "serve", "boto3": "aws", "botocore": "aws",
            "matplotlib": "report", "mrcfile": "formats"}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tilefan")
    except PackageNotFoundError:
        return "0+unknown (not installed)"


def cmd_serve(args: argparse.Namespace) -> int:
    """The same Chalice routes as on AWS, and the web page, served by waitress over the
    configured backend.

    The embedded scheduler starts first, so RUNNING and QUEUED jobs left by a previous
    server resume before any request is answered; SIGTERM stops it gracefully."""
    import chalice  # noqa: F401  (the serve extra: when it is missing, this is what fails, first)

    from tilefan.bootstrap import build_service, load_config
    from tilefan.entrypoints.http.access import serve_access
    from tilefan.entrypoints.http.rest_app import http_app
    from tilefan.entrypoints.http.server import LocalApp, serve
    from tilefan.errors import InvalidSpecError

    try:
        config = load_config()
        service = build_service(config)
    except InvalidSpecError as exc:
        print(f"error: {field_message(exc.field, exc.message)}", file=sys.stderr)
        return EXIT_INVALID
    access = serve_access(config.home, args.host, args.port)
    # Its routes dispatch concurrently (no lock around requests); its own access policy,
    # not an API Gateway authorizer, admits callers.
    app = http_app(LocalApp(app_name="tilefan"), lambda: service, authorizer=None, access=access)
    serving = service.serving  # the embedded scheduler dispatches here; Step Functions elsewhere
    if serving is not None:
        serving.serve_in_thread()

    def ready() -> None:
        print(f"tilefan API ({config.backend} backend) on http://{args.host}:{args.port}", file=sys.stderr,
              flush=True)
        if access.token:
            print(f"token (also in {config.home / 'token'}): {access.token}\n"
                  f"  send it as 'Authorization: Bearer <token>', or open http://{args.host}:{args.port}/"
                  f"?token={access.token}", file=sys.stderr, flush=True)

    serve(app, args.host, args.port, threads=args.threads, client_timeout_s=args.client_timeout, on_ready=ready,
          upload_timeout_s=args.upload_timeout,
          max_json_bytes=config.http_limits.max_body_bytes, max_upload_bytes=config.http_limits.max_upload_bytes,
          on_stop=None if serving is None else serving.stop)
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


def _one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
              line: str | None = None) -> str:
    """A warning as a command-line tool says it: one line, no source location."""
    return f"tilefan: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    return _dispatch(_parse(argv))


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(_glue_signed_values(sys.argv[1:] if argv is None else argv))


def _dispatch(args: argparse.Namespace) -> int:
    warnings.formatwarning = _one_line  # e.g. the NumPy-kernel notice, said once
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command in ("jobs", "status", "cancel", "result", "report"):
            from tilefan.entrypoints.cli.jobs import run_job_command

            return run_job_command(args)
        if args.command == "resume":
            from tilefan.entrypoints.cli.run import cmd_resume

            return cmd_resume(args)
        if args.command == "worker":
            from tilefan.entrypoints.cli.worker import cli_main

            return cli_main(args)
        return cmd_serve(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        extra = EXTRA_OF.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"error: tilefan {args.command} needs the {extra} extra: pip install 'tilefan[{extra}]'",
              file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as Unix tools do. Point stdout
        # at /dev/null so the interpreter's final flush cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


# The commands that leave nothing at work in this process when they return normally: a run's
# (or resume's) scheduler has drained its pool and its plan and merge threads by then. Not
# serve or worker (a stop may leave a step running, which the interpreter's exit waits for),
# nor a command interrupted (exit code 130), whose drain may have been cut short.
LEAVE_FAST = frozenset({"run", "resume"})


def entry() -> NoReturn:
    """The ``tilefan`` console script: ``main``, then, after a run, leave without the
    interpreter's teardown.

    By the time a run returns, its outputs are closed and its job records are committed to
    the store's write-ahead log. Freeing every module and object, and the store's checkpoint
    of that log into the database with its fsync, then took about 0.1 s of every ``tilefan
    run`` (a tenth of ``make run``'s atoms step): the log keeps the records for the next
    process that opens the store, as when a run is killed after it ends. The trade: the
    records, like the outputs (which are never synced), reach the disk with the kernel's
    writeback, so a power loss soon after may leave a job RUNNING (``tilefan resume``
    finishes it from its recorded tiles). Only the buffered standard streams and log
    handlers need flushing. Errors that ``main`` does not turn into an exit code still end
    the interpreter's usual way, with their traceback."""
    args = _parse(None)
    code = _dispatch(args)
    if args.command not in LEAVE_FAST or code == 130:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # the reader went away, or it is closed
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()

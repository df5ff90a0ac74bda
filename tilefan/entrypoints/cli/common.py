"""What the ``tilefan`` commands share: exit codes, flag names in errors, the job summary
and job lines, the report folder, and where ``--endpoint`` comes from.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
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
    "around": "--around", "around.file": "--around", "around.margin": "--margin", "units": "--units",
}


def field_message(field: str | None, message: str) -> str:
    flag = FLAG_OF.get(field or "", field)
    return f"{flag}: {message}" if flag else message


def summary(record: dict[str, Any], out: TextIO, routes: dict[str, int] | None = None) -> None:
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


def add_endpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", metavar="URL", help="a deployed API or a remote tilefan serve "
                                                     "(default: TILEFAN_ENDPOINT; unset: this machine)")


def endpoint_of(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The endpoint (the flag wins over ``TILEFAN_ENDPOINT``) and the token (``TILEFAN_TOKEN``)."""
    from tilefan.bootstrap import remote_settings

    env_endpoint, token = remote_settings()
    return getattr(args, "endpoint", None) or env_endpoint, token


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
    from tilefan.entrypoints.report.files import write_report

    files = write_report(report, out)
    for f in files:
        print(f)
    if not any(f.name == "runtime.png" for f in files):
        print("runtime.png needs the report extra: pip install 'tilefan[report]'", file=sys.stderr)
    return EXIT_OK

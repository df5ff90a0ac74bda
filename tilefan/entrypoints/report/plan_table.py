"""A plan manifest as a short table a person can read (``tilefan run ... --dry-run``)."""

from __future__ import annotations

import warnings
from typing import Any

from tilefan.compute import threads
from tilefan.compute.kernel_choice import SlowKernelWarning, choose_atoms_kernel
from tilefan.domain import kernels
from tilefan.domain.local_estimate import LocalEstimate, LocalRates, estimate_here
from tilefan.domain.plan import Plan
from tilefan.domain.spec.parse import AtomsSpec, JobSpec
from tilefan.entrypoints.report.progress import human
from tilefan.errors import InvalidSpecError


def _bytes(n: float) -> str:
    """
    >>> _bytes(68864000)
    '68.9 MB'
    """
    if n < 1000:
        return f"{n:.0f} B"
    return f"{human(n)}B".replace("k", " k").replace("M", " M").replace("G", " G").replace("T", " T")


def plan_table(manifest: dict[str, Any], here: LocalEstimate | None = None) -> str:
    """Tiles, routes, memory, the time estimates and the AWS cost, one fact a line.

    Time here is ``here`` (``local_estimate``: the tiles in this process on every core, or
    the pool's start and the tiles on its workers, then the merge with its verification);
    on AWS the tiles run side by side, so the estimate is the slowest tile on its route.

    >>> m = {"kind": "matmul", "shape": [300, 100], "tile": [64, 64],
    ...      "totals": {"tiles": 2, "flops": 6e6, "bytes_in": 2e5, "bytes_out": 2.4e5,
    ...                 "max_tile_mem_bytes": 1e5, "routes": {"lambda": 2, "spot": 0}},
    ...      "tiles": [{"route": "lambda", "est_lambda_s": 0.5, "est_spot_s": 0.1},
    ...                {"route": "lambda", "est_lambda_s": 0.4, "est_spot_s": 0.1}],
    ...      "cost_estimate": {"total_usd": 0.0012, "lambda_gb_s": 3.5}}
    >>> print(plan_table(m, LocalEstimate(pool_s=0.18, tiles_s=0.3, merge_s=0.02, workers=2)))
    plan      matmul, output 300x100, tile 64x64
    tiles     2 (2 lambda, 0 spot)
    work      6.0M FLOP
    data      200.0 kB in, 240.0 kB out
    memory    100.0 kB per tile at most
    time      ~0.50 s here (2 workers: 0.18 s start, 0.30 s tiles, 0.02 s merge), ~0.50 s on AWS
    cost      ~$0.0012 on AWS (3.5 Lambda GB-s)
    """
    totals = manifest.get("totals", {})
    tiles = manifest.get("tiles", [])
    routes = totals.get("routes", {})
    shape = "x".join(str(n) for n in manifest.get("shape", []))
    tile = "x".join(str(n) for n in manifest.get("tile", []))
    work = f"{human(totals['flops'])} FLOP" if "flops" in totals else f"{human(totals.get('units', 0))} units"
    if manifest.get("kind") == "atoms" and "pairs" in totals:
        work = f"{human(totals['pairs'])} atom-point pairs"
    aws = max((t.get(f"est_{t.get('route', 'lambda')}_s", 0.0) for t in tiles), default=0.0)
    if "aws_prediction" in manifest:  # the cost model's wall time, with concurrency and start-ups
        aws = manifest["aws_prediction"]["wall_s"]
    cost = manifest.get("cost_estimate", {})
    lines = [
        f"plan      {manifest.get('kind')}, output {shape}, tile {tile}",
        f"tiles     {totals.get('tiles', len(tiles))} ("
        + ", ".join(f"{n} {r}" for r, n in sorted(routes.items())) + ")",
        f"work      {work}",
        f"data      {_bytes(totals.get('bytes_in', 0))} in, {_bytes(totals.get('bytes_out', 0))} out",
        f"memory    {_bytes(totals.get('max_tile_mem_bytes', 0))} per tile at most",
        f"time      {_here(here)}~{aws:.2f} s on AWS",
    ]
    if cost:
        lines.append(f"cost      ~${cost.get('total_usd', 0):.2g} on AWS ({cost.get('lambda_gb_s', 0):g} Lambda GB-s)")
    if "b_panels" in manifest:
        lines.extend(_panel_lines(manifest["b_panels"]))
    if "aws_prediction" in manifest:
        lines.extend(_aws_lines(manifest["aws_prediction"]))
    return "\n".join(lines)


def _panel_lines(b: dict[str, Any]) -> list[str]:
    """What staging a stored B as column panels does to the reads (``tilefan.domain.bpanels``).

    >>> b = {"staged": True, "panels": 4, "bands": 2, "pieces": 8, "stage_bytes_read": 8e8,
    ...      "stage_bytes_written": 8e8, "est_stage_s": 26.7, "tile_b_bytes": {"unstaged": 8e8, "staged": 2e8},
    ...      "job_bytes_in": {"unstaged": 1.4e10, "staged": 4.4e9}}
    >>> print("\\n".join(_panel_lines(b)))
    b panels  staged on AWS by the plan step: 4 panels x 2 bands, 800.0 MB read and 800.0 MB written (~26.7 s)
    b reads   200.0 MB of B a tile (800.0 MB unstaged); 4.4 GB in a job (14.0 GB unstaged)
    """
    tile, job = b["tile_b_bytes"], b["job_bytes_in"]
    if b["staged"]:
        # On AWS: the file store reads a .npy B's column blocks in place (``Ports.mapped_reads``).
        head = (f"b panels  staged on AWS by the plan step: {b['panels']} panels x {b['bands']} bands, "
                f"{_bytes(b['stage_bytes_read'])} read and {_bytes(b['stage_bytes_written'])} written "
                f"(~{b['est_stage_s']:.1f} s)")
        reads = (f"b reads   {_bytes(tile['staged'])} of B a tile ({_bytes(tile['unstaged'])} unstaged); "
                 f"{_bytes(job['staged'])} in a job ({_bytes(job['unstaged'])} unstaged)")
    else:
        head = (f"b panels  not staged: the pass ({_bytes(2 * tile['unstaged'])} moved) would take "
                f"~{b.get('stage_pass_s', 0.0):.0f} s, over the plan step's {b.get('stage_budget_s', 0.0):.0f} s")
        reads = (f"b reads   {_bytes(tile['unstaged'])} of B a tile ({_bytes(tile['staged'])} if staged); "
                 f"{_bytes(job['unstaged'])} in a job ({_bytes(job['staged'])} if staged)")
    return [head, reads]


def _aws_lines(p: dict[str, Any]) -> list[str]:
    """The AWS time and cost model's prediction (``tilefan.domain.cost_model``), four lines.

    >>> p = {"lambda_tiles": 1024, "spot_tiles": 0, "concurrency": 800, "map_mode": "distributed", "waves": 2,
    ...      "wall_s": 350.2, "plan_s": 3.0, "map_s": 58.9, "tile_s_mean": 28.3, "reduce_s": 288.3,
    ...      "total_usd": 5.26, "lambda_usd": 5.15, "lambda_gb_s": 309073.0, "steps_usd": 0.077,
    ...      "transitions": 3080, "dynamo_usd": 0.0054, "s3_usd": 0.0273, "spot_usd": 0.0,
    ...      "shard_write_units_s": 8.8, "history_events_max": 24}
    >>> print("\\n".join(_aws_lines(p)))
    aws run   1024 Lambda tiles, 800 at once (distributed map), 2 waves
    aws time  ~350 s wall: plan 3 s, tiles 59 s (mean Lambda tile 28.3 s), reduce 288 s
    aws cost  ~$5.26: Lambda $5.15 (309073 GB-s), SFN $0.077 (3080 transitions), DynamoDB $0.0054, S3 $0.027, spot $0
    aws load  8.8 WCU/s per DynamoDB counter shard (of 1000), 24 history events in the largest execution (of 25000)
    """
    runs, means = [], []
    if p.get("lambda_tiles"):
        runs.append(f"{p['lambda_tiles']} Lambda tiles, {p['concurrency']} at once ({p['map_mode']} map), "
                    f"{p['waves']} wave{'' if p['waves'] == 1 else 's'}")
        means.append(f"mean Lambda tile {p['tile_s_mean']:.1f} s")
    if p.get("spot_tiles"):
        runs.append(f"{p['spot_tiles']} spot tiles on {p['spot_workers']} workers ({p['map_mode']} map)")
        means.append(f"mean spot tile {p.get('spot_tile_s_mean', 0.0):.1f} s")
    return [
        f"aws run   {'; '.join(runs)}",
        f"aws time  ~{p['wall_s']:.0f} s wall: plan {p['plan_s']:.0f} s, tiles {p['map_s']:.0f} s "
        f"({', '.join(means)}), reduce {p['reduce_s']:.0f} s",
        f"aws cost  ~${p['total_usd']:.3g}: Lambda ${p['lambda_usd']:.3g} ({p['lambda_gb_s']:.0f} GB-s), "
        f"SFN ${p['steps_usd']:.2g} ({p['transitions']} transitions), DynamoDB ${p['dynamo_usd']:.2g}, "
        f"S3 ${p['s3_usd']:.2g}, spot ${p['spot_usd']:.3g}",
        f"aws load  {p['shard_write_units_s']:.1f} WCU/s per DynamoDB counter shard (of 1000), "
        f"{p['history_events_max']} history events in the largest execution (of 25000)",
    ]


def _here(here: LocalEstimate | None) -> str:
    if here is None:
        return ""
    if here.inline:
        where = f"in this process on {here.cores} core{'s' if here.cores != 1 else ''}"
        return f"~{here.total_s:.2f} s here ({where}: {here.tiles_s:.2f} s tiles, {here.merge_s:.2f} s merge), "
    workers = f"{here.workers} worker{'s' if here.workers != 1 else ''}"
    return (f"~{here.total_s:.2f} s here ({workers}: {here.pool_s:.2f} s start, {here.tiles_s:.2f} s tiles, "
            f"{here.merge_s:.2f} s merge), ")


def time_here(the_plan: Plan, spec: JobSpec, workers: int, kernel: str) -> LocalEstimate:
    """The plan's time on this machine with the atoms kernel a run here would choose."""
    compiled = False
    if isinstance(spec, AtomsSpec):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SlowKernelWarning)  # the run itself says it
                chosen = choose_atoms_kernel(kernel)
        except InvalidSpecError:  # "compiled" with no compiled kernel: the run would say so
            chosen = kernels.atoms_potential
        compiled = chosen is not kernels.atoms_potential
    return estimate_here(the_plan, spec, workers, LocalRates(), compiled=compiled, cores=threads.usable_cpus())

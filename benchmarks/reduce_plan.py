"""What the S3 reducer does for a job of about 100,000 tiles: its parts, requests and bytes.

Plans the multipart assembly of three outputs with S3's own part limits (the reducer's
plan, ``tilefan.domain.assembly``) and counts what executing it costs: S3 requests by kind,
the bytes that pass through the reduce Lambda (read, then sent) and the bytes S3 copies
server-side. Then the arithmetic of docs/aws-scale.md: the time S3's request rates allow
at least, and the throughput each in-flight request must reach for the reduce to finish in
the Lambda's 900 s.

    PYTHONPATH=. .venv/bin/python benchmarks/reduce_plan.py

No I/O: nothing here talks to S3; the plan is timed on this machine.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from tilefan.domain.assembly import BuildPart, CopyPart, PartLimits, group_copies, groups, plan_parts
from tilefan.domain.tiling import Region, num_tiles, tile_region
from tilefan.domain.transfer import io_streams
from tilefan.pipeline.assemble import REQUESTS_IN_FLIGHT

LAMBDA_S = 900
# S3's documented request rates per prefix (a job's blocks share one prefix).
GETS_PER_S, PUTS_PER_S = 5_500, 3_500
LIST_PAGE = 1_000


@dataclass(frozen=True)
class Scenario:
    name: str
    shape: tuple[int, ...]
    tile: tuple[int, ...]
    itemsize: int = 8


SCENARIOS = (
    # add's default tile: full-width panels of 4 Mi elements (32 MiB).
    Scenario("add, full-width 512 x 8192 tiles", (51_200_000, 8192), (512, 8192)),
    # Full-width tiles of exactly S3's 5 MiB part minimum.
    Scenario("add, full-width 640 x 1024 tiles", (64_000_000, 1024), (640, 1024)),
    # matmul's smallest default tile edge, on a square output.
    Scenario("matmul, 256 x 256 tiles", (80_896, 80_896), (256, 256)),
    # atoms field_out, tiles that keep the last axis whole.
    Scenario("atoms field, 8 x 8 x 64 tiles", (2_528, 2_528, 64), (8, 8, 64)),
)


def measure(s: Scenario, limits: PartLimits) -> dict[str, float]:
    regions: list[Region] = [tile_region(s.shape, s.tile, t) for t in range(num_tiles(s.shape, s.tile))]
    started = time.perf_counter()
    parts = plan_parts(s.shape, s.itemsize, 128, regions, limits)
    runs = groups(parts, limits)
    plan_s = time.perf_counter() - started
    # Tiles crossing each built part: one ranged GET each (tiles of a row band share its rows).
    band_tiles: dict[tuple[int, int], int] = {}
    for r in regions:
        band_tiles[r[0]] = band_tiles.get(r[0], 0) + 1
    bands = sorted(band_tiles)
    gets = 0
    for p in parts:
        if isinstance(p, BuildPart):
            gets += sum(n for (a, b), n in ((band, band_tiles[band]) for band in bands)
                        if a < p.rows[1] and b > p.rows[0])
    copies = sum(isinstance(p, CopyPart) for p in parts)
    built = sum(isinstance(p, BuildPart) for p in parts)
    finals = group_copies([sum(p.size for p in run) for run in runs], limits) if len(runs) > 1 else []
    out_bytes = math.prod(s.shape) * s.itemsize
    built_bytes = sum(p.size for p in parts if isinstance(p, BuildPart))
    copied_bytes = sum(p.size for p in parts if isinstance(p, CopyPart)) + (out_bytes if finals else 0)
    lists = math.ceil(len(regions) / LIST_PAGE)
    puts = built + copies + len(finals)
    floor_s = max((gets + lists) / GETS_PER_S, puts / PUTS_PER_S)
    return {
        "tiles": len(regions), "output_gb": out_bytes / 1e9, "parts": len(parts), "copy_parts": copies,
        "built_parts": built, "uploads": len(runs) + (1 if finals else 0), "final_copies": len(finals),
        "gets": gets, "lists": lists, "built_gb": built_bytes / 1e9, "copied_gb": copied_bytes / 1e9,
        "plan_s": plan_s, "floor_s": floor_s,
        # Throughput needed to finish in 900 s (less the request-rate floor):
        "copy_mb_s_per_request": copied_bytes / 1e6 / max(1e-9, LAMBDA_S - floor_s) / REQUESTS_IN_FLIGHT,
        "lambda_mb_s_each_way": built_bytes / 1e6 / max(1e-9, LAMBDA_S - floor_s),
    }


def main() -> None:
    limits = PartLimits()
    print(f"S3 part limits: min {limits.min_part_bytes >> 20} MiB, max {limits.max_part_bytes >> 30} GiB, "
          f"{limits.max_parts:,} parts per upload; built parts {limits.build_bytes >> 20}-"
          f"{limits.build_cap_bytes >> 20} MiB; {REQUESTS_IN_FLIGHT} requests, {io_streams(10_240)} builds in flight")
    rows = [(s.name, measure(s, limits)) for s in SCENARIOS]
    keys = ["tiles", "output_gb", "parts", "copy_parts", "built_parts", "uploads", "final_copies", "gets", "lists",
            "built_gb", "copied_gb", "plan_s", "floor_s", "copy_mb_s_per_request", "lambda_mb_s_each_way"]
    print("| | " + " | ".join(name for name, _ in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for k in keys:
        cells = [f"{m[k]:,.0f}" if m[k] >= 100 or float(m[k]).is_integer() else f"{m[k]:.2f}" for _, m in rows]
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

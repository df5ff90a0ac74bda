"""The cost model's worked examples: big jobs planned as ``tilefan run --dry-run``
would plan them, with what the model predicts and which limits they pass.

docs/cost-model.md prints this table, at the list prices (``tilefan.settings.LIST_PRICES``),
and checks it by hand; tests/unit/test_cost_model.py pins it, so the document cannot drift
from the model. Regenerate with

    PYTHONPATH=. .venv/bin/python benchmarks/cost_examples.py
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tilefan.domain.bpanels import DECISION_IO_MB_S, STAGE_TIME_BUDGET_S, stage_seconds
from tilefan.domain.cost_model import AwsPrediction, Deployment, predict
from tilefan.domain.plan import Plan, plan
from tilefan.domain.routing import RoutePolicy
from tilefan.domain.spec.parse import Limits, parse_spec
from tilefan.domain.tile_fit import fit_to_lambda
from tilefan.errors import InvalidSpecError

EXAMPLES: dict[str, dict[str, Any]] = {
    "matmul 65,536² float32": {"kind": "matmul", "a": {"shape": [65536, 65536]}, "b": {"shape": [65536, 65536]},
                               "dtype": "float32"},
    "atoms 512³ × 1,000,000": {"kind": "atoms", "grid": 512, "atoms": {"count": 1_000_000, "seed": 1}},
    "atoms 512³ × 1,000,000, Lambda only": {"kind": "atoms", "grid": 512, "atoms": {"count": 1_000_000, "seed": 1},
                                            "tile": 64, "route": "lambda"},
    "the same in float32": {"kind": "atoms", "grid": 512, "atoms": {"count": 1_000_000, "seed": 1},
                            "tile": 64, "route": "lambda", "precision": "float32"},
    "matmul 65,536² float32, uploaded files": {"kind": "matmul", "a": {"file": "uploads/A.npy"},
                                               "b": {"file": "uploads/B.npy"}},
    "matmul 32,768² float32, uploaded files": {"kind": "matmul", "a": {"file": "uploads/A32k.npy"},
                                               "b": {"file": "uploads/B32k.npy"}},
}
# The uploaded files the examples name, as their .npy headers would describe them.
FILES: dict[str, tuple[tuple[int, ...], str]] = {
    "uploads/A.npy": ((65536, 65536), "float32"), "uploads/B.npy": ((65536, 65536), "float32"),
    "uploads/A32k.npy": ((32768, 32768), "float32"), "uploads/B32k.npy": ((32768, 32768), "float32"),
}


def _inspect(uri: str) -> tuple[tuple[int, ...], str]:
    return FILES[uri]


@dataclass(frozen=True)
class Worked:
    name: str
    plan: Plan
    prediction: AwsPrediction
    size_refusal: str | None  # what the door's size ceilings say at their defaults
    guardrail_usd: float  # the estimate TILEFAN_MAX_COST_USD is checked against
    limits: Limits

    @property
    def fits_max_tiles(self) -> bool:
        return len(self.plan.tiles) <= self.limits.max_tiles

    @property
    def fits_max_cost(self) -> bool:
        return self.guardrail_usd <= self.limits.max_cost_usd


def work(name: str, raw: dict[str, Any], policy: RoutePolicy,
         deployment: Deployment | None = None, limits: Limits | None = None) -> Worked:
    """Plan ``raw`` as admission does (tile size fitted when none is given), with the size
    ceilings lifted so a job they refuse can still be costed; say whether they refuse it."""
    limits = limits or Limits()
    refusal = None
    try:
        parse_spec(raw, limits=limits, inspect=_inspect)
    except InvalidSpecError as exc:
        refusal = f"{exc.field}: {exc.message}"
    lifted = replace(limits, max_matrix_elements=1 << 40, max_grid_points=1 << 40)
    spec = parse_spec(raw, limits=lifted, inspect=_inspect)
    if raw.get("tile") is None:
        spec = fit_to_lambda(spec, policy)
    planned = plan("worked", spec, policy)
    assert planned.cost is not None
    return Worked(name, planned, predict(planned.manifest(), policy, deployment), refusal,
                  planned.cost.total_usd, limits)


def worked_examples(policy: RoutePolicy) -> list[Worked]:
    """Every example, planned and costed under ``policy`` (its prices included)."""
    return [work(name, raw, policy) for name, raw in EXAMPLES.items()]


def rows(w: Worked) -> dict[str, str]:
    """The doc's table column for one job: every figure as the model prints it."""
    p, t = w.prediction, w.plan.totals()
    return {
        "tile": "×".join(str(n) for n in w.plan.tile),
        "tiles (Lambda + spot)": f"{p.tiles:,} ({p.lambda_tiles:,} + {p.spot_tiles:,})",
        "work": f"{t['flops']:.3e} flop",
        "bytes in / out": f"{t['bytes_in']:.3e} / {t['bytes_out']:.3e}",
        **_panel_rows(w),
        "map, Lambda tiles at once, waves": f"{p.map_mode}, {p.concurrency}, {p.waves}",
        "tile time: Lambda mean / max, spot mean": f"{p.tile_s_mean:.2f} s / {p.tile_s_max:.2f} s, "
                                                   f"{p.spot_tile_s_mean:.2f} s",
        "wall: plan + tiles + reduce": f"{p.wall_s:,.0f} s = {p.plan_s:.0f} + {p.map_s:,.1f} + {p.reduce_s:.1f}",
        "Lambda GB-s (tiles alone)": f"{p.lambda_gb_s:,.0f} ({p.tile_gb_s:,.0f})",
        "spot workers, instance-s": f"{p.spot_workers}, {p.spot_instance_s:,.0f}",
        "state transitions": f"{p.transitions:,}",
        "history events, largest execution": f"{p.history_events_max:,} (cap 25,000)",
        "DynamoDB write / read units": f"{p.dynamo_write_units:,} / {p.dynamo_read_units:,}",
        "WCU/s per counter shard at peak": f"{p.shard_write_units_s:.1f} (limit 1,000)",
        "S3 GET / PUT requests": f"{p.s3_gets:,} / {p.s3_puts:,}",
        "USD: Lambda, Step Functions": f"{p.lambda_usd:.4f}, {p.steps_usd:.4f}",
        "USD: DynamoDB, S3, spot": f"{p.dynamo_usd:.4f}, {p.s3_usd:.4f}, {p.spot_usd:.4f}",
        "USD total (model)": f"{p.total_usd:.2f}",
        "USD the guardrail checks": f"{w.guardrail_usd:.2f}",
        "TILEFAN_MAX_TILES (10,000)": "fits" if w.fits_max_tiles else "over",
        "TILEFAN_MAX_COST_USD ($10)": "fits" if w.fits_max_cost else "over",
        "size ceilings at their defaults": w.size_refusal or "fits",
    }


def _panel_rows(w: Worked) -> dict[str, str]:
    """What staging B as column panels does (``tilefan.domain.bpanels``), before / after."""
    b = w.plan.b_panels
    if b is None:
        return {"B staged as panels by the plan step": "no (nothing to stage)",
                "B read a tile: whole rows / panel": "-", "bytes read a job: unstaged / staged": "-"}
    staged = (f"yes, {b.layout.pieces:,} pieces, ~{b.est_s:.0f} s" if b.staged else
              f"no: the pass would take {stage_seconds(b.layout.nbytes, DECISION_IO_MB_S):.0f} s, "
              f"over {STAGE_TIME_BUDGET_S:.0f} s")
    return {"B staged as panels by the plan step": staged,
            "B read a tile: whole rows / panel": f"{b.tile_b_unstaged:.3e} / {b.tile_b_staged:.3e}",
            "bytes read a job: unstaged / staged": f"{b.job_unstaged:.3e} / {b.job_staged:.3e}"}


def table(worked: list[Worked]) -> str:
    """A markdown table, one column per job."""
    columns = [rows(w) for w in worked]
    lines = ["| | " + " | ".join(w.name for w in worked) + " |", "|---" * (len(worked) + 1) + "|"]
    for key in columns[0]:
        lines.append(f"| {key} | " + " | ".join(c[key] for c in columns) + " |")
    return "\n".join(lines)

"""The Gantt chart of a job: one row per worker, one bar per attempt at a tile (matplotlib,
the ``report`` extra).

Bars take their route's colour when the attempt counted; a failed attempt is red and
hatched, a lost one (its worker died: no end was recorded) a hatched outline up to the
next attempt at its tile, and one that computed without counting (a duplicate, or
cancelled with its job) grey.
"""

from __future__ import annotations

from typing import IO, Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, safe in servers and tests

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from tilefan.domain.records import AttemptState

ROUTE_COLOURS = {"lambda": "#4c72b0", "spot": "#dd8452", "local": "#55a868"}
FAILED, UNCOUNTED = "#c44e52", "#b0b0b0"


def _bars(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every attempt with a start and an end; a lost one ends where its tile's next began."""
    attempts = report.get("attempts")
    if attempts is None:  # an older server's report: its tiles stand in, one bar each
        attempts = report["tiles"]
    bars = []
    for a in attempts:
        if a.get("started_at") is None:
            continue
        end = a.get("finished_at")
        if end is None and a["status"] == AttemptState.LOST:
            later = [b["started_at"] for b in attempts if b["tile_id"] == a["tile_id"]
                     and b.get("started_at") is not None and b["started_at"] > a["started_at"]]
            end = min(later, default=None)
        if end is not None:
            bars.append({**a, "end": end})
    return bars


def _style(bar: dict[str, Any]) -> dict[str, Any]:
    status = bar["status"]
    if status == AttemptState.FAILED:
        return {"color": FAILED, "hatch": "///", "edgecolor": "white"}
    if status == AttemptState.LOST:
        return {"facecolor": "none", "hatch": "xx", "edgecolor": FAILED, "linestyle": "--"}
    if status in (AttemptState.DUPLICATE, AttemptState.CANCELLED):
        return {"color": UNCOUNTED, "edgecolor": "white"}
    return {"color": ROUTE_COLOURS.get(bar.get("route") or "", "#8172b2"), "edgecolor": "white"}


def _patch(style: dict[str, Any]) -> dict[str, Any]:
    """A bar's style as a legend patch's (a patch takes ``facecolor``, not ``color``)."""
    return {("facecolor" if k == "color" else k): v for k, v in style.items()}


def draw_gantt(report: dict[str, Any], path: str | IO[bytes]) -> None:
    bars = _bars(report)
    workers = sorted({b.get("worker") or "?" for b in bars})
    t0 = min((b["started_at"] for b in bars), default=0.0)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * max(len(workers), 1)), dpi=100)
    for row, worker in enumerate(workers):
        for b in (b for b in bars if (b.get("worker") or "?") == worker):
            ax.barh(row, b["end"] - b["started_at"], left=b["started_at"] - t0, height=0.7, **_style(b))
    seen = {b["status"] for b in bars}
    counted = (AttemptState.DONE, AttemptState.RUNNING)
    legend = [Patch(label=route, facecolor=colour) for route, colour in ROUTE_COLOURS.items()
              if any(b.get("route") == route and b["status"] in counted for b in bars)]
    legend += [Patch(label=str(status), **_patch(_style({"status": status}))) for status in
               (AttemptState.FAILED, AttemptState.LOST, AttemptState.DUPLICATE, AttemptState.CANCELLED)
               if status in seen]
    if len(legend) > 1 or seen - set(counted):
        ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    ax.set_yticks(range(len(workers)), workers)
    ax.set_xlabel("seconds since the first tile started")
    tiles = len({b["tile_id"] for b in bars})
    retries = len(bars) - tiles
    ax.set_title(f"job {report['job_id']}: {tiles} tiles on {len(workers)} workers"
                 + (f", {retries} more attempts" if retries else ""))
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)

"""The Gantt chart of a job: one row per worker, one bar per tile (matplotlib, the ``report`` extra)."""

from __future__ import annotations

from typing import IO, Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, safe in servers and tests

import matplotlib.pyplot as plt

ROUTE_COLOURS = {"lambda": "#4c72b0", "spot": "#dd8452", "local": "#55a868"}


def draw_gantt(report: dict[str, Any], path: str | IO[bytes]) -> None:
    tiles = [t for t in report["tiles"] if t.get("started_at") is not None and t.get("finished_at") is not None]
    workers = sorted({t.get("worker") or "?" for t in tiles})
    t0 = min((t["started_at"] for t in tiles), default=0.0)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * max(len(workers), 1)), dpi=100)
    for row, worker in enumerate(workers):
        for t in (t for t in tiles if (t.get("worker") or "?") == worker):
            colour = "#c44e52" if t["status"] == "failed" else ROUTE_COLOURS.get(t.get("route") or "", "#8172b2")
            ax.barh(row, t["finished_at"] - t["started_at"], left=t["started_at"] - t0, color=colour,
                    edgecolor="white", height=0.7)
    ax.set_yticks(range(len(workers)), workers)
    ax.set_xlabel("seconds since the first tile started")
    ax.set_title(f"job {report['job_id']}: {len(tiles)} tiles on {len(workers)} workers")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)

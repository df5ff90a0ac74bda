"""The per-tile report of a job: when and where each tile ran, and a summary with routes."""

from __future__ import annotations

from typing import Any

from tilefan.domain.cost_model import predict
from tilefan.errors import BlobNotFoundError
from tilefan.pipeline.inputs import manifest_key
from tilefan.pipeline.ports import Ports


def tally_routes(tiles: list[dict[str, Any]]) -> dict[str, int]:
    """How many tiles went each way, e.g. ``{"lambda": 12, "spot": 4}``.

    >>> tally_routes([{"route": "spot"}, {"route": "lambda"}, {"route": "spot"}, {"route": None}])
    {'lambda': 1, 'spot': 2}
    """
    counts: dict[str, int] = {}
    for t in tiles:
        if t.get("route"):
            counts[t["route"]] = counts.get(t["route"], 0) + 1
    return dict(sorted(counts.items()))


def tile_report(ports: Ports, job_id: str) -> dict[str, Any]:
    """Per-tile start, end, duration, route and worker, plus a summary."""
    record = ports.jobs.get_job(job_id)
    rows = ports.jobs.tile_rows(job_id)
    tiles = []
    for r in rows:
        duration = None
        if r.get("started_at") is not None and r.get("finished_at") is not None:
            duration = r["finished_at"] - r["started_at"]
        tiles.append({
            "tile_id": r["tile_id"], "status": r["status"], "started_at": r.get("started_at"),
            "finished_at": r.get("finished_at"), "duration_s": duration, "route": r.get("route"),
            "worker": r.get("worker"), "attempts": r.get("attempts"), "error": r.get("error"),
            "bytes_read": r.get("bytes_read"), "bytes_written": r.get("bytes_written"),
        })
    durations = [t["duration_s"] for t in tiles if t["status"] == "done" and t["duration_s"] is not None]
    summary = {
        "status": record.status.value,
        "tiles_total": record.tiles_total,
        "tiles_done": sum(1 for t in tiles if t["status"] == "done"),
        "tiles_failed": sum(1 for t in tiles if t["status"] == "failed"),
        "tile_seconds_total": sum(durations),
        "tile_seconds_max": max(durations, default=0.0),
        "tile_seconds_mean": (sum(durations) / len(durations)) if durations else 0.0,
        "routes": sorted({t["route"] for t in tiles if t["route"]}),
        "route_counts": tally_routes(tiles),
    }
    summary["timings"] = dict(record.timings)
    summary.update(_planned(ports, job_id))
    return {"job_id": job_id, "summary": summary, "tiles": tiles}


def _planned(ports: Ports, job_id: str) -> dict[str, Any]:
    """The routes the planner chose for every tile (started or not), its cost estimate, and
    the AWS time and cost model's prediction for the plan (``domain.cost_model``)."""
    try:
        manifest = ports.blobs.get_json(manifest_key(job_id))
    except BlobNotFoundError:  # not planned yet
        return {}
    out: dict[str, Any] = {"planned_routes": tally_routes(manifest.get("tiles", []))}
    if "cost_estimate" in manifest:
        out["cost_estimate"] = manifest["cost_estimate"]
    if manifest.get("tiles"):
        out["aws_prediction"] = predict(manifest).to_dict()
    return out

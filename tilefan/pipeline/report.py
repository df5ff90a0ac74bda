"""The report of a job: when and where each tile and each attempt at it ran, and a summary.

``tiles`` has a row per tile (its last attempt; ``attempts`` counts them), ``attempts`` a
row per attempt. An attempt still marked running once a later attempt at its tile began,
or once the job ended, never reported back (its worker died or timed out): it shows as
"lost", with no end.
"""

from __future__ import annotations

from typing import Any

from tilefan.domain.records import AttemptState, TileState
from tilefan.domain.routing import RoutePolicy
from tilefan.errors import BlobNotFoundError
from tilefan.pipeline.inputs import manifest_key
from tilefan.pipeline.ports import Ports
from tilefan.settings import list_policy


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


def tile_report(ports: Ports, job_id: str, policy: RoutePolicy | None = None, *,
                aws_prediction: bool = True) -> dict[str, Any]:
    """Per-tile start, end, duration, route and worker, plus a summary; with
    ``aws_prediction``, the summary has the AWS cost model's prediction for the plan, priced
    at ``policy``'s prices (the list prices without one)."""
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
    durations = [t["duration_s"] for t in tiles if t["status"] == TileState.DONE and t["duration_s"] is not None]
    summary = {
        "status": record.status.value,
        "tiles_total": record.tiles_total,
        "tiles_done": sum(1 for t in tiles if t["status"] == TileState.DONE),
        "tiles_failed": sum(1 for t in tiles if t["status"] == TileState.FAILED),
        "tile_seconds_total": sum(durations),
        "tile_seconds_max": max(durations, default=0.0),
        "tile_seconds_mean": (sum(durations) / len(durations)) if durations else 0.0,
        "routes": sorted({t["route"] for t in tiles if t["route"]}),
        "route_counts": tally_routes(tiles),
    }
    attempts = attempt_rows(ports.jobs.tile_attempts(job_id), ended=record.status.terminal)
    summary["attempts_total"] = len(attempts)
    summary["retries"] = len(attempts) - len({a["tile_id"] for a in attempts})
    summary["attempts_failed"] = sum(1 for a in attempts if a["status"] in (AttemptState.FAILED, AttemptState.LOST))
    summary["timings"] = dict(record.timings)
    summary.update(_planned(ports, job_id, policy, aws_prediction))
    return {"job_id": job_id, "summary": summary, "tiles": tiles, "attempts": attempts}


def attempt_rows(stored: list[dict[str, Any]], *, ended: bool) -> list[dict[str, Any]]:
    """The attempts in (tile, attempt) order with durations, lost ones named.

    >>> rows = attempt_rows([{"tile_id": 3, "attempt": 1, "status": "running", "started_at": 1.0},
    ...                      {"tile_id": 3, "attempt": 2, "status": "done", "started_at": 4.0,
    ...                       "finished_at": 5.5}], ended=False)
    >>> [(r["attempt"], r["status"], r["duration_s"]) for r in rows]
    [(1, 'lost', None), (2, 'done', 1.5)]
    """
    ordered = sorted(stored, key=lambda a: (a["tile_id"], a["attempt"]))
    last = {a["tile_id"]: a["attempt"] for a in ordered}
    rows = []
    for a in ordered:
        status = a["status"]
        if status == AttemptState.RUNNING and (ended or a["attempt"] < last[a["tile_id"]]):
            status = AttemptState.LOST.value
        duration = None
        if a.get("started_at") is not None and a.get("finished_at") is not None:
            duration = a["finished_at"] - a["started_at"]
        rows.append({
            "tile_id": a["tile_id"], "attempt": a["attempt"], "status": status, "started_at": a.get("started_at"),
            "finished_at": a.get("finished_at"), "duration_s": duration, "route": a.get("route"),
            "worker": a.get("worker"), "bytes_read": a.get("bytes_read"), "bytes_written": a.get("bytes_written"),
            "error": a.get("error"),
        })
    return rows


def _planned(ports: Ports, job_id: str, policy: RoutePolicy | None, aws_prediction: bool) -> dict[str, Any]:
    """The routes the planner chose for every tile (started or not), its cost estimate, and
    (``aws_prediction``) the AWS time and cost model's prediction for the plan (``domain.cost_model``)."""
    try:
        manifest = ports.blobs.get_json(manifest_key(job_id))
    except BlobNotFoundError:  # not planned yet
        return {}
    out: dict[str, Any] = {"planned_routes": tally_routes(manifest.get("tiles", []))}
    if "cost_estimate" in manifest:
        out["cost_estimate"] = manifest["cost_estimate"]
    if aws_prediction and manifest.get("tiles"):
        # Imported here: a run's closing summary asks for no prediction, and skips the model.
        from tilefan.domain.cost_model import predict

        out["aws_prediction"] = predict(manifest, policy or list_policy()).to_dict()
    return out

"""A job's performance report as a results folder: logs.csv, error.csv, performance.txt, runtime.png.

Everything is computed from the report (``tile_report`` / ``GET /jobs/{id}/report``), so a
local job and a remote one give the same files. logs.csv and error.csv have a row per
attempt at a tile, so a retried tile shows each of its runs. ``runtime.png`` (a Gantt chart of
the tiles on each worker) needs matplotlib, from the ``report`` extra; without it the
other three files are written and the caller is told how to get the chart.
"""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path
from typing import Any

from tilefan.domain.records import AttemptState, TileState
from tilefan.domain.routing import LAMBDA_MEMORY_MB

LOG_FIELDS = ("tile_id", "attempt", "status", "started_at", "finished_at", "duration_s", "route", "worker",
              "bytes_read", "bytes_written", "error")
FAILED_ATTEMPTS = (AttemptState.FAILED, AttemptState.LOST)


def attempts_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's attempt rows; a report without them (an older server) has its tiles
    stand in, each as its last attempt."""
    if "attempts" in report:
        return list(report["attempts"])
    return [{**t, "attempt": t.get("attempts")} for t in report["tiles"]]


def _measured(done: list[dict[str, Any]], memory_mb: int) -> str:
    """Lambda GB-seconds the tiles used, from the tiles that ran in a Lambda function.

    >>> _measured([{"worker": "lambda:abc", "duration_s": 2.0}], 1024)
    'measured 2 GB-s (2.00 tile-s in Lambda at 1024 MB)'
    >>> _measured([{"worker": "local-7", "duration_s": 2.0}], 1024)
    'measured here: 2.00 tile-s in the local pool, no Lambda GB-s'
    """
    in_lambda = sum(t["duration_s"] for t in done if str(t.get("worker") or "").startswith("lambda:"))
    if not in_lambda:
        return f"measured here: {sum(t['duration_s'] for t in done):.2f} tile-s in the local pool, no Lambda GB-s"
    return f"measured {in_lambda * memory_mb / 1024:.3g} GB-s ({in_lambda:.2f} tile-s in Lambda at {memory_mb} MB)"


def performance_text(report: dict[str, Any], memory_mb: int = LAMBDA_MEMORY_MB) -> str:
    """The figures a person looks at first: tile times, wall time, speedup, efficiency, bytes, cost.

    >>> rep = {"job_id": "j1", "summary": {"status": "SUCCEEDED", "tiles_total": 2,
    ...        "timings": {"created_at": 9.0, "started_at": 10.0, "finished_at": 12.0}},
    ...        "tiles": [{"status": "done", "started_at": 10.1, "finished_at": 11.1, "duration_s": 1.0,
    ...                   "worker": "w1", "bytes_read": 100, "bytes_written": 50},
    ...                  {"status": "done", "started_at": 10.2, "finished_at": 11.7, "duration_s": 1.5,
    ...                   "worker": "w2", "bytes_read": 100, "bytes_written": 50}]}
    >>> print(performance_text(rep))
    job            j1 (SUCCEEDED)
    tiles          2 done of 2, 0 failed
    tile time      min 1.000 s, median 1.250 s, max 1.500 s, sum 2.500 s
    wall time      2.000 s (first tile started 0.100 s after the job)
    speedup        1.25 (sum of tile times / wall time)
    efficiency     w1 50%, w2 75% (busy time / wall time)
    bytes          200 read, 100 written
    >>> rep["summary"].update(attempts_total=3, retries=1, attempts_failed=1)
    >>> print(performance_text(rep).splitlines()[2])
    attempts       3 for 2 tiles: 1 retry, 1 failed or lost
    """
    summary, tiles = report["summary"], report["tiles"]
    done = [t for t in tiles if t["status"] == TileState.DONE and t.get("duration_s") is not None]
    durations = [t["duration_s"] for t in done]
    timings = summary.get("timings") or {}
    start = timings.get("started_at") or min((t["started_at"] for t in done), default=None)
    end = timings.get("finished_at") or max((t["finished_at"] for t in done), default=None)
    wall = (end - start) if start is not None and end is not None else None
    lines = [f"job            {report['job_id']} ({summary.get('status')})",
             f"tiles          {len(done)} done of {summary.get('tiles_total', len(tiles))}, "
             f"{sum(1 for t in tiles if t['status'] == 'failed')} failed"]
    if "attempts_total" in summary:
        retries = summary.get("retries", 0)
        lines.append(f"attempts       {summary['attempts_total']} for {len(tiles)} tiles: {retries} "
                     f"{'retry' if retries == 1 else 'retries'}, {summary.get('attempts_failed', 0)} failed or lost")
    if durations:
        lines.append(f"tile time      min {min(durations):.3f} s, median {statistics.median(durations):.3f} s, "
                     f"max {max(durations):.3f} s, sum {sum(durations):.3f} s")
    if wall and start is not None:
        first = min((t["started_at"] for t in done), default=start)
        lines.append(f"wall time      {wall:.3f} s (first tile started {first - start:.3f} s after the job)")
        lines.append(f"speedup        {sum(durations) / wall:.2f} (sum of tile times / wall time)")
        busy: dict[str, float] = {}
        for t in done:
            busy[t.get("worker") or "?"] = busy.get(t.get("worker") or "?", 0.0) + t["duration_s"]
        lines.append("efficiency     " + ", ".join(f"{w} {100 * b / wall:.0f}%" for w, b in sorted(busy.items()))
                     + " (busy time / wall time)")
    read = sum(t.get("bytes_read") or 0 for t in tiles)
    written = sum(t.get("bytes_written") or 0 for t in tiles)
    lines.append(f"bytes          {read} read, {written} written")
    cost = summary.get("cost_estimate")
    if cost:
        lines.append(f"cost estimate  ${cost.get('total_usd', 0):.4g} on AWS, {cost.get('lambda_gb_s', 0):g} "
                     f"Lambda GB-s planned; {_measured(done, memory_mb)}")
    model = summary.get("aws_prediction")
    if model:
        lines.append(f"aws model      {model['tile_gb_s']:.4g} tile GB-s predicted ({model['lambda_gb_s']:.4g} with "
                     f"start-ups, plan and reduce), ${model['total_usd']:.4g}, {model['wall_s']:.4g} s wall; "
                     f"{_measured(done, memory_mb)}")
    return "\n".join(lines)


def csv_text(rows: list[dict[str, Any]]) -> str:
    """One CSV row per attempt at a tile."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, LOG_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def error_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The attempts that failed or were lost, whether or not their tile later succeeded."""
    return [a for a in attempts_of(report) if a.get("error") or a["status"] in FAILED_ATTEMPTS]


def runtime_png(report: dict[str, Any]) -> bytes | None:
    """The Gantt chart as PNG bytes, or None without matplotlib (the ``report`` extra)."""
    try:
        from tilefan.entrypoints.report.gantt import draw_gantt
    except ModuleNotFoundError:
        return None
    buf = io.BytesIO()
    draw_gantt(report, buf)
    return buf.getvalue()


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    """Write the folder; returns the files written (runtime.png only with matplotlib)."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"logs.csv": csv_text(attempts_of(report)), "error.csv": csv_text(error_rows(report)),
             "performance.txt": performance_text(report) + "\n"}
    for name, text in files.items():
        (out / name).write_text(text)
    written = [out / name for name in files]
    png = runtime_png(report)
    if png is not None:
        (out / "runtime.png").write_bytes(png)
        written.append(out / "runtime.png")
    return written

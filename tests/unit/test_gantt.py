"""The Gantt chart's bars: one per attempt, failed and lost ones drawn apart from counted ones."""

from __future__ import annotations

import io

from tilefan.entrypoints.report.gantt import FAILED, _bars, _style, draw_gantt

ATTEMPTS = [
    {"tile_id": 0, "attempt": 1, "status": "failed", "started_at": 10.0, "finished_at": 10.3, "worker": "w1",
     "route": "lambda"},
    {"tile_id": 0, "attempt": 2, "status": "done", "started_at": 10.5, "finished_at": 11.0, "worker": "w2",
     "route": "lambda"},
    {"tile_id": 1, "attempt": 1, "status": "lost", "started_at": 10.0, "finished_at": None, "worker": "w2",
     "route": "lambda"},
    {"tile_id": 1, "attempt": 2, "status": "done", "started_at": 10.4, "finished_at": 10.9, "worker": "w1",
     "route": "spot"},
    {"tile_id": 2, "attempt": 1, "status": "running", "started_at": 10.2, "finished_at": None, "worker": "w1",
     "route": "lambda"},
]


def test_every_attempt_with_an_end_is_a_bar_and_a_lost_one_ends_where_its_retry_began() -> None:
    bars = _bars({"job_id": "j", "tiles": [], "attempts": ATTEMPTS})
    assert [(b["tile_id"], b["attempt"], b["end"]) for b in bars] == [(0, 1, 10.3), (0, 2, 11.0), (1, 1, 10.4),
                                                                      (1, 2, 10.9)]


def test_failed_and_lost_attempts_are_drawn_apart_from_counted_ones() -> None:
    failed, lost, done = (_style({"status": s, "route": "lambda"}) for s in ("failed", "lost", "done"))
    assert failed["color"] == FAILED and failed["hatch"]
    assert lost["facecolor"] == "none" and lost["edgecolor"] == FAILED and lost["hatch"]
    assert "hatch" not in done and done["color"] != FAILED
    assert _style({"status": "duplicate"})["color"] != done["color"]


def test_the_chart_is_a_png_with_or_without_attempts() -> None:
    for report in ({"job_id": "j", "tiles": [], "attempts": ATTEMPTS},
                   {"job_id": "j", "tiles": [{**a, "attempts": 1} for a in ATTEMPTS if a["attempt"] == 2]}):
        buf = io.BytesIO()
        draw_gantt(report, buf)
        assert buf.getvalue().startswith(b"\x89PNG")

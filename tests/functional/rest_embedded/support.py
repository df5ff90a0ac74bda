"""What the embedded REST tests check a response or a run with."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tilefan.runtimes.embedded.scheduler import Scheduler
from tilefan.service.jobs import JobService

RECORD_KEYS = {"job_id", "kind", "status", "spec", "progress", "timings", "result", "error", "links", "owner"}

MakeService = Callable[..., JobService]


def assert_accepted(response: Any, kind: str) -> dict[str, Any]:
    """202 with the full job record and its links."""
    assert response.status_code == 202, response.json_body
    doc: dict[str, Any] = response.json_body
    assert set(doc) == RECORD_KEYS
    assert doc["kind"] == kind
    assert doc["owner"] == "local"  # the embedded backend's one principal
    assert doc["status"] in ("QUEUED", "RUNNING")
    assert doc["result"] is None and doc["error"] is None
    assert doc["links"]["self"] == f"/jobs/{doc['job_id']}"
    assert doc["links"]["report"] == f"/jobs/{doc['job_id']}/report"
    assert doc["progress"]["tiles_total"] > 1, "these jobs are about fan-out: use several tiles"
    return doc


def assert_finished(doc: dict[str, Any]) -> None:
    assert doc["status"] == "SUCCEEDED", doc["error"]
    progress = doc["progress"]
    assert progress["tiles_done"] == progress["tiles_total"] > 1
    assert progress["units_done"] == progress["units_total"] > 0
    assert progress["percent"] == 100.0
    assert progress["eta_s"] == 0.0
    assert doc["result"]["verification"]["passed"] is True
    assert doc["timings"]["wall_s"] > 0


def scheduler_of(service: JobService) -> Scheduler:
    """The embedded backend's runner (its ``wait`` returns once a job has ended and left it)."""
    assert isinstance(service.runner, Scheduler), type(service.runner)
    return service.runner


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def job_threads(job_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"job-{job_id}" and t.is_alive()]

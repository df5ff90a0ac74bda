"""Through the real doors, a submission's job is cut into tiles once: the core hands the
plan its submission cut to the embedded scheduler's plan step, and the scheduler reads the
tiles the plan step stored. Counted for a one-shot run (``tilefan run``, the Python API)
and for a server's core (REST, ``tilefan serve``); a dry run plans once too."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

import tilefan.runtimes.embedded.scheduler_steps  # noqa: F401  (in sys.modules, so the spy reaches it)
from tests.unit.test_plan_once import ADD, ATOMS, MATMUL, count_plans
from tilefan.bootstrap import Config, build_core
from tilefan.domain.records import Status
from tilefan.pipeline import plan as pipeline_plan  # noqa: F401
from tilefan.runtimes.embedded.scheduler import Scheduler

KINDS = pytest.mark.parametrize("raw", [MATMUL, ADD, ATOMS, {**ATOMS, "tile": 16}],
                                ids=["matmul", "add", "atoms", "atoms-tiles"])


@KINDS
@pytest.mark.parametrize("workers", [1, 2])
def test_a_one_shot_run_plans_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: dict[str, Any],
                                   workers: int) -> None:
    core = build_core(Config(home=tmp_path / "home", workers=workers), one_shot=True)
    tilings = count_plans(monkeypatch)
    record = core.run(raw)
    assert record.status is Status.SUCCEEDED
    assert len(tilings) == 1, tilings


@KINDS
def test_a_server_submission_plans_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        raw: dict[str, Any]) -> None:
    # One worker: the plan step runs in this process's helper threads, where the spy sees
    # it (with more, it runs in a pool worker: see the pickling test below).
    core = build_core(Config(home=tmp_path / "home", workers=1))
    assert isinstance(core.runner, Scheduler)
    tilings = count_plans(monkeypatch)
    try:
        job = core.submit(raw)
        core.runner.wait(job["job_id"], timeout=60)
        assert core.ports.jobs.get_job(job["job_id"]).status is Status.SUCCEEDED
    finally:
        core.runner.stop()
    assert len(tilings) == 1, tilings


def test_a_dry_run_plans_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    core = build_core(Config(home=tmp_path / "home", workers=2), one_shot=True)
    tilings = count_plans(monkeypatch)
    dry = core.plan_only(ATOMS)
    assert len(tilings) == 1 and len(dry.manifest["tiles"]) == len(dry.plan.tiles) == 16


def test_a_handed_plan_survives_the_trip_to_a_pool_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    # A server with a pool plans in a worker process: the plan goes there pickled, and must
    # still be recognised as the job's plan, so the worker does not cut it again.
    from tilefan.domain.plan import plan, plan_unless_planned
    from tilefan.domain.spec.parse import parse_spec
    from tilefan.settings import list_policy

    spec, policy = parse_spec(ATOMS), list_policy()
    travelled = pickle.loads(pickle.dumps(plan("submit", spec, policy)))
    tilings = count_plans(monkeypatch)
    assert plan_unless_planned("job1", spec, policy, travelled).job_id == "job1"
    assert tilings == []


@pytest.mark.parametrize("door", ["cli", "python"])
def test_a_run_writing_a_map_plans_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, door: str) -> None:
    # The map's check of the grid rides on the submission instead of admitting it first.
    import tilefan
    from tilefan.entrypoints.cli.main import main

    monkeypatch.setenv("TILEFAN_HOME", str(tmp_path / "home"))
    tilings = count_plans(monkeypatch)
    out = tmp_path / "phi.dx"
    if door == "cli":
        assert main(["run", "atoms", "--grid", "16", "--atoms", "50", "--workers", "1", "--field-out", str(out)]) == 0
    else:
        tilefan.atoms(16, atoms=50, field_out=out, workers=1)
    assert out.read_text().startswith("#") and len(tilings) == 1, tilings

"""A submission cuts its job into tiles once: the size fit, the guardrails, the record and
the plan step share one plan, and a runner picking the job up reads the tile list the plan
step stored. A stored spec is decoded once, however often its record is read."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from tilefan.adapters import records_codec
from tilefan.adapters.memory import MemoryBlobStore, MemoryJobStore
from tilefan.domain import plan as domain_plan
from tilefan.domain.plan import Plan
from tilefan.domain.routing import LAMBDA, SPOT, RoutePolicy
from tilefan.domain.spec.parse import JobSpec, Limits, parse_spec
from tilefan.errors import InvalidSpecError
from tilefan.pipeline.guardrails import check_guardrails
from tilefan.pipeline.inputs import manifest_key
from tilefan.pipeline.plan import plan_job, planned_tiles, tile_items
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.submit import submit
from tilefan.settings import LIST_PRICES, list_policy

MATMUL = {"kind": "matmul", "a": {"shape": [600, 300], "seed": 1}, "b": {"shape": [300, 500], "seed": 2}}
ADD = {"kind": "add", "a": {"shape": [300, 200], "seed": 1}, "b": {"shape": [300, 200], "seed": 2}}
ATOMS = {"kind": "atoms", "grid": 48, "atoms": {"count": 50, "seed": 3}}

# A slow atoms kernel and a dear spot worker: one tile of a 32³ grid of 1,000 atoms (3.3e8
# flops) then takes about 600 s on a Lambda, over the 450 s budget, so it routes to spot,
# where it costs about $9; two half tiles fit a Lambda each for about $0.10.
POLICY = list_policy()
SLOW = replace(POLICY, atoms_vcpu_gflops=1.05e-4, prices=replace(LIST_PRICES, spot_hour=50.0))
REFIT = {"kind": "atoms", "grid": 32, "atoms": {"count": 1000, "seed": 5}}


def memory_ports() -> Ports:
    return Ports(MemoryBlobStore(), MemoryJobStore())


def count_plans(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Spy on ``tilefan.domain.plan.plan`` in every module that holds it; the tiles of each
    spec it cuts, in call order."""
    real = domain_plan.plan
    tilings: list[tuple[int, ...]] = []

    def spy(job_id: str, spec: JobSpec, policy: RoutePolicy | None = None) -> Plan:
        tilings.append(tuple(spec.tile))
        return real(job_id, spec, policy)

    for module in list(sys.modules.values()):
        if module is not None and module.__name__.startswith("tilefan") and vars(module).get("plan") is real:
            monkeypatch.setattr(module, "plan", spy)
    return tilings


def submit_and_plan(ports: Ports, raw: dict[str, Any], policy: RoutePolicy | None = None) -> tuple[Plan, Plan]:
    """Submit ``raw``, run its plan step with the submission's plan, and read the stored tiles
    as a runner picking the job up does; the submission's plan and the plan step's."""
    submission = submit(ports, raw, policy=policy, queue=True)
    record = submission.record
    stepped = plan_job(ports, record.job_id, policy=policy, planned=submission.plan)
    tiles = planned_tiles(ports, record.job_id, record.spec, policy)
    assert tiles == [(t.tile_id, t.route) for t in stepped.tiles]
    return submission.plan, stepped


@pytest.mark.parametrize("raw", [MATMUL, ADD, ATOMS, {**MATMUL, "tile": 256}, {**ADD, "tile": [100, 200]},
                                 {**ATOMS, "tile": 16}, {**MATMUL, "route": "spot"}],
                         ids=["matmul", "add", "atoms", "matmul-tile", "add-tile", "atoms-tile", "matmul-spot"])
def test_a_submission_plans_its_job_once(monkeypatch: pytest.MonkeyPatch, raw: dict[str, Any]) -> None:
    ports = memory_ports()
    tilings = count_plans(monkeypatch)
    submitted, stepped = submit_and_plan(ports, raw)
    assert len(tilings) == 1
    # The plan handed on is the one a fresh plan of the recorded spec gives, manifest and all.
    record = ports.jobs.get_job(submitted.job_id)
    fresh = domain_plan.plan(record.job_id, record.spec, POLICY)
    assert stepped == fresh and stepped.job_id == record.job_id
    assert ports.blobs.get_json(manifest_key(record.job_id)) == fresh.manifest()
    assert record.tiles_total == len(fresh.tiles) and tile_items(stepped) == tile_items(fresh)


def test_a_refitted_submission_plans_each_tiling_it_tries_once(monkeypatch: pytest.MonkeyPatch) -> None:
    default = parse_spec(REFIT)
    assert {t.route for t in domain_plan.plan("j", default, SLOW).tiles} == {SPOT}
    ports = memory_ports()
    tilings = count_plans(monkeypatch)
    submitted, stepped = submit_and_plan(ports, REFIT, SLOW)
    record = ports.jobs.get_job(submitted.job_id)
    assert record.spec.tile != default.tile and {t.route for t in stepped.tiles} == {LAMBDA}
    # The fit cut the default tiling (it sends work to spot) and then the halved one,
    # which fits a Lambda; the job's plan is that one, cut once and never again.
    assert tilings == [default.tile, record.spec.tile]
    assert stepped == domain_plan.plan(record.job_id, record.spec, SLOW)


def test_a_plan_that_is_not_the_jobs_is_cut_again(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = memory_ports()
    submission = submit(ports, REFIT, policy=SLOW)
    tilings = count_plans(monkeypatch)
    # Under the default policy the job's own tiles are planned, not the SLOW plan's routes.
    stepped = plan_job(ports, submission.record.job_id, planned=submission.plan)
    assert tilings == [submission.record.spec.tile]
    assert stepped == domain_plan.plan(submission.record.job_id, submission.record.spec, POLICY)
    assert stepped != submission.plan
    other = replace(submission.record.spec, tile=(32, 32, 32))
    assert check_guardrails(other, Limits(), SLOW, planned=submission.plan).is_plan_of(other, SLOW)


def test_guardrails_count_tiles_before_planning(monkeypatch: pytest.MonkeyPatch) -> None:
    tilings = count_plans(monkeypatch)
    with pytest.raises(InvalidSpecError, match="TILEFAN_MAX_TILES"):
        check_guardrails(parse_spec({**ADD, "tile": 1}), Limits())
    assert tilings == []


def test_a_runner_resuming_a_job_without_a_stored_tile_list_plans_it() -> None:
    spec = parse_spec({**ADD, "tile": [100, 200]})
    expected = [(t.tile_id, t.route) for t in domain_plan.plan("j", spec, POLICY).tiles]
    assert planned_tiles(memory_ports(), "j", spec) == expected == [(0, LAMBDA), (1, LAMBDA), (2, LAMBDA)]


def test_a_stored_spec_is_decoded_once_however_often_its_record_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    real: Callable[..., JobSpec] = records_codec.spec_from_stored
    decoded: list[Any] = []
    monkeypatch.setattr(records_codec, "spec_from_stored", lambda raw: decoded.append(raw) or real(raw))
    ports = memory_ports()
    # A seed no other test uses: a spec text this process has not decoded yet.
    record = submit(ports, {**ADD, "a": {"shape": [300, 200], "seed": 918_273}}).record
    reads = [ports.jobs.get_job(record.job_id) for _ in range(5)]
    reads += ports.jobs.list_jobs(10)[0]
    assert len(decoded) == 1
    assert all(r.spec == record.spec for r in reads)

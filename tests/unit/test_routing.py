"""Routing tiles to Lambda or spot: the margins, the per-job override, the cost rule that may
shrink tiles to stay on Lambda, the plan's items for the state machine, the settings that
tune all this, and the capacity step's arithmetic. Pure functions and fakes only."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from chalicelib import lambdas
from tilefan import settings
from tilefan.domain import routing
from tilefan.domain.plan import plan
from tilefan.domain.routing import LAMBDA, SPOT, choose_route
from tilefan.domain.spec.parse import AtomsSpec, RandomAtoms, parse_spec, spec_from_stored, spec_to_dict
from tilefan.domain.tile_fit import FIT_MAX_TILES, fit_to_lambda
from tilefan.errors import CapacityError, InvalidSpecError
from tilefan.pipeline.plan import tile_items
from tilefan.pipeline.submit import admit
from tilefan.settings import LIST_PRICES

GiB = 1 << 30
POLICY = settings.list_policy()  # the planner's defaults at the list prices

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")


# --------------------------------------------------------------------------- the rule


def test_a_tile_goes_to_spot_when_it_would_break_a_margin() -> None:
    policy = POLICY  # 70% of 10,240 MB, 50% of 900 s
    assert choose_route(int(7 * GiB), 10**9, policy) == LAMBDA
    assert choose_route(int(7.01 * GiB), 10**9, policy) == SPOT
    # 449 s of GEMM at 60 GFLOP/s (plus a second of overhead) fits; 451 s does not.
    assert choose_route(GiB, int(448 * 60e9), policy) == LAMBDA
    assert choose_route(GiB, int(450 * 60e9), policy) == SPOT
    # Bytes moved count too: 150 GB at the function's 300 MB/s is 500 s.
    assert policy.lambda_io_mb_s == 300.0
    assert choose_route(GiB, 0, policy, io_bytes=130 * 10**9) == LAMBDA
    assert choose_route(GiB, 0, policy, io_bytes=150 * 10**9) == SPOT


def test_the_margins_are_configurable() -> None:
    loose = replace(POLICY, memory_margin=0.9, time_margin=0.9)
    assert choose_route(int(8 * GiB), 10**9, POLICY) == SPOT
    assert choose_route(int(8 * GiB), 10**9, loose) == LAMBDA
    assert choose_route(GiB, int(700 * 60e9), loose) == LAMBDA


# A 10,240 MB Lambda computes on 10,240 / 1,769 = 5.79 vCPUs; each past the first adds 0.9 of one.
SIX_VCPUS = 1 + 0.9 * (10_240 / 1769 - 1)


def test_atoms_tiles_are_timed_at_the_atoms_kernel_rate_not_gemm() -> None:
    flops = int(400 * 60e9)  # 400 s of GEMM, 476 s of the C atoms kernel in float64 on every vCPU
    assert choose_route(GiB, flops, POLICY) == LAMBDA
    assert choose_route(GiB, flops, POLICY, atoms=True) == SPOT


def test_the_lambda_atoms_rate_is_the_per_vcpu_rate_times_the_vcpus_its_memory_buys() -> None:
    flops = 10**12
    def kernel_s(memory_mb: int, precision: str = "float64") -> float:
        policy = replace(POLICY, lambda_memory_mb=memory_mb)
        return routing.lambda_seconds(flops, 0, policy, atoms=True, precision=precision) - policy.lambda_overhead_s

    assert kernel_s(1769) == pytest.approx(flops / 9.5e9)  # one vCPU
    assert kernel_s(1769, "float32") == pytest.approx(flops / 28e9)
    assert kernel_s(884) == pytest.approx(flops / 9.5e9 / (884 / 1769))  # half a vCPU: half the rate
    assert kernel_s(1769) / kernel_s(3538) == pytest.approx(1.9)  # two vCPUs
    assert kernel_s(1769) / kernel_s(10_240) == pytest.approx(SIX_VCPUS)  # 5.31×
    # A spot worker's 16 vCPUs at the same per-vCPU rate.
    assert routing.spot_seconds(flops, 0, POLICY, atoms=True) == pytest.approx(flops / (9.5e9 * (1 + 0.9 * 15)))


def test_more_atoms_work_fits_one_lambda_tile_before_spot_is_needed() -> None:
    budget = POLICY.lambda_time_budget - POLICY.lambda_overhead_s  # 449 s of kernel
    on_one_vcpu = int(budget * 9.5e9)
    assert choose_route(GiB, int(on_one_vcpu * 5), POLICY, atoms=True) == LAMBDA
    assert choose_route(GiB, int(on_one_vcpu * SIX_VCPUS * 1.01), POLICY, atoms=True) == SPOT
    assert choose_route(GiB, int(on_one_vcpu * 1.01), replace(POLICY, lambda_memory_mb=1769), atoms=True) == SPOT


def test_float32_atoms_tiles_are_timed_at_the_float32_rate() -> None:
    flops = int(400 * 9.5e9 * SIX_VCPUS)  # 400 s of the float64 kernel on the function's vCPUs
    policy = POLICY
    f64 = routing.lambda_seconds(flops, 0, policy, atoms=True)
    f32 = routing.lambda_seconds(flops, 0, policy, atoms=True, precision="float32")
    assert f64 == pytest.approx(1.0 + 400.0)
    assert f32 == pytest.approx(1.0 + 400.0 * 9.5 / 28.0)
    heavy = int(600 * 9.5e9 * SIX_VCPUS)  # 600 s in float64: over the 450 s budget; 204 s in float32: under it
    assert choose_route(GiB, heavy, policy, atoms=True) == SPOT
    assert choose_route(GiB, heavy, policy, atoms=True, precision="float32") == LAMBDA


def test_cost_counts_lambda_gb_seconds_spot_instance_time_and_transitions() -> None:
    policy = replace(POLICY, spot_overhead_s=0.0, prices=replace(LIST_PRICES, spot_hour=3.6))
    est = routing.estimate_cost([routing.TileCost(LAMBDA, 100.0, 10.0), routing.TileCost(SPOT, 1000.0, 10.0)], policy)
    assert est.lambda_gb_s == pytest.approx(1000.0)  # 100 s at 10 GB
    assert est.lambda_usd == pytest.approx(1000.0 * 0.0000166667)
    assert est.spot_usd == pytest.approx(0.01)  # 10 s at $3.60 an hour
    assert est.to_dict()["total_usd"] == pytest.approx(est.total_usd, abs=1e-6)


# --------------------------------------------------------------------------- the plan


MATMUL = {"kind": "matmul", "a": {"shape": [300, 200]}, "b": {"shape": [200, 100]}, "tile": 100}
BIG_ATOMS = {"kind": "atoms", "grid": 64, "atoms": {"count": 10_000_000, "seed": 1}}


@pytest.mark.parametrize("route", ["lambda", "spot"])
def test_a_job_can_force_every_tile_onto_one_route(route: str) -> None:
    the_plan = plan("j", parse_spec({**MATMUL, "route": route}), POLICY)
    assert {t.route for t in the_plan.tiles} == {route}
    manifest = the_plan.manifest()
    other = "spot" if route == "lambda" else "lambda"
    assert manifest["totals"]["routes"] == {route: 3, other: 0}
    assert all(t["route"] == route and t["est_lambda_s"] > 0 and t["est_spot_s"] > 0 for t in manifest["tiles"])
    assert manifest["cost_estimate"][f"{route}_tiles"] == 3


def test_the_items_the_maps_read_carry_each_tiles_route() -> None:
    the_plan = plan("j", parse_spec({**MATMUL, "route": "spot"}), POLICY)
    assert tile_items(the_plan) == [{"job_id": "j", "tile_id": t, "route": "spot"} for t in range(3)]


def test_the_route_override_is_validated_stored_and_defaulted() -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_spec({**MATMUL, "route": "gpu"})
    assert info.value.field == "route"
    spec = parse_spec({**BIG_ATOMS, "route": "spot"})
    stored = spec_to_dict(spec)
    assert stored["route"] == "spot" and spec_from_stored(stored) == spec
    del stored["route"]  # a record from before routes existed
    assert spec_from_stored(stored).route == "auto"


# --------------------------------------------------------------------------- fitting tiles to Lambda


def atoms(**changes: Any) -> AtomsSpec:
    """One 64^3 tile of ten million atoms: about 520 s of the C kernel on a Lambda's vCPUs."""
    spec = parse_spec({**BIG_ATOMS, "tile": 64})
    assert isinstance(spec, AtomsSpec)
    return replace(spec, **changes)


def test_big_spot_tiles_stay_big_when_spot_is_cheaper() -> None:
    spec = atoms()
    assert {t.route for t in plan("j", spec, POLICY).tiles} == {SPOT}
    assert fit_to_lambda(spec, POLICY) == spec


def test_tiles_shrink_to_fit_lambda_when_lambda_is_cheaper() -> None:
    dear_spot = replace(POLICY, prices=replace(LIST_PRICES, spot_hour=50.0))
    spec = atoms()
    fitted = fit_to_lambda(spec, dear_spot)
    assert fitted.tile != spec.tile
    fitted_plan = plan("j", fitted, dear_spot)
    assert {t.route for t in fitted_plan.tiles} == {LAMBDA}
    # The largest such tiling: one halving fewer would not fit.
    bigger = tuple(min(2 * t, g) if t != g else t for t, g in zip(fitted.tile, fitted.grid, strict=True))
    assert SPOT in {t.route for t in plan("j", replace(fitted, tile=bigger), dear_spot).tiles}
    base, fit = plan("j", spec, dear_spot).cost, fitted_plan.cost
    assert base is not None and fit is not None and fit.total_usd <= base.total_usd


def test_fitting_leaves_a_forced_route_or_an_impossible_fit_alone() -> None:
    dear_spot = replace(POLICY, prices=replace(LIST_PRICES, spot_hour=50.0))
    forced = atoms(route="spot")
    assert fit_to_lambda(forced, dear_spot) == forced
    # A tile that needs more than a Lambda however small it gets (9 GB of atoms table).
    huge = atoms(atoms=RandomAtoms(count=300_000_000, seed=1))
    assert fit_to_lambda(huge, dear_spot) == huge
    assert FIT_MAX_TILES >= 1_000


def test_admission_fits_only_tiles_the_user_left_to_us() -> None:
    dear_spot = replace(POLICY, prices=replace(LIST_PRICES, spot_hour=50.0))

    class NoFiles:
        def array_info(self, key: str) -> Any:
            raise AssertionError("no files here")

    ports: Any = type("P", (), {"blobs": NoFiles(), "memory_outputs": None})()
    raw = {**BIG_ATOMS, "grid": 256}
    default = parse_spec(raw)
    assert SPOT in {t.route for t in plan("j", default, dear_spot).tiles}
    fitted = admit(ports, raw, parse_limits(), dear_spot)
    assert fitted.tile != default.tile and {t.route for t in plan("j", fitted, dear_spot).tiles} == {LAMBDA}
    given = admit(ports, {**raw, "tile": list(default.tile)}, parse_limits(), dear_spot)
    assert given.tile == default.tile


def parse_limits() -> Any:
    from tilefan.domain.spec.parse import Limits

    return Limits()


# --------------------------------------------------------------------------- settings


def test_route_policy_and_spot_settings_come_from_the_environment() -> None:
    policy = settings.route_policy({"TILEFAN_LAMBDA_MEMORY_MARGIN": "0.5", "TILEFAN_LAMBDA_TIME_MARGIN": "0.8",
                                     "TILEFAN_SPOT_HOUR_PRICE": "0.4", "TILEFAN_SPOT_MAX_INSTANCES": "9"})
    assert (policy.memory_margin, policy.time_margin, policy.prices.spot_hour, policy.spot_max_workers) == (
        0.5, 0.8, 0.4, 9)
    spot = settings.spot_settings({"TILEFAN_SPOT_HEARTBEAT_S": "30", "TILEFAN_SPOT_SUBNETS": "subnet-a, subnet-b,",
                                    "TILEFAN_IMDS_URL": "http://127.0.0.1:9"})
    assert spot.heartbeat_s == 30 and spot.subnets == ("subnet-a", "subnet-b") and spot.imds_url == "http://127.0.0.1:9"
    assert settings.spot_settings({}) == settings.SpotSettings()


@pytest.mark.parametrize(("env", "field"), [
    ({"TILEFAN_LAMBDA_MEMORY_MARGIN": "1.5"}, "TILEFAN_LAMBDA_MEMORY_MARGIN"),
    ({"TILEFAN_LAMBDA_TIME_MARGIN": "zero"}, "TILEFAN_LAMBDA_TIME_MARGIN"),
    ({"TILEFAN_SPOT_HOUR_PRICE": "-1"}, "TILEFAN_SPOT_HOUR_PRICE"),
    ({"TILEFAN_SPOT_HEARTBEAT_S": "600", "TILEFAN_SPOT_TIMEOUT_S": "600"}, "TILEFAN_SPOT_HEARTBEAT_S"),
    ({"TILEFAN_WORKER_WAIT_S": "21"}, "TILEFAN_WORKER_WAIT_S"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        settings.route_policy(env)
        settings.spot_settings(env)
    assert info.value.field == field


# --------------------------------------------------------------------------- the capacity step


@dataclass
class FakeCapacity:
    live: int = 0
    refuse: bool = False
    launched: list[tuple[int, str]] | None = None

    def running(self) -> int:
        return self.live

    def launch(self, count: int, job_id: str) -> list[str]:
        if self.refuse:
            raise CapacityError("EC2 run_instances failed: InsufficientInstanceCapacity")
        self.launched = (self.launched or []) + [(count, job_id)]
        return [f"i-{n}" for n in range(count)]


@dataclass
class Context:
    aws_request_id: str = "req-1"


def capacity_step(capacity: FakeCapacity, cap: int = 4) -> None:
    aws = settings.AwsSettings(bucket="b", table="t", state_machine_arn="", region="us-east-1",
                               route_policy=replace(POLICY, spot_max_workers=cap))
    lambdas.set_ports(None, aws)
    lambdas._capacity = capacity  # type: ignore[assignment]


EVENT = {"job_id": "job1", "execution_id": "arn:x"}


def test_the_capacity_step_launches_one_worker_per_spot_tile_within_the_cap() -> None:
    capacity = FakeCapacity(live=1)
    capacity_step(capacity, cap=4)
    try:
        out = lambdas.capacity_handler({**EVENT, "spot_tiles": 10}, Context())
        assert out == {"job_id": "job1", "spot_tiles": 10, "running": 1, "launched": 3}
        assert capacity.launched == [(3, "job1")]
        with pytest.raises(InvalidSpecError) as info:
            lambdas.capacity_handler({**EVENT, "spot_tiles": "2"}, Context())
        assert info.value.field == "spot_tiles"
    finally:
        lambdas.set_ports(None)


def test_no_capacity_fails_the_job_only_when_no_worker_could_take_its_tiles() -> None:
    try:
        capacity_step(FakeCapacity(live=0, refuse=True))
        with pytest.raises(CapacityError):
            lambdas.capacity_handler({**EVENT, "spot_tiles": 2}, Context())
        capacity_step(FakeCapacity(live=2, refuse=True))
        assert lambdas.capacity_handler({**EVENT, "spot_tiles": 2}, Context())["launched"] == 0
    finally:
        lambdas.set_ports(None)


def test_the_spot_worker_cap_is_one_setting_for_the_planner_and_the_capacity_step() -> None:
    aws = settings.parse_aws_settings({"TILEFAN_BUCKET": "b", "TILEFAN_TABLE": "t", "TILEFAN_SPOT_MAX_INSTANCES": "7"})
    assert aws.route_policy.spot_max_workers == 7
    assert not hasattr(aws.spot, "max_instances")
    capacity = FakeCapacity(live=0)
    lambdas.set_ports(None, aws)
    lambdas._capacity = capacity  # type: ignore[assignment]
    try:
        out = lambdas.capacity_handler({**EVENT, "spot_tiles": 20}, Context())
    finally:
        lambdas.set_ports(None)
    assert out["launched"] == 7


def test_the_plan_times_an_atoms_tile_in_the_job_s_precision() -> None:
    raw = {"kind": "atoms", "grid": 64, "atoms": {"count": 10_000_000, "seed": 1}, "tile": 64}
    f64 = plan("d", parse_spec(raw), POLICY).tiles[0]
    f32 = plan("s", parse_spec({**raw, "precision": "float32"}), POLICY).tiles[0]
    # 64³ × 10,000,000 pairs = 2.6e13 flop: 526 s in float64 (spot), 183 s in float32 (Lambda).
    assert (f64.route, f32.route) == (SPOT, LAMBDA)
    io_rate = POLICY.lambda_io_mb_s * 1e6
    assert f64.lambda_s == pytest.approx(1.0 + f64.flops / (9.5e9 * SIX_VCPUS) + f64.bytes_in / io_rate)
    assert f32.lambda_s == pytest.approx(1.0 + f32.flops / (28e9 * SIX_VCPUS) + f32.bytes_in / io_rate)

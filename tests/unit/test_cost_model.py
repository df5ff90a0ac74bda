"""The AWS time and cost model (tilefan.domain.cost_model): its terms one by one, its
defaults against the deployment files, and the worked examples in docs/cost-model.md."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tilefan.adapters.aws.dynamo_items import SHARDS
from tilefan.domain.cost_examples import table, worked_examples
from tilefan.domain.cost_model import (
    READ_UNITS_PER_JOB,
    READ_UNITS_PER_TILE,
    WRITE_UNITS_PER_JOB,
    WRITE_UNITS_PER_TILE,
    Deployment,
    makespan,
    predict,
)
from tilefan.domain.routing import TRANSITIONS_PER_JOB, TRANSITIONS_PER_TILE
from tilefan.settings import LIST_PRICES, list_policy

ROOT = Path(__file__).resolve().parents[2]
POLICY = list_policy()
BARE = Deployment(plan_s=0.0, cold_start_s=0.0, iteration_start_s=0.0, reduce_fixed_s=0.0)


def tiles(n: int, seconds: float = 10.0, route: str = "lambda", bytes_out: int = 0) -> list[dict[str, Any]]:
    return [{"route": route, "est_lambda_s": seconds, "est_spot_s": seconds / 5, "bytes_out": bytes_out}] * n


@pytest.mark.parametrize(("n", "mode", "concurrency"), [(1, "inline", 1), (256, "inline", 40),
                                                        (257, "distributed", 257), (5000, "distributed", 800)])
def test_the_map_and_reserved_concurrency_bound_the_tiles_at_once(n: int, mode: str, concurrency: int) -> None:
    p = predict({"tiles": tiles(n)}, POLICY, deployment=BARE)
    assert (p.map_mode, p.concurrency, p.waves) == (mode, concurrency, math.ceil(n / concurrency))
    assert p.wall_s == pytest.approx(p.waves * 10.0)


def test_wall_time_adds_plan_cold_starts_iteration_starts_and_the_reduce_term() -> None:
    dep = Deployment(plan_s=3.0, cold_start_s=2.0, iteration_start_s=0.5, reduce_fixed_s=1.0, reduce_mb_s=100.0)
    p = predict({"tiles": tiles(100, bytes_out=10**6)}, POLICY, deployment=dep)
    # 40 slots: 3 waves of 10.5 s, the first one 2 s longer; 100 MB out at 100 MB/s.
    assert p.map_s == pytest.approx(2.0 + 3 * 10.5)
    assert p.reduce_s == pytest.approx(1.0 + 1.0)
    assert p.wall_s == pytest.approx(3.0 + p.map_s + p.reduce_s)


def test_slots_take_tiles_in_item_order() -> None:
    assert makespan([5.0, 1.0, 1.0, 1.0, 1.0], 2) == 5.0
    assert makespan([1.0, 1.0, 1.0, 1.0, 5.0], 2) == 7.0
    assert makespan([3.0] * 7, 100, first_extra=1.0) == 4.0


def test_gb_seconds_and_dollars_are_the_sum_of_their_terms() -> None:
    dep = Deployment(plan_s=4.0, cold_start_s=2.0, reduce_fixed_s=3.0, tile_memory_mb=2048, plan_memory_mb=1024,
                     reduce_memory_mb=512)
    p = predict({"tiles": tiles(300, seconds=6.0)}, POLICY, deployment=dep)
    assert p.tile_gb_s == pytest.approx(300 * 6.0 * 2)
    assert p.lambda_gb_s == pytest.approx(p.tile_gb_s + 300 * 2.0 * 2 + 4.0 * 1 + 3.0 * 0.5)
    assert p.lambda_usd == pytest.approx(p.lambda_gb_s * LIST_PRICES.lambda_gb_s
                                         + (300 + 2) * LIST_PRICES.lambda_request)
    assert p.transitions == TRANSITIONS_PER_JOB + 300 * TRANSITIONS_PER_TILE
    assert p.steps_usd == pytest.approx(p.transitions * LIST_PRICES.sfn_transition)
    assert (p.dynamo_write_units, p.dynamo_read_units) == (WRITE_UNITS_PER_JOB + 300 * WRITE_UNITS_PER_TILE,
                                                           READ_UNITS_PER_JOB + 300 * READ_UNITS_PER_TILE)
    assert p.dynamo_usd == pytest.approx(p.dynamo_write_units * LIST_PRICES.dynamo_write_unit
                                         + p.dynamo_read_units * LIST_PRICES.dynamo_read_unit)
    assert p.s3_usd == pytest.approx(p.s3_puts * LIST_PRICES.s3_put + p.s3_gets * LIST_PRICES.s3_get)
    assert p.total_usd == pytest.approx(p.lambda_usd + p.steps_usd + p.dynamo_usd + p.s3_usd)
    assert p.to_dict()["total_usd"] == round(p.total_usd, 6)


def test_a_big_partial_is_uploaded_in_parts() -> None:
    small = predict({"tiles": tiles(1, bytes_out=1 << 20)}, POLICY)
    big = predict({"tiles": tiles(1, bytes_out=100 << 20)}, POLICY)
    assert big.s3_puts - small.s3_puts == 13 + 2 - 1  # 13 parts of 8 MiB, create and complete, not one PUT


def test_short_tiles_at_full_concurrency_overload_a_counter_shard() -> None:
    slow = predict({"tiles": tiles(2000, seconds=10.0)}, POLICY, deployment=BARE)
    fast = predict({"tiles": tiles(2000, seconds=0.1)}, POLICY, deployment=BARE)
    # 8 write units a tile (docs/aws-scale.md): start and attempt, and the completion of three items.
    assert WRITE_UNITS_PER_TILE == 8
    assert slow.shard_write_units_s == pytest.approx(800 / 10.0 * 8 / 16) and slow.dynamo_fits
    assert fast.shard_write_units_s == pytest.approx(800 / 0.1 * 8 / 16) and not fast.dynamo_fits


def test_the_history_cap_applies_to_inline_jobs_only() -> None:
    inline = predict({"tiles": tiles(256)}, POLICY)
    distributed = predict({"tiles": tiles(9000)}, POLICY)
    assert inline.history_events_max == 22 + 9 * 256 and inline.history_fits
    assert distributed.history_events_max < 30 and distributed.history_fits


def test_spot_tiles_wait_for_boot_and_share_the_workers() -> None:
    policy = replace(POLICY, spot_max_workers=2, spot_overhead_s=100.0, prices=replace(LIST_PRICES, spot_hour=3.6))
    p = predict({"tiles": tiles(5, seconds=50.0, route="spot")}, policy, BARE)
    assert (p.lambda_tiles, p.spot_tiles, p.spot_workers, p.concurrency) == (0, 5, 2, 0)
    assert p.map_s == pytest.approx(BARE.spot_boot_s + 3 * 10.0)
    assert p.spot_instance_s == pytest.approx(5 * 10.0 + 2 * 100.0)
    assert p.spot_usd == pytest.approx(p.spot_instance_s * 3.6 / 3600)


def test_the_defaults_are_the_deployment_files() -> None:
    asl = json.loads((ROOT / "stepfunctions" / "tilefan.asl.json").read_text())["States"]
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    functions = config["lambda_functions"]
    d = Deployment()
    assert asl["InlineMap"]["MaxConcurrency"] == d.inline_concurrency
    assert asl["DistributedMap"]["MaxConcurrency"] == d.distributed_concurrency
    assert functions["tile"]["reserved_concurrency"] == d.tile_reserved_concurrency
    assert functions["tile"]["lambda_memory_size"] == d.tile_memory_mb == POLICY.lambda_memory_mb
    assert functions["plan"]["lambda_memory_size"] == d.plan_memory_mb
    assert functions["reduce"]["lambda_memory_size"] == d.reduce_memory_mb
    assert int(config["environment_variables"]["TILEFAN_DISTRIBUTED_THRESHOLD"]) == d.distributed_threshold
    assert SHARDS == 16 == READ_UNITS_PER_TILE - 1


def test_the_worked_examples_are_the_docs_table() -> None:
    worked = worked_examples(POLICY)
    matmul, atoms, atoms_lambda, atoms_f32, uploaded, uploaded_32k = (w.prediction for w in worked)
    # Pinned here as well as in the doc, so a change to the model shows in both.
    assert (matmul.tiles, matmul.map_mode, matmul.concurrency, matmul.waves) == (1024, "distributed", 800, 2)
    assert (round(matmul.wall_s), round(matmul.tile_gb_s), round(matmul.total_usd, 2)) == (92, 141292, 2.74)
    assert (matmul.dynamo_write_units, matmul.dynamo_read_units) == (107 + 8 * 1024, 102 + 17 * 1024)
    # Atoms on every vCPU: 9.5 GFLOP/s a vCPU in float64 (28 in float32), × (1 + 0.9 × 4.79)
    # on a 10,240 MB Lambda, × (1 + 0.9 × 15) on a 16-vCPU spot worker.
    assert (atoms.tiles, atoms.spot_tiles, atoms.spot_workers) == (16, 16, 4)
    assert (round(atoms.spot_tile_s_mean, 2), round(atoms.wall_s), round(atoms.total_usd, 2)) == (609.13, 2622, 0.80)
    assert (atoms_lambda.tiles, atoms_lambda.waves, round(atoms_lambda.total_usd, 2)) == (512, 1, 4.75)
    assert (round(atoms_lambda.tile_s_mean, 2), round(atoms_f32.tile_s_mean, 2)) == (53.08, 18.74)
    assert round(atoms_f32.total_usd, 2) == 1.82
    # B staged as column panels by the plan step (118 s at 300 MB/s, within its 145 s): a
    # tile reads 0.54 GB of B instead of whole rows of all of it (17.2 GB).
    assert (round(uploaded.plan_s), round(uploaded.tile_s_mean, 2), round(uploaded.total_usd, 2)) == \
        (118, 13.8, 2.79)
    b = worked[4].plan.b_panels
    assert b is not None and b.staged
    assert (b.tile_b_unstaged, b.tile_b_staged) == (65536 ** 2 * 4, 65536 * 2048 * 4)
    assert (b.job_unstaged, b.job_staged) == (1024 * (2048 * 65536 * 4 + 65536 ** 2 * 4),
                                              1024 * 2048 * 65536 * 4 + 32 * 65536 ** 2 * 4 + 65536 ** 2 * 4)
    # At 32,768² the pass takes 32 s: B is staged, each tile reads its panel.
    b32 = worked[5].plan.b_panels
    assert b32 is not None and b32.staged and b32.layout.pieces == 256
    assert (round(uploaded_32k.plan_s), round(uploaded_32k.tile_s_mean, 2), round(uploaded_32k.total_usd, 2)) == \
        (32, 7.43, 0.37)
    assert [w.fits_max_tiles for w in worked] == [True] * 6
    assert [w.fits_max_cost for w in worked] == [True] * 6
    assert worked[0].size_refusal is not None and worked[1].size_refusal is None
    doc = (ROOT / "docs" / "cost-model.md").read_text()
    assert table(worked) in doc, "docs/cost-model.md's table is stale: python benchmarks/cost_examples.py"

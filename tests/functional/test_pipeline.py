"""The pipeline steps on every backend: the embedded stores (files and SQLite in a temp
dir), the AWS stores (S3 and DynamoDB in moto) and the in-memory pair (the ``storage``
and ``ports`` fixtures take each in turn).

submit → plan → run every tile → reduce must give NumPy's answer for matmul and add (file
and random inputs) and the brute-force minimum for atoms. Completion is recorded exactly
once, the reducer refuses an incomplete job, cancelled jobs stop recording tiles, and the
report has a row per tile. Input files are written through each backend's own storage (a
user's file, or an s3:// object) and outputs are read back from it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from tests.functional.pipeline_storage import Storage
from tests.helpers import argmin_index, atoms_csv, brute_force_phi, normal_pair, random_pair, run_job, start_job
from tilefan.domain.atoms import atoms_rtol
from tilefan.domain.randgen import random_atoms
from tilefan.domain.records import Status
from tilefan.domain.spec.parse import RandomAtoms
from tilefan.errors import ConflictError, IncompleteJobError
from tilefan.pipeline.inputs import atoms_key
from tilefan.pipeline.lifecycle import cancel_job
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.reduce import reduce_job
from tilefan.pipeline.report import tile_report
from tilefan.pipeline.tile import TileOutcome, TileRun, run_tile


def counting_clock() -> Callable[[], float]:
    ticks = itertools.count(1000)
    return lambda: float(next(ticks))


# --------------------------------------------------------------------------- matrices


@pytest.mark.parametrize("dtype_a, dtype_b", [("float64", "float64"), ("float32", "float32"), ("float32", "float64")])
def test_matmul_from_files_gives_numpys_answer(storage: Storage, ports: Ports, dtype_a: str, dtype_b: str) -> None:
    a, b = normal_pair(1, (45, 33), (33, 29), dtype_a, dtype_b)
    out = storage.user_key("C.npy")
    final = run_job(ports, {"kind": "matmul", **storage.inputs(a, b), "out": out, "tile": 16})
    dtype = "float64" if "float64" in (dtype_a, dtype_b) else "float32"
    c = ports.blobs.read_array(out)
    assert c.dtype == np.dtype(dtype) and c.shape == (45, 29)
    expected = a.astype(dtype) @ b.astype(dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(c, expected, rtol=rtol, atol=rtol * 33)
    assert final.result is not None
    assert final.result["output"] == storage.location(out)
    assert final.result["shape"] == [45, 29] and final.result["dtype"] == dtype
    sums = final.result["checksums"]
    assert sums["sum"] == pytest.approx(float(c.astype(np.float64).sum()), rel=1e-9)
    # Tiles sum their squares in the output dtype, so a float32 norm is good to float32 rounding.
    assert sums["frobenius"] == pytest.approx(float(np.linalg.norm(c.astype(np.float64))), rel=rtol)
    assert storage.user_files() == ["A.npy", "B.npy", "C.npy"]
    assert storage.partials() == []  # no partial or temp file left


def test_matmul_from_random_inputs_gives_numpys_answer(ports: Ports) -> None:
    final = run_job(ports, {"kind": "matmul", "a": {"shape": "40x300"}, "b": {"shape": "300x35"},
                            "seed": 7, "tile": [16, 9]})
    assert final.result is not None
    c = ports.blobs.read_array(final.result["output"])
    a, b = random_pair(7, "float64", (40, 300), (300, 35))
    np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype_a, dtype_b", [("float64", "float64"), ("float32", "float32"), ("float64", "float32")])
def test_add_from_files_gives_numpys_answer_exactly(storage: Storage, ports: Ports, dtype_a: str, dtype_b: str) -> None:
    a, b = normal_pair(2, (37, 23), (37, 23), dtype_a, dtype_b)
    out = storage.user_key("S.npy")
    run_job(ports, {"kind": "add", **storage.inputs(a, b), "out": out, "tile": [10, 7]})
    got = ports.blobs.read_array(out)
    np.testing.assert_array_equal(got, np.add(a, b))
    assert got.dtype == np.add(a, b).dtype


def test_add_from_random_inputs_gives_numpys_answer_exactly(storage: Storage, ports: Ports) -> None:
    out = storage.user_key("S.npy")
    run_job(ports, {"kind": "add", "a": {"shape": "300x20"}, "b": {"shape": "300x20"}, "seed": 5,
                    "dtype": "float32", "out": out, "tile": 64})
    a, b = random_pair(5, "float32", (300, 20), (300, 20))
    np.testing.assert_array_equal(ports.blobs.read_array(out), a + b)


# --------------------------------------------------------------------------- atoms


def test_atoms_with_random_atoms_matches_brute_force(storage: Storage, ports: Ports) -> None:
    grid, origin, spacing = (7, 6, 5), (-1.0, 0.5, 2.0), 0.75
    field_out = storage.user_key("phi.npy")
    final = run_job(ports, {"kind": "atoms", "grid": list(grid), "origin": list(origin), "spacing": spacing,
                            "atoms": {"count": 40, "seed": 3}, "tile": [3, 4, 5], "field_out": field_out})
    table = random_atoms(RandomAtoms(count=40, seed=3), grid, origin, spacing)
    np.testing.assert_array_equal(ports.blobs.read_array(atoms_key(final.job_id)), table)
    ref, scale = brute_force_phi(table, grid, origin, spacing)
    assert final.result is not None
    index = argmin_index(ref)
    assert final.result["min_index"] == index
    assert final.result["min_point"] == pytest.approx([origin[a] + spacing * index[a] for a in range(3)])
    tol = atoms_rtol("float64", 40) * scale
    assert abs(final.result["min_value"] - float(ref.min())) <= tol.reshape(-1)[np.argmin(ref)]
    field = ports.blobs.read_array(field_out)
    assert field.shape == grid
    assert np.all(np.abs(field - ref) <= tol)
    assert final.result["field"] == storage.location(field_out)


def test_atoms_from_csv_in_float32_with_softening_matches_brute_force(storage: Storage, ports: Ports) -> None:
    rng = np.random.default_rng(9)
    table = np.column_stack([rng.random((25, 3)) * 5, rng.random(25) * 2 - 1])
    table[0, :3] = (2.0, 3.0, 1.0)  # on a grid point: fine, with softening
    csv = storage.be.put_user_file("atoms.csv", atoms_csv(table).encode())
    grid = (6, 6, 6)
    final = run_job(ports, {"kind": "atoms", "grid": 6, "atoms": {"file": csv}, "softening": 0.5,
                            "precision": "float32", "tile": [2, 3, 6]})
    ref, scale = brute_force_phi(table, grid, softening=0.5, precision="float32")
    assert final.result is not None
    assert final.result["min_index"] == argmin_index(ref)
    tol = atoms_rtol("float32", 25) * float(scale.reshape(-1)[np.argmin(ref)])
    assert abs(final.result["min_value"] - float(ref.min())) <= tol
    assert "field" not in final.result


# --------------------------------------------------------------------------- exactly once


def test_a_tile_run_twice_is_counted_once(storage: Storage, ports: Ports) -> None:
    a, b = normal_pair(3, (20, 12), (12, 20))
    out = storage.user_key("C.npy")
    job_id, tiles = start_job(ports, {"kind": "matmul", **storage.inputs(a, b), "out": out, "tile": 8})
    assert len(tiles) == 9
    assert run_tile(ports, job_id, 4).outcome is TileOutcome.RECORDED
    after_first = ports.jobs.get_job(job_id)
    assert (after_first.tiles_done, after_first.units_done) == (1, 64)
    assert run_tile(ports, job_id, 4).outcome is TileOutcome.ALREADY_RECORDED  # a retry or a duplicate delivery
    after_second = ports.jobs.get_job(job_id)
    assert (after_second.tiles_done, after_second.units_done) == (1, 64)
    for tile_id in tiles:
        run_tile(ports, job_id, tile_id)
    record = ports.jobs.get_job(job_id)
    assert (record.tiles_done, record.units_done) == (9, 400)
    assert run_tile(ports, job_id, 8).outcome is TileOutcome.ALREADY_RECORDED
    final = reduce_job(ports, job_id)
    assert final.status is Status.SUCCEEDED
    np.testing.assert_allclose(ports.blobs.read_array(out), a @ b, rtol=1e-12, atol=1e-12)
    assert final.result is not None
    assert final.result["checksums"]["sum"] == pytest.approx(float((a @ b).sum()), rel=1e-12, abs=1e-12)


def test_reduce_refuses_a_job_with_a_tile_never_recorded(storage: Storage, ports: Ports) -> None:
    a, b = np.ones((20, 10)), np.ones((20, 10))
    out = storage.user_key("S.npy")
    job_id, tiles = start_job(ports, {"kind": "add", **storage.inputs(a, b), "out": out, "tile": [5, 10]})
    assert tiles == [0, 1, 2, 3]
    for tile_id in (0, 1, 3):
        run_tile(ports, job_id, tile_id)
    with pytest.raises(IncompleteJobError) as info:
        reduce_job(ports, job_id)
    assert info.value.missing == [2]
    assert "(2)" in str(info.value)
    assert "S.npy" not in storage.user_files()  # nothing published
    assert ports.jobs.get_job(job_id).status is Status.RUNNING
    # Once the missing tile is in, the same job reduces normally.
    run_tile(ports, job_id, 2)
    reduce_job(ports, job_id)
    np.testing.assert_array_equal(ports.blobs.read_array(out), a + b)


def test_reduce_lists_every_missing_tile(ports: Ports) -> None:
    job_id, tiles = start_job(ports, {"kind": "matmul", "a": {"shape": "30x4"}, "b": {"shape": "4x30"}, "tile": 10})
    run_tile(ports, job_id, 4)
    with pytest.raises(IncompleteJobError) as info:
        reduce_job(ports, job_id)
    assert info.value.missing == [t for t in tiles if t != 4]


def test_a_duplicate_delivery_does_not_rewrite_the_report_of_a_done_tile(ports: Ports) -> None:
    job_id, tiles = start_job(ports, {"kind": "add", "a": {"shape": "30x20"}, "b": {"shape": "30x20"}, "tile": 10})
    clock = counting_clock()
    for tile_id in tiles:
        run_tile(ports, job_id, tile_id, worker="w-1", route="lambda", clock=clock)
    # A late duplicate of tile 0 on another worker: it is not recorded (run_tile says so),
    # so the report must still describe the attempt that completed the tile.
    late = run_tile(ports, job_id, tiles[0], worker="late", route="spot", clock=clock)
    assert late.outcome is TileOutcome.ALREADY_RECORDED
    row = tile_report(ports, job_id)["tiles"][0]
    assert row["status"] == "done"
    assert (row["worker"], row["route"]) == ("w-1", "lambda")
    assert row["duration_s"] == 1.0


# --------------------------------------------------------------------------- cancel and report


def test_cancel_makes_later_tiles_report_job_not_running(storage: Storage, ports: Ports) -> None:
    job_id, tiles = start_job(ports, {"kind": "matmul", "a": {"shape": "30x10"}, "b": {"shape": "10x30"},
                                      "tile": 10, "out": storage.user_key("C.npy")})
    assert run_tile(ports, job_id, 0).outcome is TileOutcome.RECORDED
    assert cancel_job(ports, job_id) is True
    assert cancel_job(ports, job_id) is False  # already cancelled
    for tile_id in tiles[1:]:
        assert run_tile(ports, job_id, tile_id) == TileRun(TileOutcome.JOB_NOT_RUNNING, None)
    record = ports.jobs.get_job(job_id)
    assert record.status is Status.CANCELLED
    assert (record.tiles_done, record.units_done) == (1, 100)
    with pytest.raises(ConflictError):
        reduce_job(ports, job_id)
    assert storage.user_files() == []
    assert storage.partials() == []


def test_tile_report_has_one_row_per_tile(ports: Ports) -> None:
    job_id, tiles = start_job(ports, {"kind": "add", "a": {"shape": "30x20"}, "b": {"shape": "30x20"}, "tile": 10})
    clock = counting_clock()
    for tile_id in tiles:
        run_tile(ports, job_id, tile_id, worker=f"w-{tile_id % 2}", route="lambda", clock=clock)
    reduce_job(ports, job_id)
    report = tile_report(ports, job_id)
    assert report["job_id"] == job_id
    assert [row["tile_id"] for row in report["tiles"]] == tiles
    for row in report["tiles"]:
        assert row["status"] == "done"
        assert row["route"] == "lambda"
        assert row["worker"] == f"w-{row['tile_id'] % 2}"
        # The counting clock ticks once at the start and once at the end of each tile.
        assert row["duration_s"] == 1.0
        assert row["finished_at"] - row["started_at"] == 1.0
    summary = report["summary"]
    assert summary["status"] == "SUCCEEDED"
    assert summary["tiles_total"] == summary["tiles_done"] == len(tiles) == 6
    assert summary["tiles_failed"] == 0
    assert summary["tile_seconds_total"] == 6.0
    assert summary["routes"] == ["lambda"]


def test_a_report_without_the_aws_prediction_is_the_same_report_less_that(ports: Ports) -> None:
    job_id, tiles = start_job(ports, {"kind": "add", "a": {"shape": "30x20"}, "b": {"shape": "30x20"}, "tile": 10})
    for tile_id in tiles:
        run_tile(ports, job_id, tile_id)
    reduce_job(ports, job_id)
    full = tile_report(ports, job_id)
    bare = tile_report(ports, job_id, aws_prediction=False)
    assert full["summary"].pop("aws_prediction")["tiles"] == len(tiles) == 6
    assert "aws_prediction" not in bare["summary"]
    assert bare == full

"""The pipeline steps on the embedded backend (files + SQLite in a temp dir).

submit → plan → run every tile → reduce must give NumPy's answer for matmul and add (file
and random inputs) and the brute-force minimum for atoms. Completion is recorded exactly
once, the reducer refuses an incomplete job, a bad input never leaves a (partial) output
behind, verification catches a corrupted output before it is published, and cancelled
jobs stop recording tiles. The process-pool runner must agree with the in-process steps
bit for bit.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tilefan.bootstrap import Config, build_embedded, embedded_ports
from tilefan.domain import fastkernels, kernels
from tilefan.domain.atoms import atoms_rtol
from tilefan.domain.randgen import random_atoms, random_region
from tilefan.domain.records import JobRecord, Status
from tilefan.domain.spec import RandomAtoms
from tilefan.errors import ConflictError, IncompleteJobError, InvalidSpecError, TileFailedError
from tilefan.pipeline import steps
from tilefan.pipeline.inputs import atoms_key, output_key
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.verify import VerificationFailedError

# --------------------------------------------------------------------------- helpers


@pytest.fixture
def ports(tmp_path: Path) -> Ports:
    return embedded_ports(tmp_path / "home")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def save(path: Path, array: np.ndarray) -> str:
    np.save(path, array)
    return str(path)


def start(ports: Ports, raw: dict[str, Any]) -> tuple[str, list[int]]:
    """Submit and plan; returns the job id and its tile ids."""
    record = steps.submit_job(ports, raw)
    assert record.status is Status.QUEUED
    the_plan = steps.plan_job(ports, record.job_id)
    assert ports.jobs.get_job(record.job_id).status is Status.RUNNING
    return record.job_id, [t.tile_id for t in the_plan.tiles]


def run_job(ports: Ports, raw: dict[str, Any], **tile_kwargs: Any) -> JobRecord:
    job_id, tiles = start(ports, raw)
    assert len(tiles) > 1, "these tests are about fan-out: use several tiles"
    for tile_id in tiles:
        assert steps.run_tile(ports, job_id, tile_id, **tile_kwargs) is True
    final = steps.reduce_job(ports, job_id)
    assert final.status is Status.SUCCEEDED
    assert final.tiles_done == final.tiles_total == len(tiles)
    assert final.units_done == final.units_total
    return final


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def brute_force_field(table: np.ndarray, grid: tuple[int, int, int], origin: tuple[float, float, float],
                      spacing: float, softening: float, precision: str) -> tuple[np.ndarray, np.ndarray]:
    """Float64 φ and Σ|e|/d at every grid point, on inputs rounded as the kernel sees them."""
    axes = [(origin[a] + spacing * np.arange(grid[a])).astype(precision).astype(np.float64) for a in range(3)]
    mesh = np.meshgrid(*axes, indexing="ij")
    points = np.stack([m.reshape(-1) for m in mesh], axis=1)
    phi, scale = kernels.potential_reference(table.astype(precision).astype(np.float64), points, softening)
    return phi.reshape(grid), scale.reshape(grid)


def counting_clock() -> Callable[[], float]:
    ticks = itertools.count(1000)
    return lambda: float(next(ticks))


# --------------------------------------------------------------------------- matrices


@pytest.mark.parametrize("dtype_a, dtype_b", [("float64", "float64"), ("float32", "float32"), ("float32", "float64")])
def test_matmul_from_files_gives_numpys_answer(ports: Ports, data: Path, dtype_a: str, dtype_b: str) -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((45, 33)).astype(dtype_a)
    b = rng.standard_normal((33, 29)).astype(dtype_b)
    out = data / "C.npy"
    final = run_job(ports, {"kind": "matmul", "a": {"file": save(data / "A.npy", a)},
                            "b": {"file": save(data / "B.npy", b)}, "out": str(out), "tile": 16})
    dtype = "float64" if "float64" in (dtype_a, dtype_b) else "float32"
    c = np.load(out)
    assert c.dtype == np.dtype(dtype) and c.shape == (45, 29)
    expected = a.astype(dtype) @ b.astype(dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(c, expected, rtol=rtol, atol=rtol * 33)
    assert final.result is not None
    assert final.result["output"] == str(out.resolve())
    assert final.result["shape"] == [45, 29] and final.result["dtype"] == dtype
    sums = final.result["checksums"]
    assert sums["sum"] == pytest.approx(float(c.astype(np.float64).sum()), rel=1e-9)
    # Tiles sum their squares in the output dtype, so a float32 norm is good to float32 rounding.
    assert sums["frobenius"] == pytest.approx(float(np.linalg.norm(c.astype(np.float64))), rel=rtol)
    assert listing(data) == ["A.npy", "B.npy", "C.npy"]  # no partial or temp file left


def test_matmul_from_random_inputs_gives_numpys_answer(ports: Ports) -> None:
    final = run_job(ports, {"kind": "matmul", "a": {"shape": "40x300"}, "b": {"shape": "300x35"},
                            "seed": 7, "tile": [16, 9]})
    assert final.result is not None
    c = np.load(final.result["output"])
    a = random_region(7, 0, "float64", (0, 40), (0, 300))
    b = random_region(7, 1, "float64", (0, 300), (0, 35))
    np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype_a, dtype_b", [("float64", "float64"), ("float32", "float32"), ("float64", "float32")])
def test_add_from_files_gives_numpys_answer_exactly(ports: Ports, data: Path, dtype_a: str, dtype_b: str) -> None:
    rng = np.random.default_rng(2)
    a = rng.standard_normal((37, 23)).astype(dtype_a)
    b = rng.standard_normal((37, 23)).astype(dtype_b)
    out = data / "S.npy"
    run_job(ports, {"kind": "add", "a": {"file": save(data / "A.npy", a)}, "b": {"file": save(data / "B.npy", b)},
                    "out": str(out), "tile": [10, 7]})
    np.testing.assert_array_equal(np.load(out), np.add(a, b))
    assert np.load(out).dtype == np.add(a, b).dtype


def test_add_from_random_inputs_gives_numpys_answer_exactly(ports: Ports, data: Path) -> None:
    out = data / "S.npy"
    run_job(ports, {"kind": "add", "a": {"shape": "300x20"}, "b": {"shape": "300x20"}, "seed": 5,
                    "dtype": "float32", "out": str(out), "tile": 64})
    a = random_region(5, 0, "float32", (0, 300), (0, 20))
    b = random_region(5, 1, "float32", (0, 300), (0, 20))
    np.testing.assert_array_equal(np.load(out), a + b)


# --------------------------------------------------------------------------- atoms


def test_atoms_with_random_atoms_matches_brute_force(ports: Ports, data: Path) -> None:
    grid, origin, spacing = (7, 6, 5), (-1.0, 0.5, 2.0), 0.75
    field_out = data / "phi.npy"
    final = run_job(ports, {"kind": "atoms", "grid": list(grid), "origin": list(origin), "spacing": spacing,
                            "atoms": {"count": 40, "seed": 3}, "tile": [3, 4, 5], "field_out": str(field_out)})
    table = random_atoms(RandomAtoms(count=40, seed=3), grid, origin, spacing)
    np.testing.assert_array_equal(ports.blobs.read_array(atoms_key(final.job_id)), table)
    ref, scale = brute_force_field(table, grid, origin, spacing, 0.0, "float64")
    assert final.result is not None
    index = [int(v) for v in np.unravel_index(int(np.argmin(ref)), grid)]
    assert final.result["min_index"] == index
    assert final.result["min_point"] == pytest.approx([origin[a] + spacing * index[a] for a in range(3)])
    tol = atoms_rtol("float64", 40) * scale
    assert abs(final.result["min_value"] - float(ref.min())) <= tol.reshape(-1)[np.argmin(ref)]
    field = np.load(field_out)
    assert field.shape == grid
    assert np.all(np.abs(field - ref) <= tol)
    assert final.result["field"] == str(field_out.resolve())


def test_atoms_from_csv_in_float32_with_softening_matches_brute_force(ports: Ports, data: Path) -> None:
    rng = np.random.default_rng(9)
    table = np.column_stack([rng.random((25, 3)) * 5, rng.random(25) * 2 - 1])
    table[0, :3] = (2.0, 3.0, 1.0)  # on a grid point: fine, with softening
    csv = data / "atoms.csv"
    csv.write_text("x,y,z,energy\n" + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in table))
    grid = (6, 6, 6)
    final = run_job(ports, {"kind": "atoms", "grid": 6, "atoms": {"file": str(csv)}, "softening": 0.5,
                            "precision": "float32", "tile": [2, 3, 6]})
    ref, scale = brute_force_field(table, grid, (0.0, 0.0, 0.0), 1.0, 0.5, "float32")
    assert final.result is not None
    assert final.result["min_index"] == [int(v) for v in np.unravel_index(int(np.argmin(ref)), grid)]
    tol = atoms_rtol("float32", 25) * float(scale.reshape(-1)[np.argmin(ref)])
    assert abs(final.result["min_value"] - float(ref.min())) <= tol
    assert "field" not in final.result


# --------------------------------------------------------------------------- exactly once


def test_a_tile_run_twice_is_counted_once(ports: Ports, data: Path) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((20, 12)), rng.standard_normal((12, 20))
    out = data / "C.npy"
    job_id, tiles = start(ports, {"kind": "matmul", "a": {"file": save(data / "A.npy", a)},
                                  "b": {"file": save(data / "B.npy", b)}, "out": str(out), "tile": 8})
    assert len(tiles) == 9
    assert steps.run_tile(ports, job_id, 4) is True
    after_first = ports.jobs.get_job(job_id)
    assert (after_first.tiles_done, after_first.units_done) == (1, 64)
    assert steps.run_tile(ports, job_id, 4) is False  # a retry or a duplicate delivery
    after_second = ports.jobs.get_job(job_id)
    assert (after_second.tiles_done, after_second.units_done) == (1, 64)
    for tile_id in tiles:
        steps.run_tile(ports, job_id, tile_id)
    record = ports.jobs.get_job(job_id)
    assert (record.tiles_done, record.units_done) == (9, 400)
    assert steps.run_tile(ports, job_id, 8) is False
    final = steps.reduce_job(ports, job_id)
    assert final.status is Status.SUCCEEDED
    np.testing.assert_allclose(np.load(out), a @ b, rtol=1e-12, atol=1e-12)
    assert final.result is not None
    assert final.result["checksums"]["sum"] == pytest.approx(float((a @ b).sum()), rel=1e-12, abs=1e-12)


def test_reduce_refuses_a_job_with_a_tile_never_recorded(ports: Ports, data: Path) -> None:
    a, b = np.ones((20, 10)), np.ones((20, 10))
    out = data / "S.npy"
    job_id, tiles = start(ports, {"kind": "add", "a": {"file": save(data / "A.npy", a)},
                                  "b": {"file": save(data / "B.npy", b)}, "out": str(out), "tile": [5, 10]})
    assert tiles == [0, 1, 2, 3]
    for tile_id in (0, 1, 3):
        steps.run_tile(ports, job_id, tile_id)
    with pytest.raises(IncompleteJobError) as info:
        steps.reduce_job(ports, job_id)
    assert info.value.missing == [2]
    assert "(2)" in str(info.value)
    assert not out.exists()
    assert "S.npy" not in listing(data)
    assert ports.jobs.get_job(job_id).status is Status.RUNNING
    # Once the missing tile is in, the same job reduces normally.
    steps.run_tile(ports, job_id, 2)
    steps.reduce_job(ports, job_id)
    np.testing.assert_array_equal(np.load(out), a + b)


def test_reduce_lists_every_missing_tile(ports: Ports) -> None:
    job_id, tiles = start(ports, {"kind": "matmul", "a": {"shape": "30x4"}, "b": {"shape": "4x30"}, "tile": 10})
    steps.run_tile(ports, job_id, 4)
    with pytest.raises(IncompleteJobError) as info:
        steps.reduce_job(ports, job_id)
    assert info.value.missing == [t for t in tiles if t != 4]


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "kind, role, bad",
    [("matmul", "a", np.nan), ("matmul", "b", np.inf), ("add", "a", -np.inf), ("add", "b", np.nan)],
)
def test_nan_or_inf_in_an_input_fails_the_tile_and_leaves_no_output(
    ports: Ports, data: Path, kind: str, role: str, bad: float
) -> None:
    rng = np.random.default_rng(4)
    a = rng.standard_normal((24, 24))
    b = rng.standard_normal((24, 24))
    (a if role == "a" else b)[13, 17] = bad
    out = data / "C.npy"
    job_id, tiles = start(ports, {"kind": kind, "a": {"file": save(data / "A.npy", a)},
                                  "b": {"file": save(data / "B.npy", b)}, "out": str(out), "tile": 8})
    errors: list[InvalidSpecError] = []
    for tile_id in tiles:
        try:
            with np.errstate(invalid="ignore", over="ignore"):
                steps.run_tile(ports, job_id, tile_id)
        except InvalidSpecError as exc:
            errors.append(exc)
    assert errors, "a tile that reads the bad element must fail"
    assert {e.field for e in errors} == {role}
    assert any("row 13, column 17" in e.message for e in errors)
    assert steps.fail_job(ports, job_id, steps.error_body(errors[0])) is True
    record = ports.jobs.get_job(job_id)
    assert record.status is Status.FAILED
    assert record.error is not None and record.error["field"] == role
    assert record.error["code"] == "invalid_input"
    assert listing(data) == ["A.npy", "B.npy"]  # no output and no hidden partial file
    report = steps.tile_report(ports, job_id)
    assert report["summary"]["tiles_failed"] == len(errors)


def test_add_overflow_fails_the_tile_without_blaming_an_input(ports: Ports, data: Path) -> None:
    a = np.full((4, 4), 3e38, dtype=np.float32)
    out = data / "S.npy"
    job_id, tiles = start(ports, {"kind": "add", "a": {"file": save(data / "A.npy", a)},
                                  "b": {"file": save(data / "B.npy", a)}, "out": str(out), "tile": 2})
    with pytest.raises(TileFailedError) as info, np.errstate(over="ignore"):
        steps.run_tile(ports, job_id, tiles[0])
    assert info.value.tile_id == tiles[0]
    assert "overflow" in info.value.message
    steps.fail_job(ports, job_id, steps.error_body(info.value))
    assert listing(data) == ["A.npy", "B.npy"]


def test_submit_refuses_bad_input_and_writes_nothing(tmp_path: Path, data: Path) -> None:
    home = tmp_path / "home"
    ports = embedded_ports(home)
    save(data / "A.npy", np.ones((3, 4)))
    with pytest.raises(InvalidSpecError) as info:
        steps.submit_job(ports, {"kind": "matmul", "a": {"file": str(data / "A.npy")}, "b": {"shape": "5x2"}})
    assert info.value.field == "b.shape"
    assert not home.exists()


# --------------------------------------------------------------------------- verification


def test_verify_passes_for_correct_matmul_and_add(ports: Ports) -> None:
    for raw, method in [
        ({"kind": "matmul", "a": {"shape": "50x40"}, "b": {"shape": "40x30"}, "tile": 16, "verify": True},
         "freivalds"),
        ({"kind": "add", "a": {"shape": "50x40"}, "b": {"shape": "50x40"}, "tile": 16, "verify": True,
          "dtype": "float32"}, "exact"),
    ]:
        final = run_job(ports, raw)
        assert final.result is not None
        check = final.result["verification"]
        assert check["method"] == method
        assert check["passed"] is True


def test_verify_passes_for_correct_atoms(ports: Ports, data: Path) -> None:
    final = run_job(ports, {"kind": "atoms", "grid": 4, "atoms": {"count": 30, "seed": 2}, "tile": 2,
                            "verify": True, "field_out": str(data / "phi.npy")})
    assert final.result is not None
    assert final.result["verification"]["passed"] is True


def _corrupt_then_reduce(ports: Ports, raw: dict[str, Any], where: tuple[int, ...],
                         change: Callable[[np.ndarray], np.ndarray]) -> str:
    job_id, tiles = start(ports, raw)
    for tile_id in tiles:
        steps.run_tile(ports, job_id, tile_id)
    spec = ports.jobs.get_job(job_id).spec
    key = output_key(job_id, spec)
    assert key is not None
    region = tuple((i, i + 1) for i in where)
    current = np.array(ports.blobs.read_region(key, job_id, region))
    ports.blobs.write_region(key, job_id, region, change(current))
    assert not np.array_equal(np.array(ports.blobs.read_region(key, job_id, region)), current)
    with pytest.raises(VerificationFailedError) as info:
        steps.reduce_job(ports, job_id)
    assert info.value.check["passed"] is False
    steps.fail_job(ports, job_id, steps.error_body(info.value))
    record = ports.jobs.get_job(job_id)
    assert record.status is Status.FAILED
    assert record.error is not None and record.error["code"] == "verification_failed"
    return job_id


def test_verify_fails_matmul_with_one_corrupted_element(ports: Ports, data: Path) -> None:
    out = data / "C.npy"
    raw = {"kind": "matmul", "a": {"shape": "50x40"}, "b": {"shape": "40x30"}, "seed": 1, "tile": 16,
           "verify": True, "out": str(out)}
    _corrupt_then_reduce(ports, raw, (37, 22), lambda v: v + 1e-3 * (1 + np.abs(v)))
    assert listing(data) == []  # the wrong result is never published


def test_verify_fails_add_with_one_element_off_by_one_ulp(ports: Ports, data: Path) -> None:
    out = data / "S.npy"
    raw = {"kind": "add", "a": {"shape": "50x40"}, "b": {"shape": "50x40"}, "seed": 1, "tile": 16,
           "verify": True, "out": str(out)}
    _corrupt_then_reduce(ports, raw, (3, 39), lambda v: np.nextafter(v, np.inf))
    assert listing(data) == []


def test_verify_fails_atoms_with_one_corrupted_field_point(ports: Ports, data: Path) -> None:
    # 4³ = 64 points: verification samples every one of them.
    raw = {"kind": "atoms", "grid": 4, "atoms": {"count": 30, "seed": 2}, "tile": 2, "verify": True,
           "field_out": str(data / "phi.npy")}
    _corrupt_then_reduce(ports, raw, (2, 1, 3), lambda v: v + 1e-6 * (1 + np.abs(v)))
    assert listing(data) == []


# --------------------------------------------------------------------------- cancel and report


def test_cancel_makes_later_tiles_return_false(ports: Ports, data: Path) -> None:
    out = data / "C.npy"
    job_id, tiles = start(ports, {"kind": "matmul", "a": {"shape": "30x10"}, "b": {"shape": "10x30"}, "tile": 10,
                                  "out": str(out)})
    assert steps.run_tile(ports, job_id, 0) is True
    assert steps.cancel_job(ports, job_id) is True
    assert steps.cancel_job(ports, job_id) is False  # already cancelled
    for tile_id in tiles[1:]:
        assert steps.run_tile(ports, job_id, tile_id) is False
    record = ports.jobs.get_job(job_id)
    assert record.status is Status.CANCELLED
    assert (record.tiles_done, record.units_done) == (1, 100)
    with pytest.raises(ConflictError):
        steps.reduce_job(ports, job_id)
    assert listing(data) == []


def test_tile_report_has_one_row_per_tile(ports: Ports) -> None:
    job_id, tiles = start(ports, {"kind": "add", "a": {"shape": "30x20"}, "b": {"shape": "30x20"}, "tile": 10})
    clock = counting_clock()
    for tile_id in tiles:
        steps.run_tile(ports, job_id, tile_id, worker=f"w-{tile_id % 2}", route="lambda", clock=clock)
    steps.reduce_job(ports, job_id)
    report = steps.tile_report(ports, job_id)
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


# --------------------------------------------------------------------------- the process pool


def _pool(home: Path, kernel: str = "numpy") -> tuple[Ports, Any]:
    return build_embedded(Config(home=home, workers=2, kernel=kernel))  # type: ignore[no-any-return]


def test_pool_runner_matches_in_process_steps_bit_for_bit(tmp_path: Path) -> None:
    raw = {"kind": "matmul", "a": {"shape": "70x50"}, "b": {"shape": "50x60"}, "seed": 11, "tile": 16}
    pool_ports, runner = _pool(tmp_path / "pool")
    record = steps.submit_job(pool_ports, {**raw, "out": str(tmp_path / "pool.npy")})
    final = runner.run(record.job_id)
    assert final.status is Status.SUCCEEDED, final.error
    assert final.tiles_done == final.tiles_total == 20
    workers = {row["worker"] for row in steps.tile_report(pool_ports, record.job_id)["tiles"]}
    assert f"local-{os.getpid()}" not in workers, "tiles should run in the pool's worker processes"

    local = embedded_ports(tmp_path / "local")
    expected = run_job(local, {**raw, "out": str(tmp_path / "local.npy")})
    got = np.load(tmp_path / "pool.npy")
    want = np.load(tmp_path / "local.npy")
    assert got.tobytes() == want.tobytes()
    assert final.result is not None and expected.result is not None
    assert final.result["checksums"] == expected.result["checksums"]


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_pool_runner_atoms_matches_in_process_steps_bit_for_bit(tmp_path: Path, kernel: str) -> None:
    raw = {"kind": "atoms", "grid": [12, 10, 8], "atoms": {"count": 50, "seed": 5}, "tile": [4, 5, 8],
           "precision": "float32"}
    pool_ports, runner = _pool(tmp_path / "pool", kernel)
    record = steps.submit_job(pool_ports, {**raw, "field_out": str(tmp_path / "pool.npy")})
    final = runner.run(record.job_id)
    assert final.status is Status.SUCCEEDED, final.error

    atoms_kernel = kernels.atoms_potential if kernel == "numpy" else fastkernels.load()
    assert atoms_kernel is not None
    local = embedded_ports(tmp_path / "local")
    expected = run_job(local, {**raw, "field_out": str(tmp_path / "local.npy")}, atoms_kernel=atoms_kernel)
    assert np.load(tmp_path / "pool.npy").tobytes() == np.load(tmp_path / "local.npy").tobytes()
    assert final.result is not None and expected.result is not None
    for key in ("min_value", "min_index", "min_point"):
        assert final.result[key] == expected.result[key]


def test_pool_runner_reports_a_nan_input_as_invalid_input(tmp_path: Path, data: Path) -> None:
    a = np.random.default_rng(6).standard_normal((40, 40))
    a[30, 2] = np.nan
    out = data / "C.npy"
    ports, runner = _pool(tmp_path / "pool")
    record = steps.submit_job(ports, {"kind": "matmul", "a": {"file": save(data / "A.npy", a)},
                                      "b": {"file": save(data / "B.npy", np.eye(40))}, "out": str(out), "tile": 10})
    final = runner.run(record.job_id)
    assert final.status is Status.FAILED
    assert listing(data) == ["A.npy", "B.npy"]
    # The tile's InvalidSpecError must survive the trip back from the worker process, so
    # the user is told which input is bad (and the CLI exits 2, not 1).
    assert final.error is not None
    assert final.error["code"] == "invalid_input", final.error
    assert final.error["field"] == "a"
    assert "row 30, column 2" in final.error["message"]


def test_a_duplicate_delivery_does_not_rewrite_the_report_of_a_done_tile(ports: Ports) -> None:
    job_id, tiles = start(ports, {"kind": "add", "a": {"shape": "30x20"}, "b": {"shape": "30x20"}, "tile": 10})
    clock = counting_clock()
    for tile_id in tiles:
        steps.run_tile(ports, job_id, tile_id, worker="w-1", route="lambda", clock=clock)
    # A late duplicate of tile 0 on another worker: it is not recorded (run_tile says so),
    # so the report must still describe the attempt that completed the tile.
    assert steps.run_tile(ports, job_id, tiles[0], worker="late", route="spot", clock=clock) is False
    row = steps.tile_report(ports, job_id)["tiles"][0]
    assert row["status"] == "done"
    assert (row["worker"], row["route"]) == ("w-1", "lambda")
    assert row["duration_s"] == 1.0

"""The pipeline steps on every backend when something is wrong: a NaN or inf in an input
fails the tile naming the input and the element, an overflow fails it without blaming
an input, a bad spec is refused before anything is written, and verification refuses
an output with one wrong element. None of them leaves an output, or a partial one,
behind.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.functional.pipeline_storage import Storage
from tests.helpers import normal_pair, run_job, start_job
from tilefan.domain.plan import tile_of
from tilefan.domain.records import Status
from tilefan.errors import InvalidSpecError, TileFailedError, VerificationFailedError
from tilefan.pipeline.error_codec import error_body
from tilefan.pipeline.inputs import output_key
from tilefan.pipeline.lifecycle import fail_job
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.reduce import reduce_job
from tilefan.pipeline.report import tile_report
from tilefan.pipeline.submit import submit_job
from tilefan.pipeline.tile import run_tile

# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "kind, role, bad",
    [("matmul", "a", np.nan), ("matmul", "b", np.inf), ("add", "a", -np.inf), ("add", "b", np.nan)],
)
def test_nan_or_inf_in_an_input_fails_the_tile_and_leaves_no_output(
    storage: Storage, ports: Ports, kind: str, role: str, bad: float
) -> None:
    a, b = normal_pair(4, (24, 24), (24, 24))
    (a if role == "a" else b)[13, 17] = bad
    job_id, tiles = start_job(ports, {"kind": kind, **storage.inputs(a, b), "out": storage.user_key("C.npy"),
                                      "tile": 8})
    errors: list[InvalidSpecError] = []
    for tile_id in tiles:
        try:
            with np.errstate(invalid="ignore", over="ignore"):
                run_tile(ports, job_id, tile_id)
        except InvalidSpecError as exc:
            errors.append(exc)
    assert errors, "a tile that reads the bad element must fail"
    assert {e.field for e in errors} == {role}
    assert any("row 13, column 17" in e.message for e in errors)
    assert fail_job(ports, job_id, error_body(errors[0])) is True
    record = ports.jobs.get_job(job_id)
    assert record.status is Status.FAILED
    assert record.error is not None and record.error["field"] == role
    assert record.error["code"] == "invalid_input"
    assert storage.user_files() == ["A.npy", "B.npy"]  # no output
    assert storage.partials() == []  # and no hidden partial one
    report = tile_report(ports, job_id)
    assert report["summary"]["tiles_failed"] == len(errors)


def test_add_overflow_fails_the_tile_without_blaming_an_input(storage: Storage, ports: Ports) -> None:
    a = np.full((4, 4), 3e38, dtype=np.float32)
    job_id, tiles = start_job(ports, {"kind": "add", **storage.inputs(a, a), "out": storage.user_key("S.npy"),
                                      "tile": 2})
    with pytest.raises(TileFailedError) as info, np.errstate(over="ignore"):
        run_tile(ports, job_id, tiles[0])
    assert info.value.tile_id == tiles[0]
    assert "overflow" in info.value.message
    fail_job(ports, job_id, error_body(info.value))
    assert storage.user_files() == ["A.npy", "B.npy"]
    assert storage.partials() == []


def test_submit_refuses_bad_input_and_writes_nothing(storage: Storage, ports: Ports) -> None:
    a = storage.put_npy("A.npy", np.ones((3, 4)))
    before = storage.be.stored()
    with pytest.raises(InvalidSpecError) as info:
        submit_job(ports, {"kind": "matmul", "a": {"file": a}, "b": {"shape": "5x2"}})
    assert info.value.field == "b.shape"
    assert storage.be.stored() == before
    assert ports.jobs.list_jobs(10) == ([], None)


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


def test_verify_passes_for_correct_atoms(storage: Storage, ports: Ports) -> None:
    final = run_job(ports, {"kind": "atoms", "grid": 4, "atoms": {"count": 30, "seed": 2}, "tile": 2,
                            "verify": True, "field_out": storage.user_key("phi.npy")})
    assert final.result is not None
    assert final.result["verification"]["passed"] is True


def _corrupt_then_reduce(storage: Storage, raw: dict[str, Any], where: tuple[int, ...],
                         change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Run every tile, rewrite the block of the tile holding ``where`` with that one element
    changed (a tile that computed one wrong value), and reduce: the reducer's verification
    must refuse it, and the wrong result is never published."""
    ports = storage.ports
    job_id, tiles = start_job(ports, raw)
    for tile_id in tiles:
        run_tile(ports, job_id, tile_id)
    spec = ports.jobs.get_job(job_id).spec
    key = output_key(job_id, spec)
    assert key is not None
    [region] = [r for r in map(functools.partial(tile_of, spec), tiles)
                if all(a <= i < b for i, (a, b) in zip(where, r, strict=True))]
    inside = tuple(i - a for i, (a, _) in zip(where, region, strict=True))
    block = np.array(ports.blobs.read_region(key, job_id, region))
    right = block[inside]
    block[inside] = change(right)
    ports.blobs.write_region(key, job_id, region, block)
    assert np.array(ports.blobs.read_region(key, job_id, region))[inside] != right
    with pytest.raises(VerificationFailedError) as info:
        reduce_job(ports, job_id)
    assert info.value.check["passed"] is False
    fail_job(ports, job_id, error_body(info.value))
    record = ports.jobs.get_job(job_id)
    assert record.status is Status.FAILED
    assert record.error is not None and record.error["code"] == "verification_failed"
    assert storage.user_files() == []
    assert storage.partials() == []


def test_verify_fails_matmul_with_one_corrupted_element(storage: Storage) -> None:
    raw = {"kind": "matmul", "a": {"shape": "50x40"}, "b": {"shape": "40x30"}, "seed": 1, "tile": 16,
           "verify": True, "out": storage.user_key("C.npy")}
    _corrupt_then_reduce(storage, raw, (37, 22), lambda v: v + 1e-3 * (1 + np.abs(v)))


def test_verify_fails_add_with_one_element_off_by_one_ulp(storage: Storage) -> None:
    raw = {"kind": "add", "a": {"shape": "50x40"}, "b": {"shape": "50x40"}, "seed": 1, "tile": 16,
           "verify": True, "out": storage.user_key("S.npy")}
    _corrupt_then_reduce(storage, raw, (3, 39), lambda v: np.nextafter(v, np.inf))


def test_verify_fails_atoms_with_one_corrupted_field_point(storage: Storage) -> None:
    # 4³ = 64 points: verification samples every one of them.
    raw = {"kind": "atoms", "grid": 4, "atoms": {"count": 30, "seed": 2}, "tile": 2, "verify": True,
           "field_out": storage.user_key("phi.npy")}
    _corrupt_then_reduce(storage, raw, (2, 1, 3), lambda v: v + 1e-6 * (1 + np.abs(v)))

"""``TILEFAN_KERNEL`` means the same to the process pool, the spot worker and the tile
Lambda: ``numpy`` always runs NumPy, ``compiled`` refuses to run without the C kernel,
``auto`` takes the C kernel when it is built, else NumPy, and then says once how to get
the fast one."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import scheduled
from tilefan import bootstrap
from tilefan.compute import ckernel
from tilefan.compute.kernel_choice import SlowKernelWarning, choose_atoms_kernel
from tilefan.domain import kernels
from tilefan.domain.records import Status
from tilefan.errors import InvalidSpecError
from tilefan.pipeline.submit import submit_job
from tilefan.settings import AwsSettings, Config, SpotSettings


def fake_c(*args: object) -> np.ndarray:
    return np.zeros(1)


def no_c() -> None:
    return None


def must_not_load() -> None:
    raise AssertionError("the C kernel was loaded where NumPy was chosen")


def test_numpy_is_numpy_without_loading_the_c_kernel() -> None:
    assert choose_atoms_kernel("numpy", load_c=must_not_load) is kernels.atoms_potential


@pytest.mark.parametrize("choice", ["auto", "compiled"])
def test_auto_and_compiled_take_the_c_kernel_when_it_is_built(choice: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no notice when the fast kernel runs
        assert choose_atoms_kernel(choice, load_c=lambda: fake_c) is fake_c


def test_auto_falls_back_to_numpy_and_says_how_to_get_the_c_kernel() -> None:
    with pytest.warns(SlowKernelWarning) as caught:
        assert choose_atoms_kernel("auto", load_c=no_c) is kernels.atoms_potential
    message = str(caught[0].message)
    assert "NumPy kernel" in message and "gcc" in message and "\n" not in message


def test_compiled_without_the_c_kernel_is_an_error_naming_the_setting() -> None:
    with pytest.raises(InvalidSpecError) as info:
        choose_atoms_kernel("compiled", load_c=no_c)
    assert info.value.field == "TILEFAN_KERNEL"
    assert "C kernel" in info.value.message and "make kernel" in info.value.message


def test_an_unknown_choice_is_refused() -> None:
    with pytest.raises(InvalidSpecError) as info:
        choose_atoms_kernel("fortran", load_c=must_not_load)
    assert info.value.field == "TILEFAN_KERNEL"


def test_the_c_kernel_loads_in_this_checkout() -> None:
    # make test builds it (pip install -e . and make kernel): the fast path is what is tested.
    assert ckernel.load() is ckernel.atoms_potential_c
    assert ckernel.level() >= 1


def test_float32_runs_the_avx2_build_where_the_cpu_halves_512_bit_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ckernel, "_this_cpu_halves_512", lambda: True)  # a Zen 4
    assert [ckernel.preferred_level(p, 3) for p in ("float32", "float64")] == [2, 3]
    assert [ckernel.preferred_level(p, 2) for p in ("float32", "float64")] == [2, 2]
    monkeypatch.setattr(ckernel, "_this_cpu_halves_512", lambda: False)
    assert [ckernel.preferred_level(p, 3) for p in ("float32", "float64")] == [3, 3]


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_a_tile_runs_the_build_preferred_for_its_precision(monkeypatch: pytest.MonkeyPatch, precision: str) -> None:
    asked: list[tuple[str, int]] = []

    def baseline_build(precision: str, best: int) -> int:
        asked.append((precision, best))
        return 1

    monkeypatch.setattr(ckernel, "preferred_level", baseline_build)
    table = np.array([[0.3, 0.6, 0.2, 1.0], [2.7, 1.1, 3.4, -0.5]])
    region = ((0, 4), (0, 3), (0, 37))
    got = ckernel.atoms_potential_c(table, (0.0, 0.0, 0.0), 0.5, 0.1, region, precision)
    assert asked == [(precision, ckernel.level())]
    baseline = ckernel.load(use_level=1)
    assert baseline is not None
    np.testing.assert_array_equal(got, baseline(table, (0.0, 0.0, 0.0), 0.5, 0.1, region, precision), strict=True)


@pytest.mark.parametrize("abi", [None, 1, ckernel.ABI - 1, ckernel.ABI + 1])
def test_a_library_of_another_calling_convention_is_treated_as_absent(tmp_path: Path, abi: int | None) -> None:
    """A library built from another version of atoms_kernel.c (one older than the version
    check has none) would take its arguments in another order: it is never called. The
    stand-in has every symbol a level-1 build exports, so only the version refuses it."""
    import subprocess

    source = tmp_path / "other.c"
    version = "" if abi is None else f"int tilefan_kernel_abi(void) {{ return {abi}; }}\n"
    source.write_text(version + "int tilefan_kernel_level(void) { return 1; }\n"
                      "void tilefan_phi_f32_l1(void) {}\nvoid tilefan_phi_f64_l1(void) {}\n")
    built = tmp_path / "other.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(built), str(source)], check=True)
    assert ckernel.level(built) == 0 and ckernel.load(built) is None
    assert ckernel.level() >= 1  # while the checkout's own build loads


def test_the_pool_fails_an_atoms_job_when_compiled_is_demanded_without_the_c_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ckernel, "load", no_c)
    ports, runner = scheduled(Config(home=tmp_path, workers=1, kernel="compiled"))
    record = submit_job(ports, {"kind": "atoms", "grid": 4, "atoms": {"count": 3, "seed": 1}})
    final = runner(record.job_id)
    assert final.status is Status.FAILED
    assert final.error is not None
    assert (final.error["code"], final.error["field"]) == ("invalid_input", "TILEFAN_KERNEL")


def test_the_spot_worker_refuses_to_start_when_compiled_is_demanded_without_the_c_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ckernel, "load", no_c)
    settings = AwsSettings(bucket="b", table="t", state_machine_arn="", region="us-east-1",
                           spot=SpotSettings(queue_url="q", dlq_url="d"))
    # The choice is made before any AWS client is built, so no session is needed to see it.
    with pytest.raises(InvalidSpecError) as info:
        bootstrap.build_worker(settings, session=object(), kernel="compiled", name="w")
    assert info.value.field == "TILEFAN_KERNEL"

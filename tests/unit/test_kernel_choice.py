"""``TILEFAN_KERNEL`` means the same to the process pool, the spot worker and the tile
Lambda: ``numpy`` always runs NumPy, ``compiled`` refuses to run without a compiled
kernel, ``auto`` takes the C kernel when it is built, else numba where it pays, else NumPy.
Unless a case says otherwise the C kernel is absent here (``no_c``), so numba's rules show."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import scheduled
from tilefan import bootstrap
from tilefan.domain import ckernel, fastkernels, kernels
from tilefan.domain.kernel_choice import COMPILED_KERNEL_MIN_PAIRS, choose_atoms_kernel
from tilefan.domain.records import Status
from tilefan.errors import InvalidSpecError
from tilefan.pipeline.submit import submit_job
from tilefan.settings import AwsSettings, Config, SpotSettings


def fake_fast(*args: object) -> np.ndarray:
    return np.zeros(1)


def no_numba() -> None:
    return None


def no_c() -> None:
    return None


def must_not_load() -> None:
    raise AssertionError("the compiled kernel was loaded where NumPy was chosen")


def test_numpy_is_numpy_without_loading_numba() -> None:
    assert choose_atoms_kernel("numpy", 10**12, load_c=no_c, load=must_not_load) is kernels.atoms_potential


def test_auto_keeps_numpy_for_a_job_too_small_to_pay_for_numba() -> None:
    chosen = choose_atoms_kernel("auto", COMPILED_KERNEL_MIN_PAIRS - 1, load_c=no_c, load=must_not_load)
    assert chosen is kernels.atoms_potential


@pytest.mark.parametrize("pairs", [COMPILED_KERNEL_MIN_PAIRS, None])
def test_auto_takes_the_compiled_kernel_for_big_or_unknown_jobs(pairs: int | None) -> None:
    assert choose_atoms_kernel("auto", pairs, load_c=no_c, load=lambda: fake_fast) is fake_fast


def test_auto_falls_back_to_numpy_without_numba() -> None:
    assert choose_atoms_kernel("auto", None, load_c=no_c, load=no_numba) is kernels.atoms_potential


@pytest.mark.parametrize("pairs", [1, None])
def test_compiled_is_compiled_even_for_a_small_job(pairs: int | None) -> None:
    assert choose_atoms_kernel("compiled", pairs, load_c=no_c, load=lambda: fake_fast) is fake_fast


@pytest.mark.parametrize("pairs", [1, None])
def test_compiled_without_numba_is_an_error_naming_the_setting(pairs: int | None) -> None:
    with pytest.raises(InvalidSpecError) as info:
        choose_atoms_kernel("compiled", pairs, load_c=no_c, load=no_numba)
    assert info.value.field == "TILEFAN_KERNEL"
    assert "numba" in info.value.message and "C kernel" in info.value.message


def test_an_unknown_choice_is_refused() -> None:
    with pytest.raises(InvalidSpecError) as info:
        choose_atoms_kernel("fortran", load_c=no_c, load=must_not_load)
    assert info.value.field == "TILEFAN_KERNEL"


def test_the_pool_fails_an_atoms_job_when_compiled_is_demanded_without_numba(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastkernels, "load", no_numba)
    monkeypatch.setattr(ckernel, "load", no_c)
    ports, runner = scheduled(Config(home=tmp_path, workers=1, kernel="compiled"))
    record = submit_job(ports, {"kind": "atoms", "grid": 4, "atoms": {"count": 3, "seed": 1}})
    final = runner(record.job_id)
    assert final.status is Status.FAILED
    assert final.error is not None
    assert (final.error["code"], final.error["field"]) == ("invalid_input", "TILEFAN_KERNEL")


def test_the_spot_worker_refuses_to_start_when_compiled_is_demanded_without_numba(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastkernels, "load", no_numba)
    monkeypatch.setattr(ckernel, "load", no_c)
    settings = AwsSettings(bucket="b", table="t", state_machine_arn="", region="us-east-1",
                           spot=SpotSettings(queue_url="q", dlq_url="d"))
    # The choice is made before any AWS client is built, so no session is needed to see it.
    with pytest.raises(InvalidSpecError) as info:
        bootstrap.build_worker(settings, session=object(), kernel="compiled", name="w")
    assert info.value.field == "TILEFAN_KERNEL"


@pytest.mark.parametrize("choice", ["auto", "compiled"])
def test_a_small_job_takes_the_c_kernel_and_never_loads_numba(choice: str) -> None:
    small = COMPILED_KERNEL_MIN_PAIRS - 1
    assert choose_atoms_kernel(choice, small, load_c=lambda: fake_fast, load=must_not_load) is fake_fast


@pytest.mark.parametrize("choice", ["auto", "compiled"])
@pytest.mark.parametrize("pairs", [COMPILED_KERNEL_MIN_PAIRS, None])
def test_a_big_job_prefers_numba_then_the_c_kernel(choice: str, pairs: int | None) -> None:
    def fake_c(*args: object) -> np.ndarray:
        return np.ones(1)

    assert choose_atoms_kernel(choice, pairs, load_c=lambda: fake_c, load=lambda: fake_fast) is fake_fast
    assert choose_atoms_kernel(choice, pairs, load_c=lambda: fake_c, load=no_numba) is fake_c


def test_a_tile_lambda_without_numba_runs_the_c_kernel() -> None:
    assert choose_atoms_kernel("auto", load_c=lambda: fake_fast, load=no_numba) is fake_fast


def test_numpy_never_loads_the_c_kernel() -> None:
    assert choose_atoms_kernel("numpy", 10**12, load_c=must_not_load, load=must_not_load) is kernels.atoms_potential

"""The C atoms kernel as ``make package`` builds it: it builds here with gcc, needs no
glibc symbol (so it loads in the Lambda runtime), agrees with the NumPy kernel and the
float64 reference within ``atoms_rtol`` at every build level this CPU runs, and is
simply absent (not an error) where it was never built."""

from __future__ import annotations

import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tilefan.compute import ckernel
from tilefan.domain import kernels
from tilefan.domain.atoms import atoms_rtol

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kernel") / "_atoms_kernel.so"
    subprocess.run(["bash", str(ROOT / "stepfunctions" / "build_kernel.sh"), str(out)], check=True,
                   capture_output=True)
    return out


def test_the_library_imports_no_libc_symbol(library: Path) -> None:
    symbols = subprocess.run(["objdump", "-T", str(library)], check=True, capture_output=True, text=True).stdout
    assert "GLIBC_" not in symbols
    assert all(f"tilefan_phi_f{bits}_l{level}" in symbols for bits in (32, 64) for level in (1, 2, 3))


def _atoms(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-1.0, 9.0, (n, 3)), rng.normal(size=n)])


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_every_level_agrees_with_numpy_and_the_reference(library: Path, precision: str) -> None:
    table = _atoms(300, seed=5)
    origin, spacing, softening = (0.05, -0.15, 0.1), 0.37, 0.01
    region = ((3, 12), (0, 7), (5, 26))  # ragged: no axis a multiple of a vector width
    expected = kernels.atoms_potential(table, origin, spacing, softening, region, precision)
    i, j, k = np.meshgrid(*(np.arange(a, b) for a, b in region), indexing="ij")
    points = np.column_stack([origin[d] + spacing * g.ravel() for d, g in enumerate((i, j, k))])
    reference, scale = kernels.potential_reference(table, points, softening)
    rtol = atoms_rtol(precision, len(table))
    levels = list(range(1, ckernel.level(library) + 1))
    assert levels, "the library did not load"
    for level in levels:
        fn = ckernel.load(library, use_level=level)
        assert fn is not None
        got = fn(table, origin, spacing, softening, region, precision)
        assert got.dtype == np.dtype(precision) and got.shape == expected.shape
        assert np.all(np.abs(got.ravel() - reference) <= rtol * scale), level
        assert np.all(np.abs(got - expected).ravel() <= 2 * rtol * scale), level


def test_an_absent_library_is_none(tmp_path: Path) -> None:
    assert ckernel.load(tmp_path / "missing.so") is None
    assert ckernel.level(tmp_path / "missing.so") == 0


def test_the_kernel_pickles_for_the_process_pool(library: Path) -> None:
    fn = ckernel.load(library)
    assert fn is not None
    table = _atoms(20, seed=1)
    region = ((0, 3), (0, 4), (0, 5))
    again = pickle.loads(pickle.dumps(fn))
    np.testing.assert_array_equal(again(table, (0.0, 0.0, 0.0), 0.5, 0.1, region, "float64"),
                                  fn(table, (0.0, 0.0, 0.0), 0.5, 0.1, region, "float64"))



@pytest.mark.parametrize("table", [
    [[1e20, 2.0, 3.0, 1.5], [2.0, -3e19, 1.0, -0.5]],  # every squared distance above 1e36
    [[1e-20, -1e-20, 1e-20, 1.5]],  # one below 1e-36 at grid point 0 (a float32 subnormal)
    [[1e-160, -1e-160, 1e-160, 1.5]],  # one below 1e-300 (a float64 subnormal)
])
def test_float64_distances_beyond_float32_range_stay_exact(library: Path, table: list[list[float]]) -> None:
    # The AVX2 float64 build seeds 1/sqrt from float32, the AVX-512 one from vrsqrt14pd;
    # rows whose squared distances leave the seed's range must take the exact path, not
    # return 0, inf or NaN.
    atoms = np.array(table)
    origin, spacing, region = (0.0, 0.0, 0.0), 1.0, ((0, 3), (0, 4), (0, 9))
    i, j, k = np.meshgrid(*(np.arange(a, b) for a, b in region), indexing="ij")
    points = np.column_stack([origin[d] + spacing * g.ravel() for d, g in enumerate((i, j, k))])
    reference, scale = kernels.potential_reference(atoms, points, 0.0)
    for level in range(1, ckernel.level(library) + 1):
        fn = ckernel.load(library, use_level=level)
        assert fn is not None
        got = fn(atoms, origin, spacing, 0.0, region, "float64").ravel()
        assert np.all(np.abs(got - reference) <= atoms_rtol("float64", len(atoms)) * scale), level

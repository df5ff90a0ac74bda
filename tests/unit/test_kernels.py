"""Tile kernels against whole-array answers.

Whatever the tiling, the per-tile kernels stitched together must give NumPy's answer for
the whole problem (exactly for add, to rounding for matmul); the seeded random matrix must
not depend on the tiling; the atoms kernels (NumPy and compiled) must match a float64 brute
force within the stated tolerance; the minimum's tie-break must pick the lowest C-order
flat index across tiles; and the reduce combiners must not depend on the order in which
tiles finish.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilefan.compute import ckernel
from tilefan.domain import kernels
from tilefan.domain.atoms import atoms_rtol
from tilefan.domain.combine import combine_all, combine_min
from tilefan.domain.randgen import GEN_BLOCK, random_region
from tilefan.domain.tiling import Region, num_tiles, region_slices, tile_region

FAST = settings(max_examples=50, deadline=None)
DTYPES = st.sampled_from(["float32", "float64"])


def _tiles(shape: tuple[int, ...], tile: tuple[int, ...]) -> list[Region]:
    return [tile_region(shape, tile, t) for t in range(num_tiles(shape, tile))]


def _matmul_tiled(a: np.ndarray, b: np.ndarray, tile: tuple[int, int], dtype: str) -> np.ndarray:
    out = np.full((a.shape[0], b.shape[1]), np.nan, dtype=dtype)
    for (r0, r1), (c0, c1) in _tiles(out.shape, tile):
        out[r0:r1, c0:c1] = kernels.matmul_block(a[r0:r1, :], b[:, c0:c1], dtype)
    return out


def _add_tiled(a: np.ndarray, b: np.ndarray, tile: tuple[int, int], dtype: str) -> np.ndarray:
    out = np.full(a.shape, np.nan, dtype=dtype)
    for region in _tiles(a.shape, tile):
        s = region_slices(region)
        out[s] = kernels.add_block(a[s], b[s], dtype)
    return out


def _grid_points(grid: tuple[int, int, int], origin: tuple[float, float, float], spacing: float,
                 precision: str) -> np.ndarray:
    """Every grid point in C order, rounded to the working precision as the kernels see it."""
    whole = tuple((0, n) for n in grid)
    xs, ys, zs = kernels.grid_axes(origin, spacing, whole, precision)
    mesh = np.meshgrid(xs, ys, zs, indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=1).astype(np.float64)


def _reference_field(table: np.ndarray, grid: tuple[int, int, int], origin: tuple[float, float, float],
                     spacing: float, softening: float, precision: str) -> tuple[np.ndarray, np.ndarray]:
    """Float64 brute force (field, Σ|e|/d) on the inputs rounded as the kernel sees them."""
    points = _grid_points(grid, origin, spacing, precision)
    rounded = table.astype(precision).astype(np.float64)
    phi, scale = kernels.potential_reference(rounded, points, softening)
    return phi.reshape(grid), scale.reshape(grid)


def _atoms_tiled(kernel, table, grid, origin, spacing, softening, tile, precision) -> np.ndarray:  # type: ignore[no-untyped-def]
    field = np.full(grid, np.nan, dtype=precision)
    for region in _tiles(grid, tile):
        block = kernel(table, origin, spacing, softening, region, precision)
        assert block.dtype == np.dtype(precision)
        assert block.shape == tuple(stop - start for start, stop in region)
        field[region_slices(region)] = block
    return field


def _random_table(rng: np.random.Generator, n: int, grid: tuple[int, int, int],
                  origin: tuple[float, float, float], spacing: float) -> np.ndarray:
    table = np.empty((n, 4))
    lo = np.asarray(origin)
    extent = spacing * (np.asarray(grid, dtype=np.float64) - 1)
    # A little outside the box too: atoms need not sit inside the grid.
    table[:, :3] = lo - spacing + rng.random((n, 3)) * (extent + 2 * spacing)
    table[:, 3] = rng.random(n) * 2 - 1
    return table


# --------------------------------------------------------------------------- matrices


@st.composite
def matmul_case(draw: st.DrawFn) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], str, str]:
    m, k, n = (draw(st.integers(1, 40)) for _ in range(3))
    tile = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    return (m, k), (k, n), tile, draw(DTYPES), draw(DTYPES)


@FAST
@given(matmul_case(), st.integers(0, 2**32))
def test_matmul_tiles_from_random_blocks_assemble_to_numpy(case, seed: int) -> None:  # type: ignore[no-untyped-def]
    shape_a, shape_b, tile, dtype_a, dtype_b = case
    dtype = "float64" if "float64" in (dtype_a, dtype_b) else "float32"
    m, k = shape_a
    n = shape_b[1]
    out = np.full((m, n), np.nan, dtype=dtype)
    # Each tile generates only the blocks it needs, as a tile worker does.
    for (r0, r1), (c0, c1) in _tiles((m, n), tile):
        a = random_region(seed, 0, dtype_a, (r0, r1), (0, k))
        b = random_region(seed, 1, dtype_b, (0, k), (c0, c1))
        out[r0:r1, c0:c1] = kernels.matmul_block(a, b, dtype)
    full_a = random_region(seed, 0, dtype_a, (0, m), (0, k))
    full_b = random_region(seed, 1, dtype_b, (0, k), (0, n))
    expected = np.matmul(full_a.astype(dtype), full_b.astype(dtype))
    assert out.dtype == np.dtype(dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=rtol * k)


@FAST
@given(matmul_case(), st.integers(0, 2**32))
def test_matmul_tiles_over_given_arrays_assemble_to_numpy(case, seed: int) -> None:  # type: ignore[no-untyped-def]
    shape_a, shape_b, tile, dtype_a, dtype_b = case
    dtype = "float64" if "float64" in (dtype_a, dtype_b) else "float32"
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape_a).astype(dtype_a)
    b = rng.standard_normal(shape_b).astype(dtype_b)
    got = _matmul_tiled(a, b, tile, dtype)
    expected = a.astype(dtype) @ b.astype(dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * shape_a[1])


@st.composite
def add_case(draw: st.DrawFn) -> tuple[tuple[int, int], tuple[int, int], str, str]:
    shape = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    tile = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    return shape, tile, draw(DTYPES), draw(DTYPES)


@FAST
@given(add_case(), st.integers(0, 2**32))
def test_add_tiles_assemble_to_numpy_exactly(case, seed: int) -> None:  # type: ignore[no-untyped-def]
    shape, tile, dtype_a, dtype_b = case
    dtype = "float64" if "float64" in (dtype_a, dtype_b) else "float32"
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape).astype(dtype_a)
    b = rng.standard_normal(shape).astype(dtype_b)
    got = _add_tiled(a, b, tile, dtype)
    expected = np.add(a, b, dtype=dtype)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, expected)


@FAST
@given(add_case(), st.integers(0, 2**32))
def test_add_tiles_from_random_blocks_assemble_exactly(case, seed: int) -> None:  # type: ignore[no-untyped-def]
    shape, tile, dtype_a, dtype_b = case
    dtype = "float64" if "float64" in (dtype_a, dtype_b) else "float32"
    out = np.full(shape, np.nan, dtype=dtype)
    for (r0, r1), (c0, c1) in _tiles(shape, tile):
        a = random_region(seed, 0, dtype_a, (r0, r1), (c0, c1))
        b = random_region(seed, 1, dtype_b, (r0, r1), (c0, c1))
        out[r0:r1, c0:c1] = kernels.add_block(a, b, dtype)
    rows, cols = (0, shape[0]), (0, shape[1])
    expected = np.add(random_region(seed, 0, dtype_a, rows, cols), random_region(seed, 1, dtype_b, rows, cols),
                      dtype=dtype)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_block_checksums_are_the_same_bits_for_a_strided_view_and_an_array_of_its_own(dtype: str) -> None:
    # A held output's tile is a view into the whole output; any other is an array of its
    # own: the job's checksums must not depend on which.
    whole = np.random.default_rng(4).standard_normal((300, 700)).astype(dtype)
    view = whole[17:290, 301:650]
    own = np.ascontiguousarray(view)
    assert not view.flags.c_contiguous and own.flags.c_contiguous
    sums = kernels.block_checksums(view)
    assert sums == kernels.block_checksums(own)
    exact = own.astype(np.float64).ravel()
    assert math.isclose(sums["sum"], math.fsum(exact), rel_tol=1e-12, abs_tol=1e-9)
    assert math.isclose(sums["sumsq"], math.fsum(exact * exact), rel_tol=1e-12)


@st.composite
def sub_block(draw: st.DrawFn) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    # Up to a little over two generation blocks so sub-blocks straddle block boundaries.
    shape = (draw(st.integers(1, 2 * GEN_BLOCK + 40)), draw(st.integers(1, 2 * GEN_BLOCK + 40)))
    r0 = draw(st.integers(0, shape[0] - 1))
    r1 = draw(st.integers(r0 + 1, shape[0]))
    c0 = draw(st.integers(0, shape[1] - 1))
    c1 = draw(st.integers(c0 + 1, shape[1]))
    return shape, (r0, r1), (c0, c1)


@FAST
@given(sub_block(), st.integers(0, 2**63 - 1), st.integers(0, 3), DTYPES)
def test_random_region_of_any_sub_block_is_the_slice_of_the_full_matrix(case, seed, stream, dtype) -> None:  # type: ignore[no-untyped-def]
    shape, rows, cols = case
    full = random_region(seed, stream, dtype, (0, shape[0]), (0, shape[1]))
    part = random_region(seed, stream, dtype, rows, cols)
    assert part.dtype == np.dtype(dtype)
    assert part.shape == (rows[1] - rows[0], cols[1] - cols[0])
    np.testing.assert_array_equal(part, full[rows[0]:rows[1], cols[0]:cols[1]])
    assert float(full.min()) >= -1.0 and float(full.max()) < 1.0


def test_random_matrix_depends_on_seed_and_stream() -> None:
    base = random_region(7, 0, "float64", (0, 30), (0, 30))
    np.testing.assert_array_equal(base, random_region(7, 0, "float64", (0, 30), (0, 30)))
    assert not np.array_equal(base, random_region(8, 0, "float64", (0, 30), (0, 30)))
    assert not np.array_equal(base, random_region(7, 1, "float64", (0, 30), (0, 30)))


# --------------------------------------------------------------------------- atoms


@st.composite
def atoms_case(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    grid = (draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    tile = (draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    origin = (draw(st.floats(-5, 5)), draw(st.floats(-5, 5)), draw(st.floats(-5, 5)))
    spacing = draw(st.sampled_from([0.25, 0.5, 1.0, 1.7]))
    softening = draw(st.sampled_from([0.0, 0.0, 0.1, 1.0]))
    n_atoms = draw(st.integers(1, 60))
    return grid, tile, origin, spacing, softening, n_atoms, draw(st.integers(0, 2**32))


def _max_error_over_tol(field: np.ndarray, ref: np.ndarray, scale: np.ndarray, precision: str, n: int) -> float:
    tol = atoms_rtol(precision, n) * scale
    return float(np.max(np.abs(field.astype(np.float64) - ref) / tol))


@FAST
@given(atoms_case(), DTYPES)
def test_numpy_atoms_kernel_over_tiles_matches_float64_brute_force(case, precision: str) -> None:  # type: ignore[no-untyped-def]
    grid, tile, origin, spacing, softening, n_atoms, seed = case
    table = _random_table(np.random.default_rng(seed), n_atoms, grid, origin, spacing)
    field = _atoms_tiled(kernels.atoms_potential, table, grid, origin, spacing, softening, tile, precision)
    ref, scale = _reference_field(table, grid, origin, spacing, softening, precision)
    assert np.isfinite(field).all()
    assert _max_error_over_tol(field, ref, scale, precision, n_atoms) <= 1.0


@pytest.fixture(scope="module")
def compiled_kernel():  # type: ignore[no-untyped-def]
    fast = ckernel.load()
    assert fast is not None, "make test builds the C kernel; it must load"
    return fast


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_compiled_kernel_agrees_with_numpy_kernel(compiled_kernel, precision: str) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    for grid, tile, n_atoms, softening in [
        ((9, 7, 13), (4, 3, 13), 200, 0.0),
        ((5, 6, 4), (5, 6, 4), 37, 0.3),
        ((3, 1, 17), (2, 1, 5), 500, 0.0),
    ]:
        origin, spacing = (-1.5, 0.25, 2.0), 0.7
        table = _random_table(rng, n_atoms, grid, origin, spacing)
        slow = _atoms_tiled(kernels.atoms_potential, table, grid, origin, spacing, softening, tile, precision)
        fast = _atoms_tiled(compiled_kernel, table, grid, origin, spacing, softening, tile, precision)
        ref, scale = _reference_field(table, grid, origin, spacing, softening, precision)
        # Both kernels are within tolerance of the reference, hence of each other.
        assert _max_error_over_tol(slow, ref, scale, precision, n_atoms) <= 1.0
        assert _max_error_over_tol(fast, ref, scale, precision, n_atoms) <= 1.0
        tol = atoms_rtol(precision, n_atoms) * scale
        assert np.all(np.abs(fast.astype(np.float64) - slow.astype(np.float64)) <= 2 * tol)


def test_compiled_float64_kernel_is_within_a_few_ulp_per_term() -> None:
    """One atom of charge 1 on a line of grid points: each φ is one term, 1/sqrt(d²), so
    the refinement of the float32 seed shows directly. Squared distances span about 5e-5
    to 4e8; the reference is d² as NumPy rounds it (s² + dz², as the kernel's table rounds it
    too) taken to 1/sqrt in extended precision. Every build this CPU runs is
    checked. A refinement one order short (a degree-3 polynomial in the AVX2 build) is off
    by about a hundred ulp here."""
    for build in range(1, ckernel.level() + 1):
        assert _worst_ulp_per_term(build) <= 4.0, f"build {build}"


def _worst_ulp_per_term(build: int) -> float:
    fn = ckernel.load(use_level=build)
    assert fn is not None, "make test builds the C kernel; it must load"
    rng = np.random.default_rng(4)
    worst = 0.0
    for _ in range(30):
        spacing = float(10 ** rng.uniform(-2, 1))
        n = 4001
        z_atom = float(rng.uniform(0, n * spacing))
        softening = float(rng.uniform(0.05, 1.0) * spacing)
        table = np.array([[0.0, 0.0, z_atom, 1.0]])
        phi = fn(table, (0.0, 0.0, 0.0), spacing, softening, ((0, 1), (0, 1), (0, n)), "float64")[0, 0]
        dz = np.arange(n) * spacing - z_atom
        d2 = softening * softening + dz * dz
        exact = 1 / np.sqrt(d2.astype(np.longdouble))
        worst = max(worst, float(np.max(np.abs(phi - exact) / np.spacing(np.abs(phi)))))
    return worst


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_compiled_kernel_gives_the_same_bits_for_any_block_of_atoms(monkeypatch: pytest.MonkeyPatch,
                                                                    precision: str) -> None:
    """The kernel sums blocks of atoms (as many as its scratch holds z offsets for) one after
    another: one or two atoms a block (the least scratch, two rows), blocks with a ragged
    last one, or all in one block, every point sums the same terms in the same order, so the
    bits agree, at every build."""
    rng = np.random.default_rng(11)
    table = _random_table(rng, 57, (5, 6, 13), (0.0, 0.0, 0.0), 0.7)
    region = ((0, 5), (0, 6), (0, 13))
    size = np.dtype(precision).itemsize
    for build in range(1, ckernel.level() + 1):
        fn = ckernel.load(use_level=build)
        assert fn is not None
        fields = []
        # Rows of scratch: the table takes one row an atom (1.5 in the AVX2 float64 build, whose
        # float32 copy follows it), so 7 rows hold 7 (or 4) atoms, ragged over 57; 114 hold all.
        for scratch_rows in (0, 7, 114):
            monkeypatch.setattr(ckernel, "SCRATCH_BYTES", scratch_rows * 13 * size)
            fields.append(fn(table, (0.0, 0.0, 0.0), 0.7, 0.3, region, precision))
        assert all(np.array_equal(fields[0], other) for other in fields[1:]), f"build {build}"
        ref, scale = _reference_field(table, (5, 6, 13), (0.0, 0.0, 0.0), 0.7, 0.3, precision)
        assert _max_error_over_tol(fields[0], ref, scale, precision, 57) <= 1.0, f"build {build}"


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_compiled_kernel_keeps_its_tables_inside_the_scratch_it_is_handed(precision: str) -> None:
    """Each build lays its z-offset tables (and the AVX2 float64 build their float32 copy)
    in the scratch the caller hands it, as much of it as fits whole blocks of atoms, from
    the least it takes (two rows) up: the elements past it are never written."""
    library = ckernel._library(ckernel.LIBRARY)
    assert library is not None
    dtype = np.dtype(precision)
    rng = np.random.default_rng(12)
    table = _random_table(rng, 23, (3, 5, 13), (0.0, 0.0, 0.0), 0.7).astype(dtype)
    xs, ys, zs = (np.arange(n, dtype=dtype) * dtype.type(0.7) for n in (3, 5, 13))
    ax, ay, az, ae = (np.ascontiguousarray(column) for column in table.T)
    sentinel = dtype.type(-12345.5)
    for build in range(1, ckernel.level() + 1):
        fn = getattr(library, f"tilefan_phi_f{8 * dtype.itemsize}_l{build}")
        for size in (26, 27, 41, 64, 299):  # 2 rows of 13 and up: blocks of 1 to 23 atoms
            scratch = np.full(size + 64, sentinel, dtype=dtype)
            out = np.zeros((3, 5, 13), dtype=dtype)
            fn(xs.ctypes.data, 3, ys.ctypes.data, 5, zs.ctypes.data, 13, ax.ctypes.data, ay.ctypes.data,
               az.ctypes.data, ae.ctypes.data, 23, float(dtype.type(0.09)), scratch.ctypes.data, size, out.ctypes.data)
            assert np.all(scratch[size:] == sentinel), f"build {build}, scratch of {size}"
            assert np.any(out != 0), f"build {build}, scratch of {size}: nothing computed"


@settings(max_examples=25, deadline=None)
@given(atoms_case(), DTYPES)
def test_compiled_kernel_agrees_with_numpy_kernel_for_any_tiling(compiled_kernel, case, precision: str) -> None:  # type: ignore[no-untyped-def]
    grid, tile, origin, spacing, softening, n_atoms, seed = case
    table = _random_table(np.random.default_rng(seed), n_atoms, grid, origin, spacing)
    slow = _atoms_tiled(kernels.atoms_potential, table, grid, origin, spacing, softening, tile, precision)
    fast = _atoms_tiled(compiled_kernel, table, grid, origin, spacing, softening, tile, precision)
    ref, scale = _reference_field(table, grid, origin, spacing, softening, precision)
    assert _max_error_over_tol(fast, ref, scale, precision, n_atoms) <= 1.0
    tol = atoms_rtol(precision, n_atoms) * scale
    assert np.all(np.abs(fast.astype(np.float64) - slow.astype(np.float64)) <= 2 * tol)


def test_softening_keeps_an_atom_on_a_grid_point_finite() -> None:
    grid, origin, spacing = (4, 4, 4), (0.0, 0.0, 0.0), 1.0
    # Atom 0 sits exactly on grid point (1, 2, 3); atom 1 is off the grid.
    table = np.array([[1.0, 2.0, 3.0, -0.8], [0.5, 0.25, 1.5, 0.6]])
    whole = ((0, 4), (0, 4), (0, 4))
    for eps in (0.5, 2.0):
        phi = kernels.atoms_potential(table, origin, spacing, eps, whole, "float64")
        assert np.isfinite(phi).all()
        expected_at_atom = -0.8 / eps + 0.6 / math.sqrt(0.5**2 + 1.75**2 + 1.5**2 + eps**2)
        assert phi[1, 2, 3] == pytest.approx(expected_at_atom, rel=1e-12)
        ref, scale = _reference_field(table, grid, origin, spacing, eps, "float64")
        assert _max_error_over_tol(phi, ref, scale, "float64", len(table)) <= 1.0
    # Softening really changes the field: a point away from both atoms sees |d|² + ε².
    soft = kernels.atoms_potential(table, origin, spacing, 1.0, whole, "float64")
    d_far = math.sqrt(1**2 + 2**2 + 3**2)
    d_near = math.sqrt(0.5**2 + 0.25**2 + 1.5**2)
    assert soft[0, 0, 0] == pytest.approx(-0.8 / math.sqrt(d_far**2 + 1) + 0.6 / math.sqrt(d_near**2 + 1))
    # Without softening the coincident point is a division by zero: the spec layer must
    # refuse such inputs (tested in test_spec), because the kernel would return inf.
    with np.errstate(divide="ignore"):
        hard = kernels.atoms_potential(table, origin, spacing, 0.0, whole, "float64")
    assert not np.isfinite(hard[1, 2, 3])


# --------------------------------------------------------------------------- block_min


def _tiled_min(field: np.ndarray, tile: tuple[int, int, int], order: list[int] | None = None) -> dict[str, object]:
    grid = field.shape
    stats = []
    for region in _tiles(grid, tile):
        value, flat = kernels.block_min(field[region_slices(region)], region, grid)  # type: ignore[arg-type]
        stats.append({"min": value, "flat": flat})
    if order is not None:
        stats = [stats[i] for i in order]
    return combine_all("atoms", stats)


@FAST
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)),
    seed=st.integers(0, 2**32),
    bad=st.sampled_from([None, np.nan, np.inf, -np.inf]),
    dtype=DTYPES,
)
def test_finite_block_min_is_block_min_of_a_finite_field_and_none_otherwise(
    shape: tuple[int, int, int], seed: int, bad: float | None, dtype: str
) -> None:
    rng = np.random.default_rng(seed)
    phi = rng.integers(-3, 3, shape).astype(dtype)  # small integers: ties are common
    if bad is not None:
        phi.flat[int(rng.integers(phi.size))] = bad
    region = ((1, 1 + shape[0]), (2, 2 + shape[1]), (0, shape[2]))
    grid = (shape[0] + 3, shape[1] + 4, shape[2])
    expected = kernels.block_min(phi, region, grid) if np.isfinite(phi).all() else None
    assert kernels.finite_block_min(phi, region, grid) == expected


def test_block_min_ties_go_to_the_lowest_flat_index_not_the_first_tile() -> None:
    grid, tile = (4, 4, 4), (2, 2, 4)
    field = np.ones(grid)
    # Tile 0 covers i, j in [0, 2); tile 1 covers i in [0, 2), j in [2, 4). The tied
    # minimum in tile 0 at (1, 1, 0) has flat index 20; the one in tile 1 at (0, 2, 3)
    # has flat index 11, so tile order and flat order disagree and tile 1 must win.
    field[1, 1, 0] = -5.0
    field[0, 2, 3] = -5.0
    field[3, 3, 3] = -5.0  # a third tie, last in every order
    assert kernels.block_min(field[0:2, 0:2, :], ((0, 2), (0, 2), (0, 4)), grid) == (-5.0, 20)
    assert kernels.block_min(field[0:2, 2:4, :], ((0, 2), (2, 4), (0, 4)), grid) == (-5.0, 11)
    assert _tiled_min(field, tile) == {"min": -5.0, "flat": 11}
    assert _tiled_min(field, tile, order=[3, 2, 1, 0]) == {"min": -5.0, "flat": 11}
    assert int(np.argmin(field)) == 11


@FAST
@given(
    grid=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    tile=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    seed=st.integers(0, 2**32),
    levels=st.integers(1, 4),
)
def test_tiled_min_equals_numpy_argmin_under_ties_in_any_tile_order(grid, tile, seed, levels) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    # Few distinct values, so the minimum is usually tied across several tiles.
    field = rng.integers(0, levels, size=grid).astype(np.float64)
    order = list(range(num_tiles(grid, tile)))
    random.Random(seed).shuffle(order)
    got = _tiled_min(field, tile, order)
    assert got == {"min": float(field.min()), "flat": int(np.argmin(field))}


# --------------------------------------------------------------------------- combiners


min_stats = st.fixed_dictionaries({
    "min": st.floats(allow_nan=False, allow_infinity=False, width=64),
    "flat": st.integers(0, 10**9),
})
# Integer-valued sums are exact in float64, so associativity is checked without rounding noise.
exact_matrix_stats = st.fixed_dictionaries({
    "sum": st.integers(-(2**40), 2**40).map(float),
    "sumsq": st.integers(0, 2**40).map(float),
})
any_matrix_stats = st.fixed_dictionaries({
    "sum": st.floats(-1e300, 1e300, allow_nan=False),
    "sumsq": st.floats(0, 1e300, allow_nan=False),
})


@FAST
@given(min_stats, min_stats, min_stats)
def test_combine_min_is_associative_and_commutative(x, y, z) -> None:  # type: ignore[no-untyped-def]
    assert combine_min(x, y) == combine_min(y, x)
    assert combine_min(combine_min(x, y), z) == combine_min(x, combine_min(y, z))
    best = combine_min(combine_min(x, y), z)
    assert best == min([x, y, z], key=lambda s: (s["min"], s["flat"]))


@FAST
@given(exact_matrix_stats, exact_matrix_stats, exact_matrix_stats)
def test_combine_all_matrix_is_the_sum_and_recombines(x, y, z) -> None:  # type: ignore[no-untyped-def]
    total = combine_all("matmul", [x, y, z])
    assert total == {"sum": x["sum"] + y["sum"] + z["sum"], "sumsq": x["sumsq"] + y["sumsq"] + z["sumsq"]}
    # A partial result combines like a tile's own statistics.
    assert combine_all("matmul", [combine_all("matmul", [x, y]), z]) == total


@FAST
@given(st.lists(any_matrix_stats, min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_combine_all_matrix_total_does_not_depend_on_tile_order(stats, rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(stats)
    rnd.shuffle(shuffled)
    got = combine_all("matmul", stats)
    assert got == combine_all("matmul", shuffled)
    assert got == {"sum": math.fsum(s["sum"] for s in stats), "sumsq": math.fsum(s["sumsq"] for s in stats)}


@FAST
@given(st.lists(min_stats, min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_combine_all_atoms_does_not_depend_on_tile_order(stats, rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(stats)
    rnd.shuffle(shuffled)
    assert combine_all("atoms", stats) == combine_all("atoms", shuffled)


def test_combine_all_refuses_nothing() -> None:
    with pytest.raises(ValueError):
        combine_all("atoms", [])

"""Result verification, reading inputs and output through the blob store panel by panel.

- matmul: Freivalds' check. For random X (n×R), A·(B·X) must equal C·X up to the
  rounding bound γ·|A|·(|B|·|X|), elementwise; a wrong tile breaks it by orders of magnitude.
  Cost O(n²·R), never O(n³).
- add: exact: every element of C equals A + B computed again in the same dtype.
- atoms: recompute φ in float64 at a random sample of grid points and at the reported
  minimum, and check them against the field (when written) and the minimum.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from tilefan.compute import threads
from tilefan.domain import kernels
from tilefan.domain.atoms import atoms_rtol
from tilefan.domain.spec.parse import MAX_COORD, AtomsSpec, Kind, MatrixSpec
from tilefan.domain.tiling import Region, split
from tilefan.pipeline.inputs import matrix_block
from tilefan.pipeline.ports import BlobStore
from tilefan.pipeline.store_capabilities import PartAssembly

FREIVALDS_ROUNDS = 3
ATOMS_SAMPLES = 64
_PANEL_ELEMENTS = 1 << 22


def _panels(rows: int, cols: int) -> list[tuple[int, int]]:
    return split(rows, max(1, _PANEL_ELEMENTS // max(cols, 1)))


def verify_matrix(blobs: BlobStore, job_id: str, spec: MatrixSpec, out_key: str, seed: int) -> dict[str, Any]:
    if spec.kind is Kind.ADD:
        return _verify_add(blobs, job_id, spec, out_key)
    return _verify_matmul(blobs, job_id, spec, out_key, seed)


def _verify_add(blobs: BlobStore, job_id: str, spec: MatrixSpec, out_key: str) -> dict[str, Any]:
    m, n = spec.out_shape
    mismatches = 0
    for r0, r1 in _panels(m, n):
        a = matrix_block(blobs, spec.a, (r0, r1), (0, n))
        b = matrix_block(blobs, spec.b, (r0, r1), (0, n))
        c = blobs.read_region(out_key, job_id, ((r0, r1), (0, n)))
        mismatches += int(np.count_nonzero(np.add(a, b, dtype=spec.dtype) != c))
    return {"method": "exact", "passed": mismatches == 0, "mismatches": mismatches}


def _verify_matmul(blobs: BlobStore, job_id: str, spec: MatrixSpec, out_key: str, seed: int) -> dict[str, Any]:
    threads.limit_blas()  # Freivalds' products run in a pool worker when a server shares its pool
    m, k = spec.a.shape
    n = spec.b.shape[1]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, FREIVALDS_ROUNDS))
    bx = np.zeros((k, FREIVALDS_ROUNDS))
    bx_abs = np.zeros((k, FREIVALDS_ROUNDS))
    for r0, r1 in _panels(k, n):
        b = matrix_block(blobs, spec.b, (r0, r1), (0, n)).astype(np.float64)
        bx[r0:r1] = b @ x
        bx_abs[r0:r1] = np.abs(b) @ np.abs(x)
    eps = float(np.finfo(spec.dtype).eps)
    # Rounding of an inner product of length k is at most about k·eps times the sum of
    # the magnitudes; the factor 2 covers the check's own float64 products.
    gamma = 2 * k * eps + 1e-300
    worst = 0.0
    for r0, r1 in _panels(m, max(k, n)):
        a = matrix_block(blobs, spec.a, (r0, r1), (0, k)).astype(np.float64)
        c = np.asarray(blobs.read_region(out_key, job_id, ((r0, r1), (0, n))), dtype=np.float64)
        residual = np.abs(a @ bx - c @ x)
        bound = gamma * (np.abs(a) @ bx_abs) + np.finfo(np.float64).tiny
        worst = max(worst, float(np.max(residual / bound)))
    return {
        "method": "freivalds",
        "rounds": FREIVALDS_ROUNDS,
        "passed": bool(worst <= 1.0),
        "worst_residual_over_bound": worst,
    }


FieldReader = Callable[[np.ndarray], np.ndarray]
RegionReader = Callable[[Region], np.ndarray]


def field_at(read: RegionReader, points: np.ndarray, streams: int = 1) -> np.ndarray:
    """The field's values at ``points`` (grid indices, one row each), each read as its own
    one-cell region by ``read`` (a store's ``read_region`` of the field), ``streams`` reads
    in flight (a Zarr field on S3: a ranged GET of its chunk a point)."""

    def one(p: np.ndarray) -> float:
        return float(read(tuple((int(v), int(v) + 1) for v in p)).reshape(()))

    return _each(one, points, streams)


def field_at_parts(store: PartAssembly, key: str, job_id: str, points: np.ndarray,
                   tile: tuple[int, ...]) -> np.ndarray:
    """The same from a field still in parts (S3): its layout and the listing of its blocks
    read once, then one ranged GET a point (the point's row of the block of its tile, cut on
    ``tile``), the store's streams in flight. ``read_region`` would repeat the first two
    and probe the block's header, four requests a point. A point whose block is missing
    reads 0, as an unwritten cell does."""
    dtype = store.output_layout(key, job_id).dtype
    stored = store.stored_blocks(key, job_id)
    blocks = {tuple(start for start, _ in region): region for region in stored}

    def holding(p: np.ndarray) -> Region | None:
        # The block of the point's tile, by its corner; else any block that holds it.
        region = blocks.get(tuple(int(v) // t * t for v, t in zip(p, tile, strict=True)))
        if region is not None:
            return region
        return next((r for r in stored if all(a <= int(v) < b for v, (a, b) in zip(p, r, strict=True))), None)

    def one(p: np.ndarray) -> float:
        region = holding(p)
        if region is None:
            return 0.0
        row = store.read_block_rows(key, job_id, region, (int(p[0]), int(p[0]) + 1), dtype)
        return float(row[(0, *(int(v) - start for v, (start, _) in zip(p[1:], region[1:], strict=True)))])

    return _each(one, points, store.io_streams())


def _each(one: Callable[[np.ndarray], float], points: np.ndarray, streams: int) -> np.ndarray:
    if streams <= 1 or len(points) <= 1:
        return np.array([one(p) for p in points])
    with ThreadPoolExecutor(min(streams, len(points)), thread_name_prefix="tilefan-points") as pool:
        return np.array(list(pool.map(one, points)))


def verify_atoms(
    blobs: BlobStore, job_id: str, spec: AtomsSpec, table: np.ndarray, result: dict[str, Any], seed: int,
    read_field: FieldReader | None = None,
) -> dict[str, Any]:
    """Check the minimum and ``ATOMS_SAMPLES`` random points against φ recomputed in float64;
    the field's values there too when it was written (``read_field`` of the points, by
    default ``field_at`` one at a time)."""
    threads.limit_blas()
    rng = np.random.default_rng(seed)
    total = spec.units_total
    picks = rng.choice(total, size=min(ATOMS_SAMPLES, total), replace=False)
    idx = np.stack(np.unravel_index(picks, spec.grid), axis=1)
    min_idx = np.asarray(result["min_index"])[None, :]
    idx = np.concatenate([min_idx, idx])
    # Measure arithmetic error, not input rounding: use the points and atoms exactly as
    # the kernel saw them (rounded once to the working precision).
    points = (np.asarray(spec.origin) + spec.spacing * idx).astype(spec.precision).astype(np.float64)
    rounded = table.astype(spec.precision).astype(np.float64)
    ref, scale = kernels.potential_reference(rounded, points, spec.softening)
    rtol = atoms_rtol(spec.precision, table.shape[0])
    tol = rtol * scale
    min_value = float(result["min_value"])
    ok_min = abs(min_value - ref[0]) <= tol[0]
    # No sampled point may lie below the reported minimum (beyond rounding).
    ok_samples = bool(np.all(ref[1:] >= min_value - tol[1:]))
    check: dict[str, Any] = {
        "method": "sampled",
        "samples": int(len(idx) - 1),
        "rtol": rtol,
        "min_error": float(abs(min_value - ref[0])),
    }
    ok_field = True
    if spec.field_out:
        key = str(spec.field_out)
        got = (read_field or (lambda at: field_at(functools.partial(blobs.read_region, key, job_id), at)))(idx)
        err = np.abs(got - ref)
        ok_field = bool(np.all(err <= tol))
        check["field_max_error_over_tol"] = float(np.max(err / np.maximum(tol, 1e-300)))
    # An overflowed distance makes its term 0 (or inf/NaN): a field that agrees with a
    # reference computed the same way proves nothing, so such a geometry fails.
    far = float(max(np.abs(points).max(), np.abs(rounded[:, :3]).max()))
    finite = bool(math.isfinite(min_value) and np.all(np.isfinite(ref)) and np.all(np.isfinite(scale)))
    degenerate = not finite or not far <= MAX_COORD[spec.precision]
    if degenerate:
        check["degenerate"] = "distances overflowed the working precision: the field is not meaningful"
    check["passed"] = bool(ok_min and ok_samples and ok_field and not degenerate)
    return check

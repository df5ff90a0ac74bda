"""Job specs: validated once at the door, then resolved into frozen, complete objects.

``parse_spec`` checks a JSON-like dict (REST body, or what the CLI builds from its flags)
against the request models (``tilefan.domain.spec.request_models``, read quickly by
``tilefan.domain.spec.requests`` when well formed), then resolves it: file inputs
through an injected ``inspect`` function (shape and dtype from the file header), atoms
tables through ``load_atoms``, default tiles, configured limits, and shapes that must
chain. So a spec that exists is one whose shapes are known and compatible. Every problem
raises ``InvalidSpecError`` naming the field. ``spec_to_dict`` gives the stored form,
and ``parse_spec(spec_to_dict(s)) == spec_from_stored(spec_to_dict(s)) == s``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tilefan.domain.atoms import check_no_atom_on_grid
from tilefan.domain.molecules import grid_around
from tilefan.domain.spec.field_values import file_dtype_refusal
from tilefan.domain.spec.requests import (
    AtomsJobForm,
    RandomMatrixForm,
    StoredAtomsForm,
    StoredMatrixForm,
    read_request,
)
from tilefan.domain.spec.resolved import (
    AtomsInput,
    AtomsSpec,
    JobSpec,
    Kind,
    MatrixInput,
    MatrixSpec,
    RandomAtoms,
    RandomMatrix,
    StoredAtoms,
    StoredMatrix,
    spec_from_stored,
    spec_to_dict,
)
from tilefan.domain.tiling import default_grid_tile, default_matrix_tile
from tilefan.errors import BlobNotFoundError, InvalidBlobError, InvalidSpecError

__all__ = [
    "AtomsInput", "AtomsLoader", "AtomsSpec", "Inspector", "JobSpec", "Kind", "Limits", "MatrixInput", "MatrixSpec",
    "RandomAtoms", "RandomMatrix", "StoredAtoms", "StoredMatrix", "parse_spec", "spec_from_stored", "spec_to_dict",
]


@dataclass(frozen=True)
class Limits:
    """Configured size ceilings; anything larger is refused at the door."""

    max_matrix_elements: int = 1 << 30
    max_dim: int = 1 << 20
    max_grid_points: int = 1 << 30
    max_atoms: int = 10_000_000
    max_tile_edge: int = 1 << 16
    # Guardrails on what one job may cost (checked on the planned job, see pipeline.guardrails).
    max_tiles: int = 10_000
    max_cost_usd: float = 10.0
    # Jobs one owner may have at once (more are refused, 429 on the API): on AWS, QUEUED +
    # RUNNING (each running execution costs); on the embedded backend, RUNNING, since
    # its scheduler starts no more than this at once and the rest wait in its queue.
    max_concurrent_jobs: int = 20
    # The embedded backend's persistent queue is a table row per job, so it takes a
    # generous number: QUEUED + RUNNING jobs one owner may have there.
    max_queued_jobs: int = 10_000


Inspector = Callable[[str], tuple[tuple[int, ...], str]]
"""Returns (shape, dtype) of an array in the blob store; raises BlobNotFoundError."""
AtomsLoader = Callable[[str], Any]
"""Loads and validates an atoms table (N×4 float64 ndarray) from the blob store."""


# --------------------------------------------------------------------------- resolution


def parse_spec(
    raw: Any,
    *,
    limits: Limits | None = None,
    inspect: Inspector | None = None,
    load_atoms: AtomsLoader | None = None,
) -> JobSpec:
    """Validate ``raw`` into a resolved JobSpec, or raise InvalidSpecError naming the field."""
    limits = limits or Limits()
    request = read_request(raw)
    if isinstance(request, AtomsJobForm):
        return _resolve_atoms(request, limits, load_atoms)
    kind = Kind(request.kind)
    a = _resolve_matrix(request.a, "a", 0, request.seed, request.dtype, limits, inspect)
    b = _resolve_matrix(request.b, "b", 1, request.seed, request.dtype, limits, inspect)
    # Name what the user typed: the shape of a random matrix, or the file.
    b_field = "b.shape" if isinstance(b, RandomMatrix) else "b"
    if kind is Kind.MATMUL and a.shape[1] != b.shape[0]:
        raise InvalidSpecError(
            b_field,
            f"shapes do not chain for matmul: a is {a.shape[0]}x{a.shape[1]} and b is "
            f"{b.shape[0]}x{b.shape[1]}; b needs {a.shape[1]} rows",
        )
    if kind is Kind.ADD and a.shape != b.shape:
        raise InvalidSpecError(
            b_field, f"shapes must match for add: a is {a.shape[0]}x{a.shape[1]}, b is {b.shape[0]}x{b.shape[1]}"
        )
    out_shape = (a.shape[0], b.shape[1])
    _check_size(out_shape, "out", limits)
    if request.tile is not None:
        tile = _at_most(request.tile, limits.max_tile_edge, "tile")
    else:
        itemsize = 8 if "float64" in (a.dtype, b.dtype) else 4
        tile = default_matrix_tile(kind.value, out_shape, a.shape[1], itemsize)
    return MatrixSpec(kind=kind, a=a, b=b, out=request.out, tile=(tile[0], tile[1]), verify=request.verify,
                      route=request.route)


def _resolve_matrix(
    m: RandomMatrixForm | StoredMatrixForm, role: str, stream: int, seed: int | None, dtype: str,
    limits: Limits, inspect: Inspector | None,
) -> MatrixInput:
    if isinstance(m, RandomMatrixForm):
        shape = _at_most(m.shape, limits.max_dim, f"{role}.shape")
        _check_size(shape, f"{role}.shape", limits)
        return RandomMatrix(
            shape=(shape[0], shape[1]),
            dtype=m.dtype or dtype,
            seed=next(s for s in (m.seed, seed, 0) if s is not None),
            stream=stream if m.stream is None else m.stream,
        )
    uri = m.file
    if inspect is None:
        raise InvalidSpecError(f"{role}.file", "file inputs are not available here")
    found, file_dtype = _read(inspect, uri, f"{role}.file")
    if len(found) != 2:
        raise InvalidSpecError(
            role, f"{uri} must hold a 2-D array, it has {len(found)} dimension(s) {tuple(found)}"
        )
    refusal = file_dtype_refusal(uri, file_dtype)
    if refusal:
        raise InvalidSpecError(role, refusal)
    if 0 in found:
        raise InvalidSpecError(role, f"{uri} is empty (shape {tuple(found)})")
    _check_size(found, role, limits)
    return StoredMatrix(file=uri, shape=(int(found[0]), int(found[1])), dtype=file_dtype)


def _at_most(values: tuple[int, ...], maximum: int, field: str) -> tuple[int, ...]:
    for v in values:
        if v > maximum:
            raise InvalidSpecError(field, f"must be at most {maximum}, got {v}")
    return values


def _check_size(shape: tuple[int, ...], field: str, limits: Limits) -> None:
    n = math.prod(shape)
    if n > limits.max_matrix_elements:
        raise InvalidSpecError(
            field,
            f"{'x'.join(map(str, shape))} has {n} elements, over the configured limit of "
            f"{limits.max_matrix_elements}",
        )


def _resolve_atoms(request: AtomsJobForm, limits: Limits, load_atoms: AtomsLoader | None) -> AtomsSpec:
    grid, origin = _placement(request, load_atoms)
    grid = _grid_within(grid, limits, "grid" if request.around is None else "around")
    atoms: AtomsInput
    table = None
    if isinstance(request.atoms, StoredAtomsForm):
        if load_atoms is None:
            raise InvalidSpecError("atoms.file", "file inputs are not available here")
        table = _read(load_atoms, request.atoms.file, "atoms.file")
        atoms = StoredAtoms(file=request.atoms.file, count=int(table.shape[0]))
        if atoms.count > limits.max_atoms:
            raise InvalidSpecError("atoms", f"{atoms.count} atoms is over the configured limit of {limits.max_atoms}")
    else:
        count = _at_most((request.atoms.count,), limits.max_atoms, "atoms.count")[0]
        atoms = RandomAtoms(count=count, seed=request.atoms.seed or 0)
    if request.tile is None:
        tile = default_grid_tile(grid)
    else:
        t = _at_most(request.tile, limits.max_tile_edge, "tile")
        tile = (min(t[0], grid[0]), min(t[1], grid[1]), min(t[2], grid[2]))
    spec = AtomsSpec(
        grid=grid, origin=origin, spacing=request.spacing, softening=request.softening,
        precision=request.precision, atoms=atoms, field_out=request.field_out, tile=tile, verify=request.verify,
        route=request.route, units=request.units,
    )
    _check_geometry(spec, table)
    if table is not None:
        check_no_atom_on_grid(table, spec, "atoms.file")
    return spec


def _placement(request: AtomsJobForm, load_atoms: AtomsLoader | None) -> tuple[tuple[int, ...],
                                                                              tuple[float, float, float]]:
    """The grid's size and origin: as given, or around a molecule (its box plus the margin)."""
    around = request.around
    if around is None:
        if request.grid is None:
            raise InvalidSpecError("grid", "is required (e.g. 64 or [32, 48, 64]), or place the grid with around")
        return request.grid, request.origin or (0.0, 0.0, 0.0)
    given = {"grid": request.grid is not None, "origin": request.origin is not None}
    for name, present in given.items():
        if present:
            raise InvalidSpecError(name, "give either around (which sets grid and origin) or grid and origin")
    uri, field = around.file, "around.file"
    if uri is None:
        if not isinstance(request.atoms, StoredAtomsForm):
            raise InvalidSpecError("around.file", "is required when the atoms are random: name the molecule")
        uri, field = request.atoms.file, "atoms.file"
    if load_atoms is None:
        raise InvalidSpecError(field, "file inputs are not available here")
    try:
        table = _read(load_atoms, uri, field)
    except InvalidSpecError as exc:
        raise InvalidSpecError(field, exc.message) from None
    return grid_around(table[:, :3], request.spacing, around.margin)


def _grid_within(g: tuple[int, ...], limits: Limits, field: str) -> tuple[int, int, int]:
    _at_most(g, limits.max_dim, field)
    if math.prod(g) > limits.max_grid_points:
        raise InvalidSpecError(
            field, f"{math.prod(g)} points is over the configured limit of {limits.max_grid_points}"
        )
    return (g[0], g[1], g[2])


# Coordinates whose squared differences stay finite in the working precision (with room
# for the sum of three squares): beyond them the kernel's distances overflow and φ is 0.
MAX_COORD = {"float64": 1e150, "float32": 1e18}
# The smallest spacing (and softening length above 0) whose square is still a normal number
# in the working precision: below it the squares underflow (to subnormals, then 0), a
# distance rounds to zero and φ becomes inf, so such a grid is refused at the door.
MIN_LENGTH = {"float64": 1e-150, "float32": 1e-18}


def _check_geometry(spec: AtomsSpec, table: Any) -> None:
    smallest = MIN_LENGTH[spec.precision]
    for name, value in (("spacing", spec.spacing), ("softening", spec.softening)):
        if 0 < value < smallest:
            raise InvalidSpecError(name, f"{value:.3g} underflows {spec.precision} when squared; use at least "
                                         f"{smallest:.0e} (or change the unit of length)")
    limit = MAX_COORD[spec.precision]
    far = max(abs(o + (n - 1) * spec.spacing) for o, n in zip(spec.origin, spec.grid, strict=True))
    far = max(far, *(abs(o) for o in spec.origin))
    if not math.isfinite(far) or far > limit:
        raise InvalidSpecError("spacing", f"the grid reaches {far:.3g}, which overflows {spec.precision} when "
                                          f"squared; keep origin and extent within {limit:.0e}")
    if spec.softening > limit:
        raise InvalidSpecError("softening", f"{spec.softening:.3g} overflows {spec.precision} when squared; "
                                            f"keep it within {limit:.0e}")
    if table is not None and table.size and float(abs(table[:, :3]).max()) > limit:
        raise InvalidSpecError("atoms.file", f"atom coordinates overflow {spec.precision} when squared; "
                                             f"keep them within {limit:.0e}")

def _read(fn: Callable[[str], Any], uri: str, field: str) -> Any:
    """Call a blob-store reader, turning its errors into ones that name the field."""
    try:
        return fn(uri)
    except BlobNotFoundError:
        raise InvalidSpecError(field, f"no such file: {uri}") from None
    except InvalidBlobError as exc:
        raise InvalidSpecError(field, f"{uri}: {exc.reason}") from None

"""Job specs: parsed once at the door into frozen, fully resolved objects.

``parse_spec`` turns a JSON-like dict (REST body, or what the CLI builds from its flags)
into a ``JobSpec``. Every problem raises ``InvalidSpecError`` naming the field. File
inputs are resolved through an injected ``inspect`` function (shape and dtype from the
file header), so a spec that exists is one whose shapes are known and compatible.
``spec_to_dict`` is the inverse; stored job records hold that form, and
``parse_spec(spec_to_dict(s)) == s``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from tilefan.domain.routing import AUTO, ROUTES
from tilefan.errors import BlobNotFoundError, InvalidBlobError, InvalidSpecError

FLOAT_DTYPES = ("float32", "float64")


class Kind(StrEnum):
    MATMUL = "matmul"
    ADD = "add"
    ATOMS = "atoms"


@dataclass(frozen=True)
class Limits:
    """Configured size ceilings; anything larger is refused at the door."""

    max_matrix_elements: int = 1 << 30
    max_dim: int = 1 << 20
    max_grid_points: int = 1 << 30
    max_atoms: int = 10_000_000
    max_tile_edge: int = 1 << 16


@dataclass(frozen=True)
class RandomMatrix:
    """A seeded random matrix: a pure function of (seed, stream, shape, dtype)."""

    shape: tuple[int, int]
    dtype: str
    seed: int
    stream: int


@dataclass(frozen=True)
class StoredMatrix:
    """A matrix in the blob store (a local path or an object key)."""

    uri: str
    shape: tuple[int, int]
    dtype: str


MatrixInput = RandomMatrix | StoredMatrix


@dataclass(frozen=True)
class RandomAtoms:
    count: int
    seed: int


@dataclass(frozen=True)
class StoredAtoms:
    """An N×4 table (x, y, z, energy) in ``.npy`` or ``.csv`` form."""

    uri: str
    count: int


AtomsInput = RandomAtoms | StoredAtoms


@dataclass(frozen=True)
class MatrixSpec:
    """matmul (C = A·B) or add (C = A + B)."""

    kind: Kind
    a: MatrixInput
    b: MatrixInput
    out: str | None
    tile: tuple[int, int]
    verify: bool
    # "auto" lets the planner route each tile; "lambda" or "spot" forces every tile there.
    route: str = AUTO

    @property
    def out_shape(self) -> tuple[int, int]:
        if self.kind is Kind.MATMUL:
            return (self.a.shape[0], self.b.shape[1])
        return self.a.shape

    @property
    def dtype(self) -> str:
        return "float64" if "float64" in (self.a.dtype, self.b.dtype) else "float32"

    @property
    def units_total(self) -> int:
        return self.out_shape[0] * self.out_shape[1]


@dataclass(frozen=True)
class AtomsSpec:
    """The potential φ(p) = Σ e / sqrt(|p − r|² + ε²) on a regular 3-D grid."""

    grid: tuple[int, int, int]
    origin: tuple[float, float, float]
    spacing: float
    softening: float
    precision: str
    atoms: AtomsInput
    field_out: str | None
    tile: tuple[int, int, int]
    verify: bool
    route: str = AUTO

    kind = Kind.ATOMS

    @property
    def units_total(self) -> int:
        return self.grid[0] * self.grid[1] * self.grid[2]

    @property
    def dtype(self) -> str:
        return self.precision


JobSpec = MatrixSpec | AtomsSpec
Inspector = Callable[[str], tuple[tuple[int, ...], str]]
"""Returns (shape, dtype) of an array in the blob store; raises BlobNotFoundError."""
AtomsLoader = Callable[[str], Any]
"""Loads and validates an atoms table (N×4 float64 ndarray) from the blob store."""


# --------------------------------------------------------------------------- helpers


def _int(value: Any, field: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        integral_text = isinstance(value, str) and value.strip().lstrip("+-").isdigit()
        if integral_text or (isinstance(value, float) and value.is_integer()):
            value = int(value)
        else:
            raise InvalidSpecError(field, f"must be an integer, got {value!r}")
    if value < minimum:
        raise InvalidSpecError(field, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidSpecError(field, f"must be at most {maximum}, got {value}")
    return value


def _float(value: Any, field: str, *, positive: bool = False, nonneg: bool = False) -> float:
    if isinstance(value, bool):
        raise InvalidSpecError(field, f"must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidSpecError(field, f"must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise InvalidSpecError(field, f"must be finite, got {value!r}")
    if positive and out <= 0:
        raise InvalidSpecError(field, f"must be greater than 0, got {value!r}")
    if nonneg and out < 0:
        raise InvalidSpecError(field, f"must be 0 or more, got {value!r}")
    return out


def _bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidSpecError(field, f"must be true or false, got {value!r}")


def _dtype(value: Any, field: str) -> str:
    text = str(value)
    if text not in FLOAT_DTYPES:
        raise InvalidSpecError(field, f"unsupported dtype {text!r}; use float32 or float64")
    return text


def _route(value: Any) -> str:
    if value not in ROUTES:
        raise InvalidSpecError("route", f"must be one of {', '.join(ROUTES)}; got {value!r}")
    return str(value)


def _optional_str(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidSpecError(field, "must be a non-empty string")
    return value


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidSpecError(field, f"must be an object, got {type(value).__name__}")
    return value


def _reject_unknown(raw: Mapping[str, Any], allowed: set[str], prefix: str = "") -> None:
    for key in raw:
        if key not in allowed:
            name = f"{prefix}{key}"
            raise InvalidSpecError(name, f"unknown field; expected one of {sorted(allowed)}")


def _shape(value: Any, field: str, ndim: int, limits: Limits) -> tuple[int, ...]:
    if isinstance(value, str):
        value = value.lower().split("x")
        if len(value) == 1 and ndim == 3:
            value = value * 3
    if isinstance(value, int) and not isinstance(value, bool) and ndim == 3:
        value = [value] * 3
    if not isinstance(value, (list, tuple)) or len(value) != ndim:
        want = "x".join(["N"] * ndim)
        raise InvalidSpecError(field, f"must be {ndim} sizes like {want}, got {value!r}")
    return tuple(
        _int(v, field, minimum=1, maximum=limits.max_dim) for v in value
    )


# --------------------------------------------------------------------------- matrices


def _matrix(
    raw: Any, role: str, stream: int, dtype: str, limits: Limits, inspect: Inspector | None
) -> MatrixInput:
    raw = _mapping(raw, role)
    if "file" in raw:
        _reject_unknown(raw, {"file", "shape", "dtype"}, f"{role}.")
        uri = _optional_str(raw["file"], f"{role}.file")
        assert uri is not None
        if inspect is None:
            raise InvalidSpecError(f"{role}.file", "file inputs are not available here")
        shape, file_dtype = _resolve(inspect, uri, f"{role}.file")
        if len(shape) != 2:
            raise InvalidSpecError(
                role, f"{uri} must hold a 2-D array, it has {len(shape)} dimension(s) {tuple(shape)}"
            )
        if file_dtype not in FLOAT_DTYPES:
            raise InvalidSpecError(role, f"{uri} has unsupported dtype {file_dtype}; use float32 or float64")
        if 0 in shape:
            raise InvalidSpecError(role, f"{uri} is empty (shape {tuple(shape)})")
        _check_size(shape, role, limits)
        return StoredMatrix(uri=uri, shape=(int(shape[0]), int(shape[1])), dtype=file_dtype)
    if "shape" in raw:
        _reject_unknown(raw, {"shape", "seed", "dtype", "stream"}, f"{role}.")
        shape2 = _shape(raw["shape"], f"{role}.shape", 2, limits)
        _check_size(shape2, f"{role}.shape", limits)
        seed = _int(raw.get("seed", 0), f"{role}.seed", minimum=0, maximum=2**63 - 1)
        mdtype = _dtype(raw.get("dtype", dtype), f"{role}.dtype")
        stream_ = _int(raw.get("stream", stream), f"{role}.stream", minimum=0)
        return RandomMatrix(shape=(shape2[0], shape2[1]), dtype=mdtype, seed=seed, stream=stream_)
    raise InvalidSpecError(role, "give either a file or a shape (with a seed) for a random matrix")


def _check_size(shape: tuple[int, ...], field: str, limits: Limits) -> None:
    n = math.prod(shape)
    if n > limits.max_matrix_elements:
        raise InvalidSpecError(
            field,
            f"{'x'.join(map(str, shape))} has {n} elements, over the configured limit of "
            f"{limits.max_matrix_elements}",
        )


def _matrix_tile(
    raw: Any, kind: Kind, out_shape: tuple[int, int], k: int, itemsize: int, limits: Limits
) -> tuple[int, int]:
    if raw is not None:
        if isinstance(raw, (list, tuple)) and len(raw) == 2:
            return (
                _int(raw[0], "tile", maximum=limits.max_tile_edge),
                _int(raw[1], "tile", maximum=limits.max_tile_edge),
            )
        edge = _int(raw, "tile", maximum=limits.max_tile_edge)
        return (edge, edge)
    from tilefan.domain.tiling import default_matrix_tile

    return default_matrix_tile(kind.value, out_shape, k, itemsize)


def _parse_matrix_spec(
    kind: Kind, raw: Mapping[str, Any], limits: Limits, inspect: Inspector | None
) -> MatrixSpec:
    _reject_unknown(raw, {"kind", "a", "b", "out", "tile", "verify", "dtype", "seed", "route"})
    dtype = _dtype(raw.get("dtype", "float64"), "dtype")
    for role in ("a", "b"):
        if role not in raw:
            raise InvalidSpecError(role, "is required")
    seeded = {}
    if "seed" in raw:
        seed = _int(raw["seed"], "seed", minimum=0, maximum=2**63 - 1)
        seeded = {"seed": seed}
    a = _matrix(_with_default(raw["a"], seeded), "a", 0, dtype, limits, inspect)
    b = _matrix(_with_default(raw["b"], seeded), "b", 1, dtype, limits, inspect)
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
    itemsize = 8 if "float64" in (a.dtype, b.dtype) else 4
    tile = _matrix_tile(raw.get("tile"), kind, out_shape, a.shape[1], itemsize, limits)
    return MatrixSpec(
        kind=kind,
        a=a,
        b=b,
        out=_optional_str(raw.get("out"), "out"),
        tile=tile,
        verify=_bool(raw.get("verify", False), "verify"),
        route=_route(raw.get("route", AUTO)),
    )


def _with_default(raw: Any, defaults: Mapping[str, Any]) -> Any:
    if isinstance(raw, Mapping) and "shape" in raw:
        return {**defaults, **raw}
    return raw


# --------------------------------------------------------------------------- atoms


def _parse_atoms_spec(
    raw: Mapping[str, Any], limits: Limits, load_atoms: AtomsLoader | None
) -> AtomsSpec:
    _reject_unknown(
        raw,
        {"kind", "grid", "origin", "spacing", "softening", "precision", "atoms", "field_out", "tile", "verify",
         "route"},
    )
    if "grid" not in raw:
        raise InvalidSpecError("grid", "is required (e.g. 64 or [32, 48, 64])")
    g = _shape(raw["grid"], "grid", 3, limits)
    grid = (g[0], g[1], g[2])
    if math.prod(grid) > limits.max_grid_points:
        raise InvalidSpecError(
            "grid", f"{math.prod(grid)} points is over the configured limit of {limits.max_grid_points}"
        )
    origin_raw = raw.get("origin", (0.0, 0.0, 0.0))
    if isinstance(origin_raw, str):
        origin_raw = origin_raw.split(",")
    if not isinstance(origin_raw, (list, tuple)) or len(origin_raw) != 3:
        raise InvalidSpecError("origin", f"must be three numbers x,y,z, got {origin_raw!r}")
    o = [_float(v, "origin") for v in origin_raw]
    origin = (o[0], o[1], o[2])
    spacing = _float(raw.get("spacing", 1.0), "spacing", positive=True)
    softening = _float(raw.get("softening", 0.0), "softening", nonneg=True)
    precision = _dtype(raw.get("precision", "float64"), "precision")
    if "atoms" not in raw:
        raise InvalidSpecError("atoms", "is required: a count with a seed, or a file")
    atoms_raw = raw["atoms"]
    atoms: AtomsInput
    stored_table = None
    if isinstance(atoms_raw, int) and not isinstance(atoms_raw, bool):
        atoms_raw = {"count": atoms_raw}
    atoms_raw = _mapping(atoms_raw, "atoms")
    if "file" in atoms_raw:
        _reject_unknown(atoms_raw, {"file", "count"}, "atoms.")
        uri = _optional_str(atoms_raw["file"], "atoms.file")
        assert uri is not None
        if load_atoms is None:
            raise InvalidSpecError("atoms.file", "file inputs are not available here")
        table = _resolve(load_atoms, uri, "atoms.file")
        count = int(table.shape[0])
        if count > limits.max_atoms:
            raise InvalidSpecError("atoms", f"{count} atoms is over the configured limit of {limits.max_atoms}")
        atoms = StoredAtoms(uri=uri, count=count)
        stored_table = table
    elif "count" in atoms_raw:
        _reject_unknown(atoms_raw, {"count", "seed"}, "atoms.")
        count = _int(atoms_raw["count"], "atoms.count", maximum=limits.max_atoms)
        seed = _int(atoms_raw.get("seed", 0), "atoms.seed", minimum=0, maximum=2**63 - 1)
        atoms = RandomAtoms(count=count, seed=seed)
    else:
        raise InvalidSpecError("atoms", "give either a count (with a seed) or a file")
    tile_raw = raw.get("tile")
    if tile_raw is None:
        from tilefan.domain.tiling import default_grid_tile

        tile = default_grid_tile(grid)
    else:
        if isinstance(tile_raw, (list, tuple)):
            t = _shape(tile_raw, "tile", 3, replace(limits, max_dim=limits.max_tile_edge))
        else:
            edge = _int(tile_raw, "tile", maximum=limits.max_tile_edge)
            t = (edge, edge, edge)
        tile = (min(t[0], grid[0]), min(t[1], grid[1]), min(t[2], grid[2]))
    spec = AtomsSpec(
        grid=grid,
        origin=origin,
        spacing=spacing,
        softening=softening,
        precision=precision,
        atoms=atoms,
        field_out=_optional_str(raw.get("field_out"), "field_out"),
        tile=tile,
        verify=_bool(raw.get("verify", False), "verify"),
        route=_route(raw.get("route", AUTO)),
    )
    if stored_table is not None:
        from tilefan.domain.atoms import check_no_atom_on_grid

        check_no_atom_on_grid(stored_table, spec, "atoms.file")
    return spec


def _resolve(fn: Callable[[str], Any], uri: str, field: str) -> Any:
    """Call a blob-store reader, turning its errors into ones that name the field."""
    try:
        return fn(uri)
    except BlobNotFoundError:
        raise InvalidSpecError(field, f"no such file: {uri}") from None
    except InvalidBlobError as exc:
        raise InvalidSpecError(field, f"{uri}: {exc.reason}") from None


# --------------------------------------------------------------------------- entry points


def parse_spec(
    raw: Any,
    *,
    limits: Limits | None = None,
    inspect: Inspector | None = None,
    load_atoms: AtomsLoader | None = None,
) -> JobSpec:
    """Validate ``raw`` into a resolved JobSpec, or raise InvalidSpecError naming the field."""
    limits = limits or Limits()
    raw = _mapping(raw, "spec")
    kind_raw = raw.get("kind")
    try:
        kind = Kind(kind_raw)
    except ValueError:
        raise InvalidSpecError("kind", f"must be one of matmul, add, atoms; got {kind_raw!r}") from None
    if kind is Kind.ATOMS:
        return _parse_atoms_spec(raw, limits, load_atoms)
    return _parse_matrix_spec(kind, raw, limits, inspect)


def _matrix_to_dict(m: MatrixInput) -> dict[str, Any]:
    if isinstance(m, StoredMatrix):
        return {"file": m.uri, "shape": list(m.shape), "dtype": m.dtype}
    return {"shape": list(m.shape), "dtype": m.dtype, "seed": m.seed, "stream": m.stream}


def spec_to_dict(spec: JobSpec) -> dict[str, Any]:
    """The stored, JSON-ready form of a resolved spec."""
    if isinstance(spec, MatrixSpec):
        return {
            "kind": spec.kind.value,
            "a": _matrix_to_dict(spec.a),
            "b": _matrix_to_dict(spec.b),
            "out": spec.out,
            "tile": list(spec.tile),
            "verify": spec.verify,
            "route": spec.route,
        }
    atoms: dict[str, Any]
    if isinstance(spec.atoms, StoredAtoms):
        atoms = {"file": spec.atoms.uri, "count": spec.atoms.count}
    else:
        atoms = {"count": spec.atoms.count, "seed": spec.atoms.seed}
    return {
        "kind": "atoms",
        "grid": list(spec.grid),
        "origin": list(spec.origin),
        "spacing": spec.spacing,
        "softening": spec.softening,
        "precision": spec.precision,
        "atoms": atoms,
        "field_out": spec.field_out,
        "tile": list(spec.tile),
        "verify": spec.verify,
        "route": spec.route,
    }


def _matrix_from_stored(m: Mapping[str, Any]) -> MatrixInput:
    shape = (int(m["shape"][0]), int(m["shape"][1]))
    if "file" in m:
        return StoredMatrix(uri=str(m["file"]), shape=shape, dtype=str(m["dtype"]))
    return RandomMatrix(shape=shape, dtype=str(m["dtype"]), seed=int(m["seed"]), stream=int(m["stream"]))


def spec_from_stored(raw: Mapping[str, Any]) -> JobSpec:
    """Rebuild a spec from its stored form (written by ``spec_to_dict`` after validation),
    without touching any file again."""
    kind = Kind(raw["kind"])
    if kind is not Kind.ATOMS:
        return MatrixSpec(
            kind=kind,
            a=_matrix_from_stored(raw["a"]),
            b=_matrix_from_stored(raw["b"]),
            out=raw.get("out"),
            tile=(int(raw["tile"][0]), int(raw["tile"][1])),
            verify=bool(raw["verify"]),
            route=str(raw.get("route", AUTO)),  # records from before routes were stored
        )
    a = raw["atoms"]
    atoms: AtomsInput
    if "file" in a:
        atoms = StoredAtoms(uri=str(a["file"]), count=int(a["count"]))
    else:
        atoms = RandomAtoms(count=int(a["count"]), seed=int(a["seed"]))
    g, o, t = raw["grid"], raw["origin"], raw["tile"]
    return AtomsSpec(
        grid=(int(g[0]), int(g[1]), int(g[2])),
        origin=(float(o[0]), float(o[1]), float(o[2])),
        spacing=float(raw["spacing"]),
        softening=float(raw["softening"]),
        precision=str(raw["precision"]),
        atoms=atoms,
        field_out=raw.get("field_out"),
        tile=(int(t[0]), int(t[1]), int(t[2])),
        verify=bool(raw["verify"]),
        route=str(raw.get("route", AUTO)),
    )

"""Request models: the job spec as a client sends it, one pydantic model per kind.

``JobRequest`` is a union discriminated by ``kind``; each kind forbids fields it does not
have, so one kind's fields are refused on another. These models are the single source of
both the check at the door and the OpenAPI schema (``tilefan.entrypoints.http.openapi``).
``validate_request`` turns pydantic's errors into ``InvalidSpecError`` naming the field
path ("a.shape", "atoms.count"), which the CLI maps to its flags. What needs more than
the body (file headers, configured limits, shapes that must chain) is checked when the
request is resolved into a spec (``tilefan.domain.spec.parse``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, RootModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from tilefan.domain.routing import AUTO
from tilefan.domain.spec.fields import (
    Count,
    Dtype,
    Flag,
    Grid,
    GridTile,
    Margin,
    MatrixTile,
    Origin,
    Path,
    PositiveInt,
    Route,
    Seed,
    Shape2,
    Softening,
    Spacing,
    Stream,
    UnitsField,
)
from tilefan.errors import InvalidSpecError


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- inputs


class RandomMatrixRequest(_Body):
    """A seeded random matrix: a pure function of (seed, stream, shape, dtype)."""

    shape: Shape2 = Field(description="rows x columns", examples=["300x300", [300, 300]])
    seed: Seed | None = Field(None, description="default: the job's seed, else 0", examples=[7])
    dtype: Dtype | None = Field(None, description="default: the job's dtype")
    stream: Stream | None = Field(None, description="random stream; default 0 for a, 1 for b")


class StoredMatrixRequest(_Body):
    """A 2-D float32/float64 ``.npy`` array in the blob store; its header gives shape and dtype."""

    file: Path = Field(description="a path or an object key (see POST /uploads)", examples=["uploads/0a1b/A.npy"])
    shape: Shape2 | None = Field(None, description="recorded by the server; the file's header is what counts")
    dtype: Dtype | None = Field(None, description="recorded by the server; the file's header is what counts")


class RandomAtomsRequest(_Body):
    """Atoms at seeded random positions with random energies."""

    count: Count = Field(examples=[1000])
    seed: Seed | None = Field(None, description="default 0", examples=[1])


class StoredAtomsRequest(_Body):
    """Atoms in the blob store: an N×4 table (x, y, z, energy) as ``.npy`` or ``.csv``, or a molecule
    as PQR or extended XYZ (``.pqr``, ``.xyz``), whose charges (e) are the energies."""

    file: Path = Field(examples=["uploads/0a1b/atoms.csv", "uploads/0a1b/adk_open.pqr"])
    count: Count | None = Field(None, description="recorded by the server; the file is what counts")


class AroundRequest(_Body):
    """Place the grid around a molecule: its atoms' bounding box plus ``margin`` on every side,
    centred, with points ``spacing`` apart (origin and grid size follow)."""

    margin: Margin = Field(description="distance (Å) kept beyond the outermost atoms on every side", examples=[8])
    file: Path | None = Field(None, description="the molecule to surround; default: the job's atoms file",
                              examples=["uploads/0a1b/ligand.pqr"])


def _matrix_form(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return "stored_matrix" if "file" in value else "random_matrix" if "shape" in value else None
    return None


def _atoms_form(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return "stored_atoms" if "file" in value else "random_atoms" if "count" in value else None
    return None


def _count_alone(value: Any) -> Any:
    """``"atoms": 100`` is short for ``{"count": 100}``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"count": value}
    return value


MatrixInputRequest = Annotated[
    Annotated[RandomMatrixRequest, Tag("random_matrix")] | Annotated[StoredMatrixRequest, Tag("stored_matrix")],
    Discriminator(_matrix_form, custom_error_type="invalid_spec",
                  custom_error_message="give either a file or a shape (with a seed) for a random matrix"),
]
AtomsInputRequest = Annotated[
    Annotated[RandomAtomsRequest, Tag("random_atoms")] | Annotated[StoredAtomsRequest, Tag("stored_atoms")],
    Discriminator(_atoms_form, custom_error_type="invalid_spec",
                  custom_error_message="give either a count (with a seed) or a file"),
    BeforeValidator(_count_alone,
                    json_schema_input_type=PositiveInt | RandomAtomsRequest | StoredAtomsRequest),
]

# The input forms, by the tags that name them in an error's location.
_FORMS: dict[str, type[BaseModel]] = {
    "random_matrix": RandomMatrixRequest, "stored_matrix": StoredMatrixRequest,
    "random_atoms": RandomAtomsRequest, "stored_atoms": StoredAtomsRequest,
}


# --------------------------------------------------------------------------- jobs


class _MatrixJob(_Body):
    kind: Literal["matmul", "add"]
    a: MatrixInputRequest
    b: MatrixInputRequest
    seed: Seed | None = Field(None, description="seed of random inputs that give none", examples=[7])
    dtype: Dtype = Field("float64", description="dtype of random inputs that give none")
    out: Path | None = Field(None, description="where to write C (.npy); default: a key under the job")
    tile: MatrixTile | None = Field(None, description="tile edge N (N×N), or [rows, columns]; default: sized "
                                                      "to the job", examples=[512, [256, 512]])
    verify: Flag = Field(False, description="check the result (Freivalds for matmul, exact for add)")
    route: Route = Field(AUTO, description="where tiles run on AWS: chosen per tile by size (auto), or forced")


class MatmulRequest(_MatrixJob):
    """C = A·B."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"kind": "matmul", "a": {"shape": "3000x2000"}, "b": {"shape": "2000x1000"}, "seed": 7, "tile": 512},
        {"kind": "matmul", "a": {"file": "uploads/0a1b/A.npy"}, "b": {"file": "uploads/0a1b/B.npy"}, "verify": True},
    ]})
    kind: Literal["matmul"]


class AddRequest(_MatrixJob):
    """C = A + B."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"kind": "add", "a": {"shape": [4000, 4000], "dtype": "float32"}, "b": {"shape": "4000x4000"}},
    ]})
    kind: Literal["add"]


class AtomsRequest(_Body):
    """The potential φ(p) = Σ e / sqrt(|p − r|² + ε²) on a regular 3-D grid, and its minimum."""

    # The grid is given (grid, and an origin) or placed around a molecule (around, then
    # neither): exactly one of the two forms.
    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["grid"], "properties": {"grid": {"not": {"type": "null"}}, "around": {"type": "null"}}},
        {"required": ["around"], "properties": {"around": {"type": "object"}, "grid": {"type": "null"}},
         "not": {"required": ["origin"]}},
    ], "examples": [
        {"kind": "atoms", "grid": 64, "atoms": {"count": 1000, "seed": 1}, "softening": 0.1},
        {"kind": "atoms", "grid": "32x48x64", "origin": "-8,-12,-16", "spacing": 0.5,
         "atoms": {"file": "uploads/0a1b/atoms.csv"}, "precision": "float32", "tile": [16, 16, 32]},
        {"kind": "atoms", "atoms": {"file": "uploads/0a1b/adk_open.pqr"}, "around": {"margin": 8}, "spacing": 1,
         "units": "kT/e"},
    ]})
    kind: Literal["atoms"]
    grid: Grid | None = Field(None, description="points per axis: N (N×N×N), NXxNYxNZ, or [NX, NY, NZ]; "
                                                "required unless around places the grid",
                              examples=[64, "32x48x64", [32, 48, 64]])
    atoms: AtomsInputRequest = Field(description="a count of random atoms, {count, seed}, or {file}",
                                     examples=[{"count": 1000, "seed": 1}])
    around: AroundRequest | None = Field(None, description="set origin and grid from a molecule's bounding box "
                                                           "plus a margin", examples=[{"margin": 8}])
    origin: Origin | None = Field(None, description="the grid's first point; default 0,0,0 (around sets it)",
                                  examples=["1,2,3", [1, 2, 3]])
    spacing: Spacing = Field(1.0, description="distance between neighbouring grid points")
    softening: Softening = Field(0.0, description="softening length ε; 0 refuses atoms on grid points")
    precision: Dtype = Field("float64", description="working precision of the kernel")
    units: UnitsField = Field("e/A", description="unit of φ: e/Å (Σq/r, positions in Å, charges in e), "
                                                 "kcal/mol/e (×332.0637) or kT/e at 298 K (×332.0637/0.5925)")
    field_out: Path | None = Field(None, description="write the whole field here (.npy)")
    tile: GridTile | None = Field(None, description="tile edge N (N×N×N) or [NX, NY, NZ]; clipped to the grid")
    verify: Flag = Field(False, description="check the minimum and sampled points against float64")
    route: Route = Field(AUTO, description="where tiles run on AWS: chosen per tile by size (auto), or forced")


AnyJobRequest = MatmulRequest | AddRequest | AtomsRequest


class JobRequest(RootModel[Annotated[AnyJobRequest, Field(discriminator="kind")]]):
    """A job spec: matmul, add or atoms, told apart by ``kind``."""


_KINDS: dict[str, type[BaseModel]] = {"matmul": MatmulRequest, "add": AddRequest, "atoms": AtomsRequest}

# What to say when a required field is missing.
_REQUIRED = {
    "grid": "is required (e.g. 64 or [32, 48, 64])",
    "atoms": "is required: a count with a seed, or a file",
}


def validate_request(raw: Any) -> AnyJobRequest:
    """Check a body's forms, or raise InvalidSpecError naming the first field at fault."""
    if not isinstance(raw, Mapping):
        raise InvalidSpecError("spec", f"must be an object, got {type(raw).__name__}")
    try:
        return JobRequest.model_validate(dict(raw)).root
    except ValidationError as exc:
        raise _spec_error(exc.errors()[0], raw) from None


def _spec_error(error: ErrorDetails, raw: Mapping[str, Any]) -> InvalidSpecError:
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return InvalidSpecError("kind", f"must be one of {', '.join(_KINDS)}; got {raw.get('kind')!r}")
    kind, path, form = _where(error["loc"])
    field = ".".join(str(step) for step in path) or "spec"
    if error["type"] == "missing":
        return InvalidSpecError(field, _REQUIRED.get(field, "is required"))
    if error["type"] == "extra_forbidden":
        return InvalidSpecError(field, _unknown_field(kind, path, form))
    return InvalidSpecError(field, error["msg"])


def _where(loc: tuple[int | str, ...]) -> tuple[str, list[int | str], str | None]:
    """Split an error's location into the kind, the field path the user typed, and the input form.

    The location starts with the kind's tag; an input's form tag follows the field holding
    it (``("matmul", "a", "random_matrix", "shape")``). Neither was typed by the user.
    """
    kind, path = (str(loc[0]), list(loc[1:])) if loc else ("", [])
    form = None
    if len(path) > 1 and path[1] in _FORMS:
        form = str(path.pop(1))
    return kind, path, form


def _unknown_field(kind: str, path: list[int | str], form: str | None) -> str:
    model = _FORMS[form] if form else _KINDS[kind]
    expected = f"expected one of {sorted(model.model_fields)}"
    name = str(path[-1])
    owners = [k for k, m in _KINDS.items() if name in m.model_fields]
    if len(path) == 1 and owners:
        return f"is not a field of {kind} jobs (only of {' and '.join(owners)}); {expected}"
    return f"unknown field; {expected}"

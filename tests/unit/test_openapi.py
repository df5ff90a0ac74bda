"""The generated OpenAPI document agrees with what the door accepts.

Whatever ``parse_spec`` accepts must validate against the document's ``JobRequest``
schema (a client generated from the schema can send every form the CLI and the API take),
and the document's own examples, and the smallest bodies built from its required fields,
must be accepted by ``parse_spec``. The document itself must be valid JSON Schema
2020-12 (what OpenAPI 3.1 uses) with every reference resolving.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from tests.unit.spec_fakes import ADD, ATOMS, MATMUL, atoms_loader, parse, with_
from tilefan.domain.routing import ROUTES
from tilefan.domain.spec.parse import parse_spec, spec_to_dict
from tilefan.entrypoints.http.openapi import openapi_document
from tilefan.errors import BlobNotFoundError, InvalidSpecError

DOC = openapi_document()
SCHEMAS: dict[str, Any] = DOC["components"]["schemas"]


def validator(name: str) -> Draft202012Validator:
    """Validates against one component; "#/components/..." references resolve in the document."""
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": DOC["components"]})


JOB_REQUEST = validator("JobRequest")


def assert_in_schema(body: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in JOB_REQUEST.iter_errors(body)]
    assert not errors, (body, errors)


# --------------------------------------------------------------------------- the document


def test_the_document_is_valid_json_schema_and_every_reference_resolves() -> None:
    assert DOC["openapi"] == "3.1.0"
    for name, schema in SCHEMAS.items():
        Draft202012Validator.check_schema(schema)

        def refs(node: Any) -> Iterator[str]:
            if isinstance(node, dict):
                if "$ref" in node:
                    yield node["$ref"]
                for value in node.values():
                    yield from refs(value)
            elif isinstance(node, list):
                for value in node:
                    yield from refs(value)

        for ref in refs(schema):
            assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in SCHEMAS, (name, ref)


def test_each_kind_has_its_own_fields_and_no_others() -> None:
    request = SCHEMAS["JobRequest"]
    assert request["discriminator"]["propertyName"] == "kind"
    assert set(request["discriminator"]["mapping"]) == {"matmul", "add", "atoms"}
    matmul, atoms = SCHEMAS["MatmulRequest"], SCHEMAS["AtomsRequest"]
    assert matmul["additionalProperties"] is False and atoms["additionalProperties"] is False
    assert {"a", "b", "out", "dtype", "seed"} <= set(matmul["properties"]) - set(atoms["properties"])
    assert {"grid", "atoms", "origin", "spacing", "softening", "field_out"} <= (
        set(atoms["properties"]) - set(matmul["properties"])
    )
    assert set(SCHEMAS["AddRequest"]["properties"]) == set(matmul["properties"])


def test_routes_in_the_schema_are_the_routes_the_planner_knows() -> None:
    assert SCHEMAS["MatmulRequest"]["properties"]["route"]["enum"] == list(ROUTES)


def test_every_served_operation_documents_its_errors_with_the_error_body() -> None:
    for path, ops in DOC["paths"].items():
        for method, op in ops.items():
            errors = {code: r for code, r in op["responses"].items() if code[0] in "45"}
            assert path == "/openapi.json" or "500" in errors, (method, path)
            for response in errors.values():
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


# --------------------------------------------------------------------------- accepted ⊆ schema


ACCEPTED = [
    # matrices: every shape form, seeds and dtypes at both levels, file inputs, tiles
    with_(MATMUL, a={"shape": " 3 x 4 "}, b={"shape": "4X5"}),
    with_(MATMUL, a={"shape": [3, 4]}, b={"shape": ["4", 5.0]}, seed="7", dtype="float32"),
    with_(MATMUL, a={"shape": "3x4", "seed": 1, "dtype": "float64", "stream": 3}, b={"shape": "4x5", "stream": "0"}),
    with_(MATMUL, a={"file": "/data/a34.npy"}, b={"file": "/data/b45.npy"}, out="/data/c.npy", verify=True),
    with_(MATMUL, a={"file": "/data/a34.npy", "shape": [3, 4], "dtype": "float64"}, b={"shape": "4x5"}),
    with_(MATMUL, tile=2), with_(MATMUL, tile="2"), with_(MATMUL, tile=[1, 3]), with_(MATMUL, tile=["1", 3.0]),
    with_(MATMUL, tile=None, out=None), with_(MATMUL, tile=2.0),
    with_(ADD, route="lambda"), with_(ADD, route="spot"), with_(ADD, route="auto", verify=False),
    with_(ADD, a={"file": "/data/a34.npy"}, b={"file": "/data/b34.npy"}, seed=0),
    # atoms: every grid, atoms, origin and tile form; numbers as text
    with_(ATOMS, grid="4"), with_(ATOMS, grid="2x3x5"), with_(ATOMS, grid=[2, 3, 5]), with_(ATOMS, grid=["2", 3, 5.0]),
    with_(ATOMS, grid=4.0), with_(ATOMS, atoms=5), with_(ATOMS, atoms={"count": 5}),
    with_(ATOMS, atoms={"count": "5", "seed": "2"}), with_(ATOMS, atoms={"file": "/data/atoms.npy"}),
    with_(ATOMS, atoms={"file": "/data/atoms.npy", "count": 2}),
    with_(ATOMS, origin="1,2,3"), with_(ATOMS, origin=" 1 , 2.5 , -3e0 "), with_(ATOMS, origin=[1, "2", 3.5]),
    with_(ATOMS, spacing="0.5", softening="0"), with_(ATOMS, spacing=2, softening=0.25, precision="float32"),
    with_(ATOMS, tile=5), with_(ATOMS, tile="3"), with_(ATOMS, tile=[2, 2, 3]), with_(ATOMS, field_out="/d/phi.npy"),
    with_(ATOMS, origin=[0, 0, 0], spacing=".5", softening="1_0.5", verify=True, route="spot", field_out=None),
]


@pytest.mark.parametrize("raw", ACCEPTED)
def test_every_accepted_form_is_in_the_schema(raw: dict[str, Any]) -> None:
    spec = parse(raw)
    assert_in_schema(raw)
    # The stored form (what job records show as "spec") is a request too.
    assert_in_schema(spec_to_dict(spec))


def _pool(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


def _matrix(shapes: tuple[Any, ...], file: str) -> st.SearchStrategy[dict[str, Any]]:
    """A matrix input in any accepted form, of the shape ``shapes`` spell or from ``file``."""
    random = st.fixed_dictionaries({"shape": _pool(*shapes)}, optional={
        "seed": _SEEDS, "dtype": _DTYPES, "stream": _SEEDS})
    stored = st.fixed_dictionaries({"file": st.just(file)}, optional={"shape": _pool(*shapes), "dtype": _DTYPES})
    return st.one_of(random, stored)


# Accepted forms of each field (text and whole floats included); shapes chain for matmul.
_SEEDS = _pool(0, 7, "7", " +7 ", 7.0, "-0", 2**63 - 1)
_DTYPES = _pool("float32", "float64")
_S34 = ("3x4", " 3 X 4 ", [3, 4], ["3", 4.0], ["+3", " 4 "])
_S45 = ("4x5", "4X5", [4, 5], [" 4", "5"], [4.0, 5.0])
_COMMON = {"verify": _pool(True, False), "route": _pool(*ROUTES)}
_MATRIX_OPTIONS = {"seed": _SEEDS, "dtype": _DTYPES, "out": _pool("/o.npy", None),
                   "tile": _pool(1, "2", 2.0, [1, 3], ["2", 2.0], None), **_COMMON}
_VALID = st.one_of(
    st.fixed_dictionaries({"kind": st.just("matmul"), "a": _matrix(_S34, "/data/a34.npy"),
                           "b": _matrix(_S45, "/data/b45.npy")}, optional=_MATRIX_OPTIONS),
    st.fixed_dictionaries({"kind": st.just("add"), "a": _matrix(_S34, "/data/a34.npy"),
                           "b": _matrix(_S34, "/data/b34.npy")}, optional=_MATRIX_OPTIONS),
    st.fixed_dictionaries({
        "kind": st.just("atoms"),
        "grid": _pool(4, "4", 4.0, "2x3x5", [2, 3, 5], ["2", "3", "5"], " 2 x 3 x 5 "),
        "atoms": _pool(5, 5.0, {"count": 5}, {"count": "5", "seed": "2"}, {"file": "/data/atoms.npy"},
                       {"file": "/data/atoms.npy", "count": 2}),
    }, optional={
        # Origins and spacings that keep the stored atoms off every grid point.
        "origin": _pool([0, 0, 0], "0,0,0", " 0.1 , 0.2 , 0.3 ", [0.1, "0.2", 0.3], "-1e0,0,0"),
        "spacing": _pool(1, "1", 2, "2.0", 1e0), "softening": _pool(0, "0", 0.25, "1e-2", "-0"),
        "precision": _DTYPES, "field_out": _pool("/f.npy", None),
        "tile": _pool(1, "2", [1, 2, 3], ["1", 2.0, 3], None), **_COMMON}),
)
# Values at the edges of what is accepted, for any field.
_EDGES = _pool(0, -1, 1, "0", "-0", "+0", " 1 ", "1_0", "1e3", "٣", "0x10", 2.5, 3.0, True, None, "", " ", "x", [], [1],
               {}, "nan", "-inf", 2**63, "1,2,3", "2x2", "2x2x2", [1, 2, 3], [1, 2], [1, "x"], "float32", "gpu",
               {"count": 1}, {"file": "/data/atoms.npy"}, {"shape": "3x4"}, {"file": "/data/a34.npy"})


@settings(max_examples=300, deadline=None)
@given(body=_VALID)
def test_bodies_in_any_mix_of_accepted_forms_are_accepted_and_in_the_schema(body: dict[str, Any]) -> None:
    parse(body)
    assert_in_schema(body)


def _paths(body: dict[str, Any]) -> list[tuple[str, ...]]:
    """Where a value can be set: every field, nested fields, and a few that may be absent."""
    found = {(k,) for k in body} | {("tile",), ("seed",), ("origin",), ("a", "seed"), ("atoms", "count")}
    found |= {(k, inner) for k, v in body.items() if isinstance(v, dict) for inner in v}
    return sorted(found)


@settings(max_examples=600, deadline=None)
@given(body=_VALID, data=st.data())
def test_whatever_parse_spec_accepts_the_schema_accepts(body: dict[str, Any], data: st.DataObject) -> None:
    body = copy.deepcopy(body)  # the pools' dicts are shared between examples
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        path = data.draw(st.sampled_from(_paths(body)), label="field")
        target = body
        for step in path[:-1]:
            if not isinstance(target.get(step), dict):
                return
            target = target[step]
        target[path[-1]] = data.draw(_EDGES, label="value")
    try:
        parse(body)
    except InvalidSpecError:
        return
    assert_in_schema(body)


# --------------------------------------------------------------------------- schema examples ⊆ accepted

# The files the document's examples name, as a fake blob store holds them.
EXAMPLE_FILES = {"uploads/0a1b/A.npy": ((300, 300), "float64"), "uploads/0a1b/B.npy": ((300, 300), "float32")}
# Off every grid point of the examples (spacings 1 and 0.5).
EXAMPLE_TABLE = np.array([[0.3, 1.1, 2.7, 1.0], [3.3, 0.1, 0.7, -0.5]])
EXAMPLE_ATOMS = atoms_loader({name: EXAMPLE_TABLE for name in
                              ("uploads/0a1b/atoms.csv", "uploads/0a1b/adk_open.pqr", "uploads/0a1b/ligand.pqr")})


def example_inspect(uri: str) -> tuple[tuple[int, ...], str]:
    if uri not in EXAMPLE_FILES:
        raise BlobNotFoundError(uri)
    return EXAMPLE_FILES[uri]


def parse_example(body: Any) -> Any:
    return parse_spec(copy.deepcopy(body), inspect=example_inspect, load_atoms=EXAMPLE_ATOMS)


def _deref(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _models_in(prop: dict[str, Any]) -> list[str]:
    """The object schemas a property may hold (its $ref, oneOf or anyOf members)."""
    members = [prop, *prop.get("oneOf", []), *prop.get("anyOf", [])]
    return [m["$ref"].rsplit("/", 1)[1] for m in members if "$ref" in m]


def minimal_body(name: str) -> dict[str, Any]:
    """Only the required fields, each set to its first example (or the smallest body of its model)."""
    schema = _deref(SCHEMAS[name])
    body = {}
    # A choice of required fields (atoms: grid, or around): the first one.
    for field in [*schema.get("required", []), *schema.get("oneOf", [{}])[0].get("required", [])]:
        prop = schema["properties"][field]
        if "const" in prop:
            body[field] = prop["const"]
        elif "examples" in prop:
            body[field] = prop["examples"][0]
        else:
            body[field] = minimal_body(_models_in(prop)[0])
    return body


def example_bodies(name: str) -> Iterator[dict[str, Any]]:
    """The smallest body, then that body with one field set to each of its examples, nested too."""
    base = minimal_body(name)
    yield base
    for field, prop in _deref(SCHEMAS[name])["properties"].items():
        for example in prop.get("examples", []):
            yield _placed({**base, field: example})
        for model in _models_in(prop):
            for inner in example_bodies(model):
                yield _placed({**base, field: inner})


def _placed(body: dict[str, Any]) -> dict[str, Any]:
    """A body with ``around`` places its grid there: no grid of its own, and atoms from a molecule."""
    if "around" not in body:
        return body
    return {**{k: v for k, v in body.items() if k != "grid"}, "atoms": {"file": "uploads/0a1b/adk_open.pqr"}}


@pytest.mark.parametrize("kind", ["MatmulRequest", "AddRequest", "AtomsRequest"])
def test_the_schemas_examples_are_accepted(kind: str) -> None:
    examples = SCHEMAS[kind]["examples"]
    assert examples
    for body in examples:
        assert_in_schema(body)
        assert parse_example(body).kind == body["kind"]


@pytest.mark.parametrize("kind", ["MatmulRequest", "AddRequest", "AtomsRequest"])
def test_bodies_built_from_required_fields_and_field_examples_are_accepted(kind: str) -> None:
    bodies = list(example_bodies(kind))
    assert len(bodies) > 5
    for body in bodies:
        assert_in_schema(body)
        try:
            parse_example(body)
        except InvalidSpecError as exc:
            pytest.fail(f"{body} refused: {exc}")


def test_bodies_the_schema_refuses_are_refused_at_the_door() -> None:
    for body in (with_(MATMUL, grid=4), with_(ATOMS, a={"shape": "3x4"}), with_(ATOMS, tile=[1, 2]),
                 with_(MATMUL, a={"shape": "3x4", "file": "/data/a34.npy", "seed": 1}), with_(ADD, tile=0)):
        assert not JOB_REQUEST.is_valid(body)
        with pytest.raises(InvalidSpecError):
            parse(body)


def test_file_examples_resolve_through_the_fake_store() -> None:
    spec = parse_example({"kind": "atoms", "grid": 64, "atoms": {"file": "uploads/0a1b/atoms.csv"}})
    assert spec.atoms.count == len(EXAMPLE_TABLE)
    spec = parse_example({"kind": "add", "a": {"file": "uploads/0a1b/A.npy"}, "b": {"file": "uploads/0a1b/B.npy"}})
    assert spec.out_shape == (300, 300) and spec.dtype == "float64"

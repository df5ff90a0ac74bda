"""The quick request reader agrees with the pydantic models, which stay the contract.

``quick_form`` reads a well-formed body without pydantic; for anything else it answers
None and the models decide. So on every body: either it answers None, or it answers
exactly what the models' validated objects say (``form_of``). Hypothesis draws bodies from
every field name (and a stranger) with good and bad values, so extra, missing, None and
malformed fields are all tried. The bodies the CLI and the stored records send must take
the quick road, or the start-up it saves is lost.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilefan.domain.spec import request_models as models
from tilefan.domain.spec.requests import (
    AtomsJobForm,
    MatrixJobForm,
    RandomAtomsForm,
    RandomMatrixForm,
    StoredAtomsForm,
    StoredMatrixForm,
    form_of,
    quick_form,
    read_request,
)
from tilefan.errors import InvalidSpecError


def by_models(raw: Any) -> Any:
    try:
        return form_of(models.validate_request(raw))
    except InvalidSpecError:
        return None


# What the CLI builds from its flags (text), and what records store (canonical JSON).
EVERYDAY = [
    {"kind": "atoms", "verify": False, "grid": 16, "atoms": {"count": 1000, "seed": 3}},
    {"kind": "atoms", "verify": True, "grid": "32x48x64", "atoms": {"file": "/d/atoms.csv"}, "spacing": "0.5",
     "origin": "-1.5,0,2", "softening": "0.1", "precision": "float32", "field_out": "/d/phi.npy", "tile": "8"},
    {"kind": "atoms", "grid": [16, 16, 16], "origin": [0.0, 0.0, 0.0], "spacing": 1.0, "softening": 0.0,
     "precision": "float64", "atoms": {"count": 1000, "seed": 3}, "field_out": None, "tile": [16, 16, 16],
     "verify": False, "route": "auto"},
    {"kind": "matmul", "verify": False, "a": {"file": "/d/A.npy"}, "b": {"file": "/d/B.npy"}, "out": "/d/C.npy"},
    {"kind": "matmul", "verify": True, "a": {"shape": "3000x2000"}, "b": {"shape": "2000x1000"}, "seed": "7",
     "dtype": "float32", "route": "spot"},
    {"kind": "add", "a": {"shape": [4, 4], "dtype": "float64", "seed": 7, "stream": 0},
     "b": {"file": "k/B.npy", "shape": [4, 4], "dtype": "float32"}, "out": None, "tile": [2, 4], "verify": False,
     "route": "auto"},
    {"kind": "atoms", "grid": 8, "atoms": 100},
]


@pytest.mark.parametrize("raw", EVERYDAY)
def test_everyday_bodies_take_the_quick_road_and_agree_with_the_models(raw: dict[str, Any]) -> None:
    quick = quick_form(raw)
    assert quick is not None
    assert quick == by_models(raw)


def test_a_bad_body_gets_the_models_message() -> None:
    raw = {"kind": "atoms", "grid": 16, "atoms": {"count": 10, "colour": "red"}}
    assert quick_form(raw) is None
    with pytest.raises(InvalidSpecError) as info:
        read_request(raw)
    assert info.value.field == "atoms.colour"


@pytest.mark.parametrize("form, model", [
    (RandomMatrixForm, models.RandomMatrixRequest), (StoredMatrixForm, models.StoredMatrixRequest),
    (RandomAtomsForm, models.RandomAtomsRequest), (StoredAtomsForm, models.StoredAtomsRequest),
    (MatrixJobForm, models.MatmulRequest), (AtomsJobForm, models.AtomsRequest),
])
def test_the_forms_have_the_models_fields_and_defaults(form: Any, model: Any) -> None:
    ours = {f.name: f.default for f in dataclasses.fields(form)}
    theirs = {name: info.default for name, info in model.model_fields.items() if name != "kind"}
    assert set(ours) - {"kind"} == set(theirs)
    for name, default in theirs.items():
        assert ours[name] == (dataclasses.MISSING if info_required(model, name) else default), name


def info_required(model: Any, name: str) -> bool:
    return bool(model.model_fields[name].is_required())


# Each field's good values, then its bad ones (after the "|").
VALUES: dict[str, tuple[list[Any], list[Any]]] = {
    "grid": ([16, "16", "4x5x6", [2, 3, 4], (3, 3, 3)], [0, "x", None, [1, 2], 2.5, True]),
    "atoms": ([10, 3.0, {"count": 5}, {"count": "7", "seed": 2}, {"file": "/t.csv"}, {"file": "/t.csv", "count": 3},
               {"count": 5, "seed": None}],
              [{"count": 5, "file": ""}, {"seed": 1}, {}, None, True, "5", {"count": None}, {"count": 5, "x": 1}]),
    "a": ([{"shape": "3x4"}, {"shape": [3, 4], "seed": 1, "stream": 2, "dtype": "float32"}, {"file": "/a.npy"},
           {"file": "/a.npy", "shape": [3, 4], "dtype": None}],
          [{"shape": "3x4", "file": "/a"}, {"shape": None}, {}, "3x4", None, {"file": "/a.npy", "seed": 2}]),
    "b": ([{"shape": "4x5"}, {"file": "/b.npy", "dtype": "float64"}], [{"shape": "4x5", "dtype": "int8"}, 5]),
    "seed": ([0, "7", None, 1.0], [-1, 2**64, "x"]),
    "dtype": (["float32", "float64"], [None, "int8"]),
    "precision": (["float32", "float64"], [None, "half"]),
    "origin": (["1,2,3", [0, 0, 0], (1.5, "2", 3)], ["1,2", None, ["nan", 0, 0]]),
    "spacing": ([1, "0.5"], [0, -1, None, "inf"]),
    "softening": ([0, "0.1"], [-0.1, None]),
    "tile": ([8, "8", [2, 3], [2, 3, 4], None], [0, "2x3"]),
    "out": (["/c.npy", None], ["", 3]),
    "field_out": (["/phi.npy", None], [" "]),
    "verify": ([True, False], [None, "yes", 1]),
    "route": (["auto", "lambda", "spot"], ["moon", None]),
    "colour": ([], ["red"]),
}
FIELDS_OF = {
    "atoms": ["grid", "atoms", "origin", "spacing", "softening", "precision", "field_out", "tile", "verify", "route"],
    "matrix": ["a", "b", "seed", "dtype", "out", "tile", "verify", "route"],
}


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly a kind's own fields with good values; now and then a stranger or a bad value."""
    kind = draw(st.sampled_from(["atoms", "matmul", "add", "cube", None]))
    own = FIELDS_OF["atoms" if kind == "atoms" else "matrix"]
    names = set(own[:2]) if draw(st.integers(0, 4)) else set()
    names |= set(draw(st.lists(st.sampled_from(own), max_size=6)))
    if not draw(st.integers(0, 6)):
        names.add(draw(st.sampled_from(sorted(VALUES))))
    raw: dict[str, Any] = {} if kind is None else {"kind": kind}
    for name in sorted(names):
        good, bad = VALUES[name]
        raw[name] = draw(st.sampled_from(good)) if good and draw(st.integers(0, 7)) else draw(st.sampled_from(bad))
    return raw


@settings(max_examples=400, deadline=None)
@given(bodies())
def test_the_quick_reader_never_disagrees_with_the_models(raw: dict[str, Any]) -> None:
    quick = quick_form(raw)
    if quick is not None:
        assert quick == by_models(raw)

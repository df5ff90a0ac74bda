"""The keys a REST caller's data lives at come from one module, and agree with what uses them."""

from __future__ import annotations

import re

import pytest

from tests.unit.spec_fakes import ATOMS, MATMUL, parse
from tilefan.domain.upload_keys import (
    INPUT_KEY_PATTERN,
    UPLOAD_NAME_PATTERN,
    UPLOAD_SUFFIXES,
    check_upload_name,
    field_key,
    job_output_of,
    output_key,
    produced,
    result_key,
    upload_key,
)
from tilefan.errors import InvalidSpecError
from tilefan.service.uploads import TEXT_UPLOADS

JOB = "0123456789abcdef"


def test_every_upload_suffix_but_npy_has_a_text_parser() -> None:
    assert set(UPLOAD_SUFFIXES) == {".npy", *TEXT_UPLOADS}


@pytest.mark.parametrize("name", ["A.npy", "atoms.CSV", "adk_open.pqr", "m.xyz", "m.extxyz", "a-b_c.1.npy"])
def test_a_name_the_service_takes_matches_the_documented_patterns(name: str) -> None:
    assert check_upload_name(name) == name
    assert re.fullmatch(UPLOAD_NAME_PATTERN, name)
    assert re.fullmatch(INPUT_KEY_PATTERN, upload_key(JOB, name))


@pytest.mark.parametrize(("name", "message"), [
    ("../A.npy", "plain file name"), (".hidden.npy", "plain file name"), ("A" * 126 + ".npy", "plain file name"),
    (7, "plain file name"), ("A.txt", "must end in .npy, .csv, .pqr, .xyz, .extxyz")])
def test_a_name_the_service_refuses_says_why(name: object, message: str) -> None:
    with pytest.raises(InvalidSpecError, match=re.escape(message)):
        check_upload_name(name)


def test_a_jobs_outputs_and_what_a_later_job_may_name() -> None:
    for key in (result_key(JOB), result_key(JOB, "zarr"), field_key(JOB)):
        assert re.fullmatch(INPUT_KEY_PATTERN, key)
    assert [job_output_of(k) for k in (result_key(JOB), result_key(JOB, "zarr"), field_key(JOB))] == [
        (JOB, "result", "out.npy"), (JOB, "result", "out.zarr"), (JOB, "field", "field.npy")]
    assert job_output_of(f"jobs/{JOB}/manifest.json") is None
    assert (output_key(JOB, "result"), output_key(JOB, "field")) == (result_key(JOB), field_key(JOB))


def test_produced_reads_the_output_a_spec_of_either_kind_placed() -> None:
    matrix = parse({**MATMUL, "out": result_key(JOB)})
    atoms = parse({**ATOMS, "field_out": field_key(JOB)})
    assert (produced(matrix, "result"), produced(matrix, "field")) == (result_key(JOB), None)
    assert (produced(atoms, "result"), produced(atoms, "field")) == (None, field_key(JOB))

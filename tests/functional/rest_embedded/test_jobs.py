"""POSTed jobs of every kind succeed with NumPy's answer (or the brute-force minimum) and
full progress, the report has a row per tile, and listing pages newest first without
gaps or repeats.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from chalice.test import Client

from tests.functional.rest_client import post_job, submit, wait_job
from tests.functional.rest_embedded.support import (
    RECORD_KEYS,
    assert_accepted,
    assert_finished,
    files_under,
)
from tests.helpers import argmin_index, brute_force_phi, random_pair
from tilefan.domain.randgen import random_atoms
from tilefan.domain.spec.parse import RandomAtoms
from tilefan.entrypoints.http.openapi import openapi_document

# --------------------------------------------------------------------------- jobs of each kind


def test_matmul_job_is_accepted_runs_and_gives_numpys_answer(client: Client, home: Path) -> None:
    spec = {"kind": "matmul", "a": {"shape": [150, 90]}, "b": {"shape": [90, 70]}, "seed": 5, "tile": 64,
            "verify": True}
    accepted = assert_accepted(post_job(client, spec), "matmul")
    assert accepted["progress"]["units_total"] == 150 * 70
    doc = wait_job(client, accepted["job_id"])
    assert_finished(doc)
    out_dir = home / "blobs" / "jobs" / doc["job_id"]
    assert doc["progress"]["tiles_total"] == 6
    assert doc["result"]["verification"]["method"] == "freivalds"
    assert doc["result"]["shape"] == [150, 70] and doc["result"]["dtype"] == "float64"
    assert doc["result"]["output"] == str((out_dir / "out.npy").resolve())
    got = np.load(doc["result"]["output"])
    a, b = random_pair(5, "float64", (150, 90), (90, 70))
    np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-12)
    assert doc["result"]["checksums"]["sum"] == pytest.approx(float(got.sum()), rel=1e-12)
    assert doc["result"]["checksums"]["frobenius"] == pytest.approx(float(np.linalg.norm(got)), rel=1e-12)
    # Only the committed output is in the job's directory: no partial file survives.
    assert [f for f in files_under(out_dir) if "out.npy" in f] == ["out.npy"]


def test_add_job_in_float32_gives_numpys_answer_exactly(client: Client) -> None:
    spec = {"kind": "add", "a": {"shape": [70, 50]}, "b": {"shape": [70, 50]}, "seed": 3, "dtype": "float32",
            "tile": 32, "verify": True}
    accepted = assert_accepted(post_job(client, spec), "add")
    doc = wait_job(client, accepted["job_id"])
    assert_finished(doc)
    assert doc["result"]["verification"] == {"method": "exact", "passed": True, "mismatches": 0}
    got = np.load(doc["result"]["output"])
    assert got.dtype == np.float32
    a, b = random_pair(3, "float32", (70, 50), (70, 50))
    np.testing.assert_array_equal(got, a + b)


def test_atoms_job_finds_the_brute_force_minimum_and_writes_the_field(client: Client, home: Path) -> None:
    grid = (10, 9, 8)
    spec = {"kind": "atoms", "grid": list(grid), "atoms": {"count": 40, "seed": 2}, "tile": 4, "verify": True,
            "softening": 0.1, "field": True}
    accepted = assert_accepted(post_job(client, spec), "atoms")
    assert accepted["progress"]["units_total"] == 10 * 9 * 8
    doc = wait_job(client, accepted["job_id"])
    assert_finished(doc)
    assert doc["result"]["verification"]["method"] == "sampled"
    table = random_atoms(RandomAtoms(count=40, seed=2), grid, (0.0, 0.0, 0.0), 1.0)
    ref, scale = brute_force_phi(table, grid, softening=0.1)
    expected_index = argmin_index(ref)
    assert doc["result"]["min_index"] == expected_index
    assert doc["result"]["min_point"] == [float(v) for v in expected_index]
    assert doc["result"]["min_value"] == pytest.approx(float(ref.min()), rel=1e-12)
    out_dir = home / "blobs" / "jobs" / doc["job_id"]
    assert doc["result"]["field"] == str((out_dir / "field.npy").resolve())
    field = np.load(doc["result"]["field"])
    assert field.shape == grid and field.dtype == np.float64
    assert np.all(np.abs(field - ref) <= 1e-12 * scale)
    assert [f for f in files_under(out_dir) if "field.npy" in f] == ["field.npy"]


def test_report_has_one_row_per_tile_and_a_summary(client: Client) -> None:
    spec = {"kind": "matmul", "a": {"shape": [100, 80]}, "b": {"shape": [80, 60]}, "tile": 32}
    doc = wait_job(client, submit(client, spec))
    assert doc["status"] == "SUCCEEDED", doc["error"]
    response = client.http.get(doc["links"]["report"])
    assert response.status_code == 200
    report = response.json_body
    assert report["job_id"] == doc["job_id"]
    tiles = report["tiles"]
    assert [t["tile_id"] for t in tiles] == list(range(doc["progress"]["tiles_total"])) == list(range(8))
    for t in tiles:
        assert t["status"] == "done"
        assert isinstance(t["route"], str) and t["route"]
        assert t["worker"].startswith("local-")
        assert t["duration_s"] == pytest.approx(t["finished_at"] - t["started_at"])
        assert t["duration_s"] >= 0
    summary = report["summary"]
    assert summary["status"] == "SUCCEEDED"
    assert summary["tiles_total"] == summary["tiles_done"] == 8
    assert summary["tiles_failed"] == 0
    durations = [t["duration_s"] for t in tiles]
    assert summary["tile_seconds_total"] == pytest.approx(sum(durations))
    assert summary["tile_seconds_max"] == pytest.approx(max(durations))
    assert summary["tile_seconds_mean"] == pytest.approx(sum(durations) / 8)
    assert summary["routes"] == sorted({t["route"] for t in tiles})


# --------------------------------------------------------------------------- listing


def test_jobs_are_listed_newest_first_in_pages(client: Client) -> None:
    spec = {"kind": "add", "a": {"shape": [4, 4]}, "b": {"shape": [4, 4]}}
    created = [submit(client, spec) for _ in range(3)]
    for job_id in created:
        assert wait_job(client, job_id)["status"] == "SUCCEEDED"
    first = client.http.get("/jobs?limit=2")
    assert first.status_code == 200
    page1 = first.json_body
    assert [j["job_id"] for j in page1["jobs"]] == created[::-1][:2]
    assert isinstance(page1["next_cursor"], str) and page1["next_cursor"]
    cursor = urllib.parse.quote(page1["next_cursor"], safe="")
    second = client.http.get(f"/jobs?limit=2&cursor={cursor}")
    assert second.status_code == 200
    page2 = second.json_body
    assert [j["job_id"] for j in page2["jobs"]] == created[::-1][2:]
    assert page2["next_cursor"] is None
    everything = client.http.get("/jobs").json_body
    assert [j["job_id"] for j in everything["jobs"]] == created[::-1]
    assert everything["next_cursor"] is None
    assert all(set(j) == RECORD_KEYS for j in everything["jobs"])


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=101", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=not%2Fa-cursor", "cursor"),
        # A float that is no creation time: NaN compares false with every row, so a store
        # that only checks float() answers 200 with an empty page instead of refusing it.
        ("cursor=nan%2Fabc", "cursor"),
        # Not integers by the OpenAPI document, although int() reads them.
        ("limit=", "limit"),
        ("limit=%205", "limit"),
        ("limit=5_0", "limit"),
        # The cursor before the pattern the document states: base64 of JSON.
        ("cursor=WzE3MDAwMDAwMDAuMjUsImExIl0", "cursor"),
    ],
    ids=["limit-zero", "limit-text", "limit-too-big", "cursor-text", "cursor-garbage", "cursor-nan",
         "limit-empty", "limit-spaced", "limit-underscored", "cursor-old-form"],
)
def test_bad_list_parameters_get_400_naming_the_field(client: Client, query: str, field: str) -> None:
    submit(client, {"kind": "add", "a": {"shape": [4, 4]}, "b": {"shape": [4, 4]}})
    response = client.http.get(f"/jobs?{query}")
    assert response.status_code == 400, response.json_body
    assert response.json_body["error"]["code"] == "invalid_input"
    assert response.json_body["error"]["field"] == field


def test_every_cursor_the_document_allows_names_a_page(client: Client) -> None:
    pattern = re.compile(openapi_document()["paths"]["/jobs"]["get"]["parameters"][1]["schema"]["pattern"])
    job_id = submit(client, {"kind": "add", "a": {"shape": [4, 4]}, "b": {"shape": [4, 4]}})
    wait_job(client, job_id)
    # Before every job, after every job, the first page, and a position with a long fraction.
    for cursor, expected in (("1-zz", []), ("9999999999999999-zz", [job_id]), ("", [job_id]),
                             ("9999999999." + "7" * 300 + "-A_b-c", [job_id])):
        assert pattern.fullmatch(cursor)
        page = client.http.get(f"/jobs?cursor={cursor}")
        assert page.status_code == 200, page.json_body
        assert [j["job_id"] for j in page.json_body["jobs"]] == expected

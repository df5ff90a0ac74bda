"""A REST caller names data by ID on the embedded backend: never a path. Outputs belong to
the job and are downloaded from it; uploads are issued, expire, are capped, checked and
written once; error messages say nothing of files the server can read."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chalice.test import Client

from tests.functional.rest_client import JSON, post_job, submit, wait_job
from tests.functional.rest_embedded.support import files_under
from tests.helpers import npy_bytes, random_pair
from tilefan.service.jobs import JobService

OCTETS = {"Content-Type": "application/octet-stream"}
ADD = {"kind": "add", "a": {"shape": [20, 10]}, "b": {"shape": [20, 10]}, "seed": 4, "tile": 8}


def upload(client: Client, name: str) -> dict[str, Any]:
    response = client.http.post("/uploads", headers=JSON, body=json.dumps({"filename": name}))
    assert response.status_code == 201, response.json_body
    target: dict[str, Any] = response.json_body
    return target


def put(client: Client, url: str, data: bytes) -> Any:
    return client.http.put(url, headers=OCTETS, body=data)


def download(client: Client, path: str) -> Any:
    # A binary answer needs an Accept header that takes it (curl's */* does).
    return client.http.get(path, headers={"Accept": "application/octet-stream"})


def assert_refused(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.json_body
    error: dict[str, Any] = response.json_body["error"]
    assert error["code"] == code
    if field is not None:
        assert error["field"] == field
    return error


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("key, value", [("out", "victim.bin"), ("out", "../jobs.sqlite3"),
                                        ("field_out", "deep/new/dirs/phi.npy")])
def test_a_caller_cannot_place_an_output(client: Client, tmp_path: Path, home: Path, key: str, value: str) -> None:
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    target = str(victim) if value == "victim.bin" else value if value.startswith("..") else str(tmp_path / value)
    body = {**ADD, key: target} if key == "out" else {"kind": "atoms", "grid": 4, "atoms": 3, key: target}
    assert_refused(post_job(client, body), 400, "invalid_input", key)
    assert victim.read_bytes() == b"precious"
    assert not (tmp_path / "deep").exists()
    assert client.http.get("/jobs").json_body["jobs"] == []
    # The job database is intact: the service still answers.
    assert submit(client, ADD)


def test_the_result_is_downloaded_from_the_job(client: Client) -> None:
    doc = wait_job(client, submit(client, ADD))
    assert doc["status"] == "SUCCEEDED", doc["error"]
    response = download(client, f"/jobs/{doc['job_id']}/result")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    got = np.load(io.BytesIO(response.body))
    a, b = random_pair(4, "float64", (20, 10), (20, 10))
    np.testing.assert_array_equal(got, a + b)
    # There is no field to a matmul or add job.
    assert_refused(download(client, f"/jobs/{doc['job_id']}/field"), 404, "not_found")


def test_an_atoms_field_is_asked_for_with_a_boolean_and_downloaded(client: Client) -> None:
    doc = wait_job(client, submit(client, {"kind": "atoms", "grid": 5, "atoms": 4, "softening": 0.2, "tile": 3,
                                           "field": True}))
    assert doc["status"] == "SUCCEEDED", doc["error"]
    response = download(client, f"/jobs/{doc['job_id']}/field")
    assert response.status_code == 200
    field = np.load(io.BytesIO(response.body))
    assert field.shape == (5, 5, 5)
    assert float(field.min()) == pytest.approx(doc["result"]["min_value"], rel=1e-12)
    bad = post_job(client, {"kind": "atoms", "grid": 5, "atoms": 4, "field": "yes"})
    assert_refused(bad, 400, "invalid_input", "field")


def test_no_download_for_unknown_or_unfinished_jobs(client: Client) -> None:
    assert_refused(download(client, "/jobs/0123456789abcdef/result"), 404, "job_not_found")
    # A job that fails at run time (a NaN in its input) has no result to give.
    target = upload(client, "A.npy")
    bad = np.ones((4, 4))
    bad[1, 2] = np.nan
    assert put(client, target["url"], npy_bytes(bad)).status_code == 201
    failed = wait_job(client, submit(client, {"kind": "add", "a": target["use_as"], "b": target["use_as"]}))
    assert failed["status"] == "FAILED"
    assert_refused(download(client, f"/jobs/{failed['job_id']}/result"), 404, "not_found")


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("name, content", [("passwd", b"root:x:0:0:root:/root:/bin/bash\n"),
                                           ("secret.csv", b"top secret first line\n1,2,3,4\n"),
                                           ("data.npy", None)])
def test_a_path_input_is_refused_without_reading_it(client: Client, tmp_path: Path, name: str,
                                                    content: bytes | None) -> None:
    path = tmp_path / name
    path.write_bytes(content if content is not None else npy_bytes(np.ones((3, 3))))
    missing = tmp_path / f"missing-{name}"
    answers = []
    for candidate in (path, missing):
        body = {"kind": "atoms", "grid": 4, "atoms": {"file": str(candidate)}} if name != "data.npy" else \
            {"kind": "add", "a": {"file": str(candidate)}, "b": {"shape": [3, 3]}}
        field = "atoms.file" if name != "data.npy" else "a.file"
        error = assert_refused(post_job(client, body), 400, "invalid_input", field)
        assert "root" not in error["message"] and "secret" not in error["message"]
        answers.append(error["message"].replace(str(candidate), "<path>"))
    # An existing path and a missing one get the same answer.
    assert answers[0] == answers[1]


def test_an_issued_upload_is_used_by_its_key(client: Client) -> None:
    a, b = np.arange(12.0).reshape(3, 4), np.ones((3, 4))
    keys = []
    for name, arr in (("A.npy", a), ("B.npy", b)):
        target = upload(client, name)
        assert target["max_bytes"] > 0 and target["expires_in"] > 0
        assert put(client, target["url"], npy_bytes(arr)).status_code == 201
        keys.append(target["use_as"])
    doc = wait_job(client, submit(client, {"kind": "add", "a": keys[0], "b": keys[1], "tile": 2}))
    assert doc["status"] == "SUCCEEDED", doc["error"]
    # A previous job's output, named by its job ID, is an input too.
    chained = {"kind": "add", "a": {"file": f"jobs/{doc['job_id']}/out.npy"}, "b": keys[1], "tile": 2}
    again = wait_job(client, submit(client, chained))
    assert again["status"] == "SUCCEEDED", again["error"]
    got = np.load(io.BytesIO(download(client, f"/jobs/{again['job_id']}/result").body))
    np.testing.assert_array_equal(got, a + 2 * b)


def test_only_issued_complete_uploads_and_finished_jobs_are_inputs(client: Client) -> None:
    target = upload(client, "A.npy")
    not_yet = post_job(client, {"kind": "add", "a": target["use_as"], "b": {"shape": [2, 2]}})
    refused = assert_refused(not_yet, 400, "invalid_input", "a.file")
    assert f"upload {target['upload_id']} is not complete; send its file, then POST /uploads/" in refused["message"]
    for key in ("uploads/0123456789abcdef/A.npy", "jobs/0123456789abcdef/out.npy", "worker/tilefan.whl",
                f"uploads/{target['upload_id']}/B.npy", f"uploads/{target['upload_id']}/.issued.json"):
        response = post_job(client, {"kind": "add", "a": {"file": key}, "b": {"shape": [2, 2]}})
        assert_refused(response, 400, "invalid_input", "a.file")


# --------------------------------------------------------------------------- uploads


def test_a_put_to_an_id_never_issued_writes_nothing(client: Client, home: Path) -> None:
    before = files_under(home / "blobs")
    response = put(client, "/uploads/0123456789abcdef/A.npy", npy_bytes(np.ones((2, 2))))
    assert_refused(response, 404, "not_found")
    target = upload(client, "A.npy")
    other_name = put(client, f"/uploads/{target['upload_id']}/B.npy", npy_bytes(np.ones((2, 2))))
    assert_refused(other_name, 404, "not_found")
    assert [f for f in files_under(home / "blobs") if f not in before and not f.endswith(".issued.json")] == []


def test_the_completion_step_answers_for_a_received_upload(client: Client) -> None:
    # One API on both backends: here the PUT completes the upload, and completing it
    # again answers what it holds; before the PUT there is nothing to complete.
    target = upload(client, "A.npy")
    assert_refused(client.http.post(target["complete"]), 409, "conflict")
    data = npy_bytes(np.ones((2, 2)))
    assert put(client, target["url"], data).status_code == 201
    for _ in range(2):
        done = client.http.post(target["complete"])
        assert done.status_code == 200, done.json_body
        assert done.json_body == {"upload_id": target["upload_id"], "key": target["key"], "status": "COMPLETE",
                                  "bytes": len(data), "use_as": target["use_as"]}
    assert_refused(client.http.post("/uploads/0123456789abcdef/complete"), 404, "not_found")


def test_a_complete_upload_cannot_be_replaced(client: Client, home: Path) -> None:
    target = upload(client, "A.npy")
    first = npy_bytes(np.ones((2, 2)))
    assert put(client, target["url"], first).status_code == 201
    assert_refused(put(client, target["url"], npy_bytes(np.zeros((2, 2)))), 409, "conflict")
    assert (home / "blobs" / target["key"]).read_bytes() == first


def test_an_expired_upload_id_takes_no_bytes(client: Client, service: JobService, home: Path) -> None:
    target = upload(client, "A.npy")
    real = service.clock
    service.clock = lambda: real() + target["expires_in"] + 1
    assert_refused(put(client, target["url"], npy_bytes(np.ones((2, 2)))), 410, "upload_expired")
    assert not (home / "blobs" / target["key"]).exists()


def test_an_upload_over_the_cap_is_refused(client: Client, service: JobService, home: Path) -> None:
    service.uploads = replace(service.uploads, max_bytes=1000)
    target = upload(client, "A.npy")
    assert target["max_bytes"] == 1000
    error = assert_refused(put(client, target["url"], npy_bytes(np.ones((20, 20)))), 413, "body_too_large")
    assert "1000" in error["message"]
    assert not (home / "blobs" / target["key"]).exists()


@pytest.mark.parametrize("name, data", [
    ("A.npy", b"root:x:0:0:root:/root:/bin/bash\n"),
    ("A.npy", npy_bytes(np.ones((2, 2, 2)))),
    ("A.npy", npy_bytes(np.ones((4, 4)))[:-8]),
    ("A.npy", npy_bytes(np.array([["a", "b"]]))),
    ("t.csv", b"\xff\xfe not text"),
    ("t.csv", b"1,2,3\n"),
])
def test_upload_content_is_checked_on_completion(client: Client, home: Path, name: str, data: bytes) -> None:
    target = upload(client, name)
    assert_refused(put(client, target["url"], data), 400, "invalid_input", "upload")
    assert not (home / "blobs" / target["key"]).exists()
    # Still open: the right bytes can follow.
    good = npy_bytes(np.ones((2, 2))) if name.endswith(".npy") else b"0.5,0.5,0.5,-1\n"
    assert put(client, target["url"], good).status_code == 201

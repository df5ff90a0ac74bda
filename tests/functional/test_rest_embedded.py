"""The REST API (DESIGN.md §5) over the embedded backend, through ``chalice.test.Client``.

The same blueprint that serves AWS here drives SQLite, a directory of ``.npy`` files and
a process pool in a temp dir. POSTed jobs of every kind must succeed with NumPy's answer
and full progress; listing pages newest first without gaps or repeats; DELETE cancels a
running job and leaves no output behind; bad input gets 400 naming the field and writes
nothing; uploads round-trip; and ``/openapi.json`` describes every route that is served.
"""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chalice.test import Client

import app as chalice_app
from tests.functional.rest_client import JSON, post_job, submit, wait_job
from tilefan import bootstrap
from tilefan.bootstrap import Config
from tilefan.domain.randgen import random_atoms, random_region
from tilefan.domain.spec import RandomAtoms
from tilefan.entrypoints import rest
from tilefan.service.jobs import JobService
from tilefan.service.local_runner import LocalRunner

RECORD_KEYS = {"job_id", "kind", "status", "spec", "progress", "timings", "result", "error", "links"}

MakeService = Callable[..., JobService]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[MakeService]:
    """Build the embedded service in a temp home and route the blueprint to it.

    Teardown cancels whatever is still running and joins every runner thread, so no
    job outlives its temp dir.
    """
    built: list[JobService] = []

    def make(workers: int = 2, kernel: str = "auto") -> JobService:
        service: JobService = bootstrap.build_service(Config(home=tmp_path / "home", workers=workers, kernel=kernel))
        rest.set_service_factory(lambda: service)
        built.append(service)
        return service

    yield make
    rest.set_service_factory(None)
    for service in built:
        records, _ = service.ports.jobs.list_jobs(100)
        for record in records:
            if not record.status.terminal:
                service.runner.cancel(record.job_id)
            local_runner(service).wait(record.job_id, 60)


@pytest.fixture
def service(make_service: MakeService) -> JobService:
    return make_service()


@pytest.fixture
def client(service: JobService) -> Iterator[Client]:
    with Client(chalice_app.app) as c:
        yield c


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


# --------------------------------------------------------------------------- helpers








def wait_until_running(client: Client, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = client.http.get(f"/jobs/{job_id}").json_body
        if doc["status"] == "RUNNING":
            return doc
        assert doc["status"] == "QUEUED", f"expected the job to be running, it is {doc['status']}: {doc['error']}"
        assert time.monotonic() < deadline, "job never started running"
        time.sleep(0.02)


def assert_accepted(response: Any, kind: str) -> dict[str, Any]:
    """202 with the full job record and its links (DESIGN.md §3, §5)."""
    assert response.status_code == 202, response.json_body
    doc: dict[str, Any] = response.json_body
    assert set(doc) == RECORD_KEYS
    assert doc["kind"] == kind
    assert doc["status"] in ("QUEUED", "RUNNING")
    assert doc["result"] is None and doc["error"] is None
    assert doc["links"]["self"] == f"/jobs/{doc['job_id']}"
    assert doc["links"]["report"] == f"/jobs/{doc['job_id']}/report"
    assert doc["progress"]["tiles_total"] > 1, "these jobs are about fan-out: use several tiles"
    return doc


def assert_finished(doc: dict[str, Any]) -> None:
    assert doc["status"] == "SUCCEEDED", doc["error"]
    progress = doc["progress"]
    assert progress["tiles_done"] == progress["tiles_total"] > 1
    assert progress["units_done"] == progress["units_total"] > 0
    assert progress["percent"] == 100.0
    assert progress["eta_s"] == 0.0
    assert doc["result"]["verification"]["passed"] is True
    assert doc["timings"]["wall_s"] > 0


def local_runner(service: JobService) -> LocalRunner:
    """The embedded backend's runner (its ``wait`` joins a job's thread)."""
    assert isinstance(service.runner, LocalRunner), type(service.runner)
    return service.runner


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def job_threads(job_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"job-{job_id}" and t.is_alive()]


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def brute_force_atoms(table: np.ndarray, grid: tuple[int, int, int], softening: float) -> tuple[np.ndarray, np.ndarray]:
    """φ on the default grid (origin 0, spacing 1) in float64, and Σ|e|/d as its error scale."""
    points = np.stack(np.meshgrid(*(np.arange(n) for n in grid), indexing="ij"), axis=-1).reshape(-1, 3)
    d = np.sqrt(((points[:, None, :] - table[None, :, :3]) ** 2).sum(-1) + softening**2)
    return (table[:, 3] / d).sum(1).reshape(grid), (np.abs(table[:, 3]) / d).sum(1).reshape(grid)


# --------------------------------------------------------------------------- jobs of each kind


def test_matmul_job_is_accepted_runs_and_gives_numpys_answer(client: Client, out_dir: Path) -> None:
    spec = {"kind": "matmul", "a": {"shape": [150, 90]}, "b": {"shape": [90, 70]}, "seed": 5, "tile": 64,
            "verify": True, "out": str(out_dir / "C.npy")}
    accepted = assert_accepted(post_job(client, spec), "matmul")
    assert accepted["progress"]["units_total"] == 150 * 70
    doc = wait_job(client, accepted["job_id"])
    assert_finished(doc)
    assert doc["progress"]["tiles_total"] == 6
    assert doc["result"]["verification"]["method"] == "freivalds"
    assert doc["result"]["shape"] == [150, 70] and doc["result"]["dtype"] == "float64"
    assert doc["result"]["output"] == str((out_dir / "C.npy").resolve())
    got = np.load(doc["result"]["output"])
    a = random_region(5, 0, "float64", (0, 150), (0, 90))
    b = random_region(5, 1, "float64", (0, 90), (0, 70))
    np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-12)
    assert doc["result"]["checksums"]["sum"] == pytest.approx(float(got.sum()), rel=1e-12)
    assert doc["result"]["checksums"]["frobenius"] == pytest.approx(float(np.linalg.norm(got)), rel=1e-12)
    # Only the committed output is in the output directory: no partial file survives.
    assert files_under(out_dir) == ["C.npy"]


def test_add_job_in_float32_gives_numpys_answer_exactly(client: Client) -> None:
    spec = {"kind": "add", "a": {"shape": [70, 50]}, "b": {"shape": [70, 50]}, "seed": 3, "dtype": "float32",
            "tile": 32, "verify": True}
    accepted = assert_accepted(post_job(client, spec), "add")
    doc = wait_job(client, accepted["job_id"])
    assert_finished(doc)
    assert doc["result"]["verification"] == {"method": "exact", "passed": True, "mismatches": 0}
    got = np.load(doc["result"]["output"])
    assert got.dtype == np.float32
    a = random_region(3, 0, "float32", (0, 70), (0, 50))
    b = random_region(3, 1, "float32", (0, 70), (0, 50))
    np.testing.assert_array_equal(got, a + b)


def test_atoms_job_finds_the_brute_force_minimum_and_writes_the_field(client: Client, out_dir: Path) -> None:
    grid = (10, 9, 8)
    spec = {"kind": "atoms", "grid": list(grid), "atoms": {"count": 40, "seed": 2}, "tile": 4, "verify": True,
            "softening": 0.1, "field_out": str(out_dir / "phi.npy")}
    accepted = assert_accepted(post_job(client, spec), "atoms")
    assert accepted["progress"]["units_total"] == 10 * 9 * 8
    doc = wait_job(client, accepted["job_id"])
    assert_finished(doc)
    assert doc["result"]["verification"]["method"] == "sampled"
    table = random_atoms(RandomAtoms(40, 2), grid, (0.0, 0.0, 0.0), 1.0)
    ref, scale = brute_force_atoms(table, grid, 0.1)
    flat = int(np.argmin(ref))
    expected_index = [int(v) for v in np.unravel_index(flat, grid)]
    assert doc["result"]["min_index"] == expected_index
    assert doc["result"]["min_point"] == [float(v) for v in expected_index]
    assert doc["result"]["min_value"] == pytest.approx(float(ref.min()), rel=1e-12)
    assert doc["result"]["field"] == str((out_dir / "phi.npy").resolve())
    field = np.load(doc["result"]["field"])
    assert field.shape == grid and field.dtype == np.float64
    assert np.all(np.abs(field - ref) <= 1e-12 * scale)
    assert files_under(out_dir) == ["phi.npy"]


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
    ],
    ids=["limit-zero", "limit-text", "limit-too-big", "cursor-text", "cursor-garbage", "cursor-nan"],
)
def test_bad_list_parameters_get_400_naming_the_field(client: Client, query: str, field: str) -> None:
    submit(client, {"kind": "add", "a": {"shape": [4, 4]}, "b": {"shape": [4, 4]}})
    response = client.http.get(f"/jobs?{query}")
    assert response.status_code == 400, response.json_body
    assert response.json_body["error"]["code"] == "invalid_input"
    assert response.json_body["error"]["field"] == field


# --------------------------------------------------------------------------- cancel

# 64³ points × 20,000 atoms with the NumPy kernel is ~20 s of work in 64 tiles of ~0.3 s
# on one worker: always still running when the DELETE lands, and quick to stop.
SLOW_ATOMS = {"kind": "atoms", "grid": 64, "atoms": {"count": 20_000, "seed": 1}, "tile": 16}


def test_delete_cancels_a_running_job_and_leaves_no_output(make_service: MakeService, out_dir: Path) -> None:
    service = make_service(workers=1, kernel="numpy")
    with Client(chalice_app.app) as client:
        job_id = submit(client, {**SLOW_ATOMS, "field_out": str(out_dir / "phi.npy")})
        running = wait_until_running(client, job_id)
        assert running["progress"]["tiles_total"] == 64
        # The field is being built in a hidden partial file next to the destination.
        assert files_under(out_dir) != []
        response = client.http.delete(f"/jobs/{job_id}")
        assert response.status_code == 200, response.json_body
        assert response.json_body["status"] == "CANCELLED"
        assert response.json_body["progress"]["tiles_done"] < 64
        local_runner(service).wait(job_id, 60)
        assert job_threads(job_id) == [], "the runner thread did not stop"
        doc = client.http.get(f"/jobs/{job_id}").json_body
        assert doc["status"] == "CANCELLED"
        assert doc["result"] is None
        assert doc["progress"]["tiles_done"] < doc["progress"]["tiles_total"]
        assert "finished_at" in doc["timings"]
        assert files_under(out_dir) == [], "no output and no partial file may be left"
        assert not (out_dir / "phi.npy").exists()
        again = client.http.delete(f"/jobs/{job_id}")
        assert again.status_code == 409
        assert again.json_body["error"]["code"] == "conflict"


def test_tiles_in_flight_at_cancel_are_not_counted(make_service: MakeService) -> None:
    # pool_runner.LocalRunner.cancel: "tiles already computing finish but are not counted".
    service = make_service(workers=1, kernel="numpy")
    with Client(chalice_app.app) as client:
        job_id = submit(client, SLOW_ATOMS)
        wait_until_running(client, job_id)
        response = client.http.delete(f"/jobs/{job_id}")
        assert response.status_code == 200, response.json_body
        at_cancel = response.json_body["progress"]
        local_runner(service).wait(job_id, 60)
        assert job_threads(job_id) == [], "the runner thread did not stop"
        doc = client.http.get(f"/jobs/{job_id}").json_body
        assert doc["status"] == "CANCELLED"
        assert doc["progress"]["tiles_done"] == at_cancel["tiles_done"], (
            f"a cancelled job kept counting tiles: {at_cancel['tiles_done']} at DELETE, "
            f"{doc['progress']['tiles_done']} after the runner stopped"
        )
        assert doc["progress"]["units_done"] == at_cancel["units_done"]


@pytest.mark.parametrize("moment", ["before-rename", "after-rename"])
def test_delete_racing_the_reducers_commit_never_leaves_a_cancelled_job_with_output(
    service: JobService, client: Client, out_dir: Path, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    """A DELETE that lands while the reducer publishes the output, just before or just
    after the output file is renamed into place: either the DELETE loses (409, job
    SUCCEEDED with its output) or it wins (CANCELLED, nothing on disk)."""
    blobs = service.ports.blobs
    real_commit = blobs.commit_array
    deletes: list[Any] = []
    posted = threading.Event()

    def delete(job_id: str) -> None:
        # Wait for the POST to be answered: the test client serves one request at a time.
        assert posted.wait(30)
        deletes.append(client.http.delete(f"/jobs/{job_id}"))

    def commit_with_a_delete_arriving(key: str, job_id: str) -> str:
        if moment == "before-rename":
            delete(job_id)
        where = real_commit(key, job_id)
        if moment == "after-rename":
            delete(job_id)
        return where

    monkeypatch.setattr(blobs, "commit_array", commit_with_a_delete_arriving)
    spec = {"kind": "add", "a": {"shape": [40, 40]}, "b": {"shape": [40, 40]}, "tile": 20,
            "out": str(out_dir / "C.npy")}
    job_id = submit(client, spec)
    posted.set()
    # The main thread sends no request until the runner is done, so the DELETE from
    # inside the reducer is the only request in flight.
    local_runner(service).wait(job_id, 60)
    assert job_threads(job_id) == []
    assert len(deletes) == 1
    doc = client.http.get(f"/jobs/{job_id}").json_body
    if deletes[0].status_code == 409:
        assert doc["status"] == "SUCCEEDED"
        assert files_under(out_dir) == ["C.npy"]
    else:
        assert deletes[0].status_code == 200 and deletes[0].json_body["status"] == "CANCELLED"
        assert doc["status"] == "CANCELLED"
        assert doc["result"] is None
        assert files_under(out_dir) == [], f"job is CANCELLED but its output was published: {files_under(out_dir)}"


def test_delete_of_a_finished_job_is_a_conflict(client: Client) -> None:
    doc = wait_job(client, submit(client, {"kind": "add", "a": {"shape": [8, 8]}, "b": {"shape": [8, 8]}}))
    assert doc["status"] == "SUCCEEDED"
    response = client.http.delete(f"/jobs/{doc['job_id']}")
    assert response.status_code == 409
    assert response.json_body["error"]["code"] == "conflict"
    assert "SUCCEEDED" in response.json_body["error"]["message"]
    after = client.http.get(f"/jobs/{doc['job_id']}").json_body
    assert after["status"] == "SUCCEEDED"
    assert Path(after["result"]["output"]).exists()


@pytest.mark.parametrize("method, path", [("get", "/jobs/{}"), ("delete", "/jobs/{}"), ("get", "/jobs/{}/report")])
def test_unknown_job_is_404(client: Client, method: str, path: str) -> None:
    response = getattr(client.http, method)(path.format("0123456789abcdef"))
    assert response.status_code == 404
    error = response.json_body["error"]
    assert error["code"] == "job_not_found"
    assert "0123456789abcdef" in error["message"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kind": "matmul", "a": {"shape": [3, 4]}, "b": {"shape": [5, 6]}}, "b.shape"),
        ({"kind": "add", "a": {"shape": [3, 4]}, "b": {"shape": [4, 3]}}, "b.shape"),
        ({"kind": "cube"}, "kind"),
        ({"kind": "add", "a": {"file": "uploads/none/A.npy"}, "b": {"shape": [2, 2]}}, "a.file"),
        ({"kind": "atoms", "grid": 0, "atoms": {"count": 5}}, "grid"),
        ({"kind": "matmul", "a": {"shape": [3, 4]}, "b": {"shape": [4, 5]}, "tile": 0}, "tile"),
    ],
    ids=["matmul-shapes", "add-shapes", "unknown-kind", "missing-file", "grid-zero", "tile-zero"],
)
def test_bad_bodies_get_400_naming_the_field_and_create_nothing(
    client: Client, home: Path, out_dir: Path, body: dict[str, Any], field: str
) -> None:
    target = out_dir / "C.npy"
    body = {**body, "out": str(target)} if body.get("kind") in ("matmul", "add") else body
    response = post_job(client, body)
    assert response.status_code == 400, response.json_body
    error = response.json_body["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == field
    assert error["message"]
    assert files_under(home / "blobs") == []
    assert files_under(out_dir) == []
    assert client.http.get("/jobs").json_body == {"jobs": [], "next_cursor": None}


def test_a_body_that_is_not_json_gets_400(client: Client, home: Path) -> None:
    response = client.http.post("/jobs", headers=JSON, body="{not json")
    assert response.status_code == 400
    assert response.json_body["error"]["code"] == "invalid_input"
    assert response.json_body["error"]["field"] == "body"
    assert files_under(home / "blobs") == []
    assert client.http.get("/jobs").json_body["jobs"] == []


def test_a_body_over_64_kib_gets_413(client: Client, home: Path) -> None:
    huge = json.dumps({"kind": "add", "a": {"shape": [2, 2]}, "b": {"shape": [2, 2]}, "pad": "x" * 70_000})
    assert len(huge) > 64 * 1024
    response = client.http.post("/jobs", headers=JSON, body=huge)
    assert response.status_code == 413
    assert response.json_body["error"]["code"] == "body_too_large"
    assert files_under(home / "blobs") == []
    assert client.http.get("/jobs").json_body["jobs"] == []


# --------------------------------------------------------------------------- uploads


def upload(client: Client, filename: str, data: bytes) -> str:
    response = client.http.post("/uploads", headers=JSON, body=json.dumps({"filename": filename}))
    assert response.status_code == 201, response.json_body
    target = response.json_body
    assert target["method"] == "PUT"
    assert target["key"] == f"uploads/{target['upload_id']}/{filename}"
    assert target["url"] == f"/{target['key']}"
    assert target["use_as"] == {"file": target["key"]}
    assert target["expires_in"] > 0
    put = client.http.put(target["url"], headers={"Content-Type": "application/octet-stream"}, body=data)
    assert put.status_code == 201, put.body
    assert put.json_body == {"key": target["key"], "bytes": len(data)}
    key: str = target["key"]
    return key


def test_uploaded_files_can_be_used_by_a_job(client: Client, home: Path) -> None:
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((60, 45)), rng.standard_normal((45, 50))
    key_a = upload(client, "A.npy", npy_bytes(a))
    key_b = upload(client, "B.npy", npy_bytes(b))
    assert key_a != key_b
    np.testing.assert_array_equal(np.load(home / "blobs" / key_a), a)
    spec = {"kind": "matmul", "a": {"file": key_a}, "b": {"file": key_b}, "tile": 32, "verify": True}
    doc = wait_job(client, submit(client, spec))
    assert_finished(doc)
    assert doc["spec"]["a"]["shape"] == [60, 45]
    np.testing.assert_allclose(np.load(doc["result"]["output"]), a @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "body",
    [{"filename": "../x.npy"}, {"filename": "a.txt"}, {"filename": "sub/A.npy"}, {"filename": ""}, {}],
    ids=["parent-dir", "wrong-extension", "subdirectory", "empty", "missing"],
)
def test_bad_upload_filenames_get_400(client: Client, home: Path, body: dict[str, Any]) -> None:
    response = client.http.post("/uploads", headers=JSON, body=json.dumps(body))
    assert response.status_code == 400, response.json_body
    assert response.json_body["error"]["code"] == "invalid_input"
    assert response.json_body["error"]["field"] == "filename"
    assert files_under(home) == []


# --------------------------------------------------------------------------- OpenAPI


def test_openapi_document_describes_every_served_route(client: Client) -> None:
    response = client.http.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json_body
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "tilefan"
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = {(path, method) for path, methods in chalice_app.app.routes.items() for method in methods}
    assert ("/jobs", "POST") in served and ("/openapi.json", "GET") in served
    assert documented - served == set(), "documented routes that are not served"
    assert served - documented == set(), "served routes missing from /openapi.json"
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"], f"{method.upper()} {path} documents no responses"
            for code, resp in op["responses"].items():
                if code.startswith("4"):
                    ref = resp["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error"
    assert set(schemas["Job"]["properties"]) == RECORD_KEYS

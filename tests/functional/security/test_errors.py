"""No client input produces a 500, every error has one shape, and failure paths cannot
fail in turn (embedded backend, through the Chalice routes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from tests.functional.rest_client import JSON, post_job, submit, wait_job
from tests.helpers import start_job
from tilefan.bootstrap import embedded_ports
from tilefan.domain.records import Status
from tilefan.entrypoints.cli import main as cli
from tilefan.errors import StoreError
from tilefan.pipeline.lifecycle import fail_job
from tilefan.service.jobs import JobService


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.body
    body = json.loads(response.body)
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]) <= {"code", "message", "field"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return dict(body["error"])


@pytest.mark.parametrize("body, field", [
    ({"kind": "atoms", "grid": 4, "atoms": {"file": None}}, "atoms.file"),
    ({"kind": "add", "a": {"shape": None}, "b": {"shape": [2, 2]}}, "a.shape"),
    ({"kind": None}, "kind"),
    ({"kind": "add", "a": {"shape": [2, 2]}, "b": {"shape": [2, 2]}, "dtype": None}, "dtype"),
    ({"kind": "add", "a": {"file": "uploads/" + "a" * 300}, "b": {"shape": [2, 2]}}, "a.file"),
    ({"kind": "add", "a": {"file": "uploads/0123456789abcdef/A\u0000.npy"}, "b": {"shape": [2, 2]}}, "a.file"),
])
def test_null_and_odd_fields_get_400(client: Client, body: dict[str, Any], field: str) -> None:
    assert assert_error(post_job(client, body), 400, "invalid_input")["field"] == field


@pytest.mark.parametrize("depth", [33, 30_000])
def test_deep_json_gets_400(client: Client, depth: int) -> None:
    response = client.http.post("/jobs", headers=JSON, body="[" * depth + "]" * depth)
    assert assert_error(response, 400, "invalid_input")["field"] == "body"


@pytest.mark.parametrize("name", ["a" * 300 + ".npy", "a\u0000.npy", "../x.npy", None])
def test_bad_upload_names_get_400(client: Client, name: Any) -> None:
    response = client.http.post("/uploads", headers=JSON, body=json.dumps({"filename": name}))
    assert assert_error(response, 400, "invalid_input")["field"] == "filename"


def test_405_415_and_413_have_the_error_shape(client: Client) -> None:
    response = client.http.put("/jobs", headers=JSON, body="{}")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"] and "POST" in response.headers["Allow"]
    assert_error(client.http.post("/jobs", headers={"Content-Type": "text/plain"}, body="{}"),
                 415, "unsupported_media_type")
    assert_error(client.http.post("/jobs", headers=JSON, body=" " * (64 * 1024 + 1)), 413, "body_too_large")


def test_an_escaping_exception_is_a_plain_500(client: Client, service: JobService,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("secret detail /etc/shadow")

    monkeypatch.setattr(service, "list", broken)
    error = assert_error(client.http.get("/jobs"), 500, "internal_error")
    assert "secret" not in error["message"] and "shadow" not in error["message"]


def test_delete_whose_cleanup_raises_still_cancels(client: Client, service: JobService,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ports = service.ports
    job_id, _ = start_job(ports, {"kind": "add", "a": {"shape": [20, 20]}, "b": {"shape": [20, 20]}, "tile": 10})

    def broken(*_: Any) -> None:
        raise StoreError("disk went away")

    monkeypatch.setattr(ports.blobs, "discard_array", broken)
    response = client.http.delete(f"/jobs/{job_id}")
    assert response.status_code == 200, response.body
    assert response.json_body["status"] == "CANCELLED"


def test_a_job_whose_cleanup_raises_still_fails_with_its_cause(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    ports = embedded_ports(tmp_path / "home")
    job_id, _ = start_job(ports, {"kind": "add", "a": {"shape": [20, 20]}, "b": {"shape": [20, 20]}, "tile": 10})

    def broken(*_: Any) -> None:
        raise StoreError("disk went away")

    monkeypatch.setattr(ports.blobs, "discard_array", broken)
    assert fail_job(ports, job_id, {"code": "tile_failed", "message": "tile 0: kernel crashed"})
    record = ports.jobs.get_job(job_id)
    assert record.status is Status.FAILED
    assert record.error == {"code": "tile_failed", "message": "tile 0: kernel crashed"}


@pytest.mark.parametrize("name", ["a" * 300 + ".npy", "a\u0000b.npy"])
def test_an_unwritable_output_name_is_refused_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str], name: str) -> None:
    monkeypatch.setenv("TILEFAN_HOME", str(tmp_path / "home"))
    code = cli.main(["run", "add", "--shape-a", "4x4", "--shape-b", "4x4", "--out", str(tmp_path / name)])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: --out: ")
    ports = embedded_ports(tmp_path / "home")
    assert ports.jobs.list_jobs(10)[0] == []  # no job left QUEUED


def test_the_field_of_a_job_in_progress_is_404(client: Client) -> None:
    doc = wait_job(client, submit(client, {"kind": "atoms", "grid": 4, "atoms": 3, "softening": 0.5, "tile": 2}))
    assert_error(client.http.get(f"/jobs/{doc['job_id']}/field", headers={"Accept": "*/*"}), 404, "not_found")

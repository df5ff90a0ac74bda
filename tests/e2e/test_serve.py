"""The real ``tilefan serve`` as a subprocess, driven over HTTP with urllib.

One server per module, on a free port, with its own ``TILEFAN_HOME`` and two workers.
Jobs POSTed to it must run to SUCCEEDED with NumPy's answer; bad input and unknown jobs
get the JSON error shape ({"error": {code, message, field}}); ``/openapi.json`` is served.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.served import serve
from tests.helpers import argmin_index, brute_force_phi, random_pair, wait_until
from tilefan.domain.randgen import random_atoms
from tilefan.domain.spec.parse import RandomAtoms


@dataclass(frozen=True)
class Server:
    base: str
    root: Path
    log: Path

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, JSON body) of one request; HTTP errors are answers, not exceptions."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                assert exc.headers.get_content_type() == "application/json", exc.headers
                return exc.code, json.loads(exc.read())

    def wait_job(self, job_id: str, timeout: float = 15.0) -> dict[str, Any]:
        """Poll the job until it leaves QUEUED and RUNNING."""

        def ended() -> dict[str, Any] | None:
            status, doc = self.request("GET", f"/jobs/{job_id}")
            assert status == 200, doc
            return None if doc["status"] in ("QUEUED", "RUNNING") else dict(doc)

        return wait_until(ended, f"job {job_id} to end (server log: {self.log})", timeout, interval=0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("serve")
    with serve(root, workers=2) as served:
        yield Server(f"http://127.0.0.1:{served.port}", root, served.log)


def test_matmul_over_http_gives_numpys_answer(server: Server) -> None:
    spec = {"kind": "matmul", "a": {"shape": [120, 80]}, "b": {"shape": [80, 90]}, "seed": 11, "tile": 50,
            "verify": True}
    status, accepted = server.request("POST", "/jobs", spec)
    assert status == 202, accepted
    assert accepted["status"] in ("QUEUED", "RUNNING")
    assert accepted["links"]["self"] == f"/jobs/{accepted['job_id']}"
    doc = server.wait_job(accepted["job_id"])
    assert doc["status"] == "SUCCEEDED", doc["error"]
    assert doc["progress"]["tiles_done"] == doc["progress"]["tiles_total"] == 6
    assert doc["progress"]["percent"] == 100.0
    assert doc["result"]["verification"]["passed"] is True
    a, b = random_pair(11, "float64", (120, 80), (80, 90))
    np.testing.assert_allclose(np.load(doc["result"]["output"]), a @ b, rtol=1e-12, atol=1e-12)


def test_atoms_over_http_finds_the_brute_force_minimum(server: Server) -> None:
    grid = (8, 7, 6)
    spec = {"kind": "atoms", "grid": list(grid), "atoms": {"count": 30, "seed": 4}, "softening": 0.2, "tile": 4,
            "verify": True, "field": True}
    status, accepted = server.request("POST", "/jobs", spec)
    assert status == 202, accepted
    doc = server.wait_job(accepted["job_id"])
    assert doc["status"] == "SUCCEEDED", doc["error"]
    assert doc["progress"]["tiles_done"] == doc["progress"]["tiles_total"] == 8
    table = random_atoms(RandomAtoms(count=30, seed=4), grid, (0.0, 0.0, 0.0), 1.0)
    ref, _ = brute_force_phi(table, grid, softening=0.2)
    assert doc["result"]["min_index"] == argmin_index(ref)
    assert doc["result"]["min_value"] == pytest.approx(float(ref.min()), rel=1e-12)
    # The field is downloaded from the job (a REST caller never names a path).
    req = urllib.request.Request(f"{server.base}/jobs/{doc['job_id']}/field",
                                 headers={"Accept": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        field = np.load(io.BytesIO(resp.read()))
    np.testing.assert_allclose(field, ref, rtol=1e-10, atol=1e-12)


def test_bad_request_gets_a_400_json_error_naming_the_field(server: Server) -> None:
    status, body = server.request("POST", "/jobs", {"kind": "matmul", "a": {"shape": [3, 4]}, "b": {"shape": [5, 6]}})
    assert status == 400
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == "invalid_input"
    assert body["error"]["field"] == "b.shape"
    assert body["error"]["message"]


def test_openapi_document_is_served(server: Server) -> None:
    status, doc = server.request("GET", "/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.")
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/report", "/uploads"} <= set(doc["paths"])
    assert set(doc["paths"]["/jobs"]) == {"get", "post"}


def test_unknown_job_is_404(server: Server) -> None:
    status, body = server.request("GET", "/jobs/0123456789abcdef")
    assert status == 404
    assert body["error"]["code"] == "job_not_found"
    assert "0123456789abcdef" in body["error"]["message"]

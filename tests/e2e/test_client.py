"""``tilefan.Client`` and the CLI's ``--endpoint`` against a real ``tilefan serve`` process.

Not covered here: SigV4 signing against API Gateway (no AWS in tests), and result
download when the server has no ``GET /jobs/{id}/result`` route: only the refusal is.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.serve_process import serving
from tests.helpers import random_pair
from tilefan.entrypoints.report import progress
from tilefan.entrypoints.sdk.client import Client
from tilefan.errors import JobNotFoundError, ReportedError


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("client")) as url:
        yield url


def test_submit_wait_with_progress_list_report(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(base, token="not-checked-by-this-server")
    stream = io.StringIO()
    real = progress.JobProgress
    monkeypatch.setattr(progress, "JobProgress", lambda kind, **kw: real(kind, file=stream, disable=False))
    doc = client.submit({"kind": "matmul", "a": {"shape": [120, 80]}, "b": {"shape": [80, 90]}, "seed": 3,
                         "tile": 40, "verify": True})
    final = client.wait(doc["job_id"], poll_s=0.05, timeout=30)
    assert final["status"] == "SUCCEEDED" and final["result"]["verification"]["passed"]
    assert "9/9 tiles" in stream.getvalue() and "100%" in stream.getvalue()
    a, b = random_pair(3, "float64", (120, 80), (80, 90))
    np.testing.assert_allclose(np.load(final["result"]["output"]), a @ b, rtol=1e-12)
    assert doc["job_id"] in [j["job_id"] for j in client.list(limit=5)["jobs"]]
    report = client.report(doc["job_id"])
    assert len(report["tiles"]) == 9 and all(t["duration_s"] is not None for t in report["tiles"])
    with pytest.raises(ReportedError) as conflict:
        client.cancel(doc["job_id"])
    assert conflict.value.code == "conflict"


def test_upload_then_refusals_name_what_went_wrong(base: str, tmp_path: Path) -> None:
    client = Client(base)
    np.save(tmp_path / "A.npy", np.arange(12.0).reshape(3, 4))
    use_as = client.upload(tmp_path / "A.npy")
    final = client.wait(client.submit({"kind": "add", "a": use_as, "b": use_as})["job_id"], progress=False,
                        poll_s=0.05, timeout=30)
    assert final["status"] == "SUCCEEDED", final["error"]
    np.testing.assert_array_equal(np.load(final["result"]["output"]), 2 * np.arange(12.0).reshape(3, 4))
    with pytest.raises(JobNotFoundError):
        client.get("0123456789abcdef")
    with pytest.raises(ReportedError) as bad:
        client.submit({"kind": "add", "a": {"shape": [2, 2]}, "b": {"shape": [3, 3]}})
    assert bad.value.code == "invalid_input" and bad.value.field == "b.shape"
    # The output comes back through GET /jobs/{id}/result, byte for byte.
    got = client.result(final["job_id"], tmp_path / "S.npy")
    np.testing.assert_array_equal(np.load(got), 2 * np.arange(12.0).reshape(3, 4))
    with pytest.raises(JobNotFoundError):
        client.result("0123456789abcdef", tmp_path / "none.npy")
    assert not (tmp_path / "none.npy").exists()


def test_cli_with_endpoint_runs_lists_and_reports(base: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILEFAN_")}
    env.update({"TILEFAN_ENDPOINT": base, "TILEFAN_HOME": str(tmp_path / "unused")})
    cli = [sys.executable, "-m", "tilefan.entrypoints.cli.main"]
    run = subprocess.run([*cli, "run", "atoms", "--grid", "12", "--atoms", "20", "--tile", "6", "--json"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    job_id = json.loads(run.stdout)["job_id"]
    listed = subprocess.run([*cli, "jobs"], env=env, capture_output=True, text=True, timeout=30)
    assert job_id in listed.stdout
    rep = subprocess.run([*cli, "report", job_id, "--out", str(tmp_path / "rep")], env=env, capture_output=True,
                         text=True, timeout=60)
    assert rep.returncode == 0, rep.stderr
    assert "8 done of 8" in (tmp_path / "rep" / "performance.txt").read_text()
    bad = subprocess.run([*cli, "run", "add", "--shape-a", "2x2", "--shape-b", "3x3"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --shape-b:"), bad.stderr
    assert not (tmp_path / "unused").exists()  # nothing ran here

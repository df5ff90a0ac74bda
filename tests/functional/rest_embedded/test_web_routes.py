"""The web page's routes on the Chalice app that AWS deploys (app.py), over the embedded backend."""

from __future__ import annotations

import csv
import sys

import pytest
from chalice.test import Client

from tests.functional.rest_client import submit, wait_job


def test_pages_and_assets_are_served_by_the_app(client: Client) -> None:
    for path, kind in (("/", "text/html"), ("/ui/jobs", "text/html"), ("/ui/jobs/0123456789abcdef", "text/html"),
                       ("/static/app.js", "text/javascript"), ("/static/jobs.js", "text/javascript"),
                       ("/static/style.css", "text/css"),
                       ("/docs", "text/html"), ("/docs/assets/swagger-ui-bundle.js", "text/javascript")):
        response = client.http.get(path)
        assert response.status_code == 200, path
        assert response.headers["Content-Type"].startswith(kind), path
    assert b"Grid size" in client.http.get("/").body
    assert b'url: "/openapi.json"' in client.http.get("/docs").body
    for path in ("/static/index.html", "/static/..%2Fweb.py", "/docs/assets/index.j2"):
        assert client.http.get(path).status_code == 404, path


def test_every_page_has_the_one_head_and_navigation_bar_and_its_own_title(client: Client) -> None:
    for path, title in (("/", "new job"), ("/ui/jobs", "jobs"), ("/ui/jobs/0123456789abcdef", "job")):
        page = client.http.get(path).body.decode()
        assert page.startswith("<!doctype html>") and f"<title>tilefan: {title}</title>" in page, path
        assert page.count('<link rel="stylesheet" href="/static/style.css">') == 1, path
        assert page.count('<a href="/ui/jobs">jobs</a>') == 1 and page.rstrip().endswith("</body></html>"), path


def test_report_files_and_the_slice_come_through_the_api(client: Client) -> None:
    job_id = submit(client, {"kind": "atoms", "grid": [12, 10, 8], "atoms": {"count": 20, "seed": 4}, "tile": 6})
    doc = wait_job(client, job_id)
    assert doc["status"] == "SUCCEEDED"
    rows = list(csv.DictReader(client.http.get(f"/jobs/{job_id}/report/logs.csv").body.decode().splitlines()))
    assert len(rows) == doc["progress"]["tiles_total"] == 8
    assert "speedup" in client.http.get(f"/jobs/{job_id}/report/performance.txt").body.decode()
    png = client.http.get(f"/jobs/{job_id}/report/runtime.png", headers={"Accept": "image/png"})
    assert png.headers["Content-Type"] == "image/png" and png.body[:4] == b"\x89PNG"
    assert client.http.get(f"/jobs/{job_id}/report/other.txt").status_code == 404
    piece = client.http.get(f"/jobs/{job_id}/slice").json_body
    i, j, k = doc["result"]["min_index"]
    assert piece["k"] == k and len(piece["values"]) == 12 and len(piece["values"][0]) == 10
    assert piece["values"][i][j] == min(min(row) for row in piece["values"])
    assert abs(piece["values"][i][j] - doc["result"]["min_value"]) < 1e-9


def test_slice_of_a_matrix_job_or_an_unknown_job_is_refused(client: Client) -> None:
    job_id = submit(client, {"kind": "add", "a": {"shape": [4, 4]}, "b": {"shape": [4, 4]}})
    wait_job(client, job_id)
    refused = client.http.get(f"/jobs/{job_id}/slice")
    # 409, as the OpenAPI document declares: the request is valid, the job is of another kind.
    assert refused.status_code == 409 and refused.json_body["error"]["code"] == "conflict"
    assert "slices are for atoms jobs" in refused.json_body["error"]["message"]
    assert client.http.get("/jobs/0123456789abcdef/slice").status_code == 404
    assert client.http.get("/jobs/0123456789abcdef/report/logs.csv").status_code == 404


def test_without_the_extras_the_api_says_which_to_install(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = submit(client, {"kind": "add", "a": {"shape": [4, 4]}, "b": {"shape": [4, 4]}})
    wait_job(client, job_id)
    for module in ("matplotlib", "swagger_ui_bundle"):
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, "tilefan.entrypoints.report.gantt", raising=False)
    for path, extra in ((f"/jobs/{job_id}/report/runtime.png", "report"), ("/docs", "serve")):
        response = client.http.get(path, headers={"Accept": "image/png"})
        assert response.status_code == 501
        assert response.json_body["error"]["message"].endswith(f"pip install 'tilefan[{extra}]'")
    assert client.http.get("/docs/assets/swagger-ui.css").status_code == 404

"""The web page in a real headless browser: Debian's chromium driven by Playwright.

The form submits an atoms job with its grid size and atom count; the job page shows the
progress bar and the Gantt chart while tiles run (one bar per attempt at a tile), then the
minimum (compared with the API's answer) and the heat map; failed and lost attempts,
injected into a real report on its way to the page, are drawn apart and in the legend;
a matmul run from uploaded files shows its checksums; an atoms job that kept its field
links the field's download; the job list shows when each job was submitted and cancels a
running one; the job list and Swagger UI load with no request leaving the server. Screenshots go to
``TILEFAN_SCREENSHOTS`` when that is set (the README's images come from here).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright import sync_api as playwright_api

from tests.e2e.serve_process import serving
from tests.helpers import wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ["TILEFAN_SCREENSHOTS"]) if os.environ.get("TILEFAN_SCREENSHOTS") else None



@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("web")) as url:
        yield url


@pytest.fixture(scope="module")
def page(base: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    assert Path(CHROMIUM).exists(), "make test installs chromium first (make system-deps)"
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1100, "height": 900})
        pg = context.new_page()
        outside: list[str] = []
        pg.on("request", lambda r: None if r.url.startswith(base) else outside.append(r.url))
        pg.outside = outside
        try:
            yield pg
        finally:
            context.close()


# How many pixels of the Gantt chart are painted in the bars' blue.
GANTT_PAINT = ("() => { const c = document.getElementById('gantt');"
               " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
               " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i+2] > 150 && d[i] < 100) n++;"
               " return n; }")


# What the page says it drew (data attributes the chart sets on its canvas).
DRAWN = "c => ({bars: +c.dataset.bars, tiles: +c.dataset.tiles, failed: +c.dataset.failed})"
# How many pixels of the Gantt chart are painted in the failed attempts' red (#c44e52).
RED_PAINT = ("() => { const c = document.getElementById('gantt');"
             " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
             " let n = 0; for (let i = 0; i < d.length; i += 4)"
             " if (Math.abs(d[i] - 196) < 12 && Math.abs(d[i+1] - 78) < 12 && Math.abs(d[i+2] - 82) < 12) n++;"
             " return n; }")

# A link's bytes as the page fetches them, handed over as one base64 string: a JavaScript
# array of numbers (one per byte) takes about a minute to cross for a map of a few MB.
FETCHED_BASE64 = ("a => fetch(a.href).then(r => r.ok ? r.blob() : Promise.reject(r.status)).then(b => new Promise("
                  "(done, fail) => { const f = new FileReader(); f.onload = () => done(f.result.split(',')[1]);"
                  " f.onerror = () => fail(f.error); f.readAsDataURL(b); }))")


def shot(pg: Any, name: str) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SHOTS / name), full_page=True)


def api(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=10) as resp:
        return json.loads(resp.read())


def test_atoms_from_the_form_live_page_and_result(base: str, page: Any) -> None:
    page.goto(base + "/")
    labels = page.locator("fieldset[data-kinds=atoms] label").all_inner_texts()
    assert labels[0].startswith("Grid size") and labels[1].startswith("Atom count")
    page.fill("input[name=grid]", "80")
    page.fill("input[name=count]", "2000")
    page.fill("input[name=tile]", "16")
    page.check("input[name=field]")
    shot(page, "web-form.png")
    page.click("#submit")
    page.wait_for_url("**/ui/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]
    # While it runs: a partly filled bar, tile counts and bars in the Gantt chart.
    page.wait_for_function("() => { const t = document.getElementById('counts').textContent;"
                           " const m = t.match(/^(\\d+)\\/(\\d+) tiles/); return m && +m[1] >= 8 && +m[1] < +m[2]; }",
                           timeout=30_000)
    assert "ETA" in page.inner_text("#counts")
    page.wait_for_function(f"() => ({GANTT_PAINT})() > 50", timeout=30_000)  # bars while it runs
    shot(page, "web-running.png")
    page.wait_for_selector("#heatmap-box:not([hidden])", timeout=60_000)
    result = api(base, f"/jobs/{job_id}")["result"]
    facts = page.inner_text("#facts")
    assert f"({', '.join(str(i) for i in result['min_index'])})" in facts
    assert f"{result['min_value']:.10g}"[:8] in facts
    assert page.eval_on_selector("#heatmap", "c => c.width") > 100
    # The Gantt chart has a row per worker and coloured bars: one per attempt at a tile.
    assert page.evaluate(GANTT_PAINT) > 500
    drawn = page.eval_on_selector("#gantt", DRAWN)
    report = api(base, f"/jobs/{job_id}/report")
    started = [a for a in report["attempts"] if a["started_at"] is not None]
    assert drawn["bars"] == len(started) >= drawn["tiles"] == report["summary"]["tiles_total"] > 1
    assert drawn["failed"] == sum(a["status"] in ("failed", "lost") for a in started)
    shot(page, "web-result.png")
    # The field it kept: linked on the result, and the link (fetched with no Accept header,
    # as a plain download is) gives the field whose minimum the page shows.
    href = page.get_attribute("#download-field", "href")
    assert href == f"/jobs/{job_id}/field"
    with urllib.request.urlopen(base + href, timeout=30) as resp:
        phi = np.load(io.BytesIO(resp.read()))
    assert phi.shape == (80, 80, 80) and float(phi.min()) == result["min_value"]


def post(base: str, path: str, body: Any) -> Any:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def test_failed_and_lost_attempts_are_drawn_apart_with_a_legend(base: str, page: Any) -> None:
    job_id = post(base, "/jobs", {"kind": "add", "a": {"shape": "64x64"}, "b": {"shape": "64x64"},
                                  "tile": 32})["job_id"]
    wait_until(lambda: api(base, f"/jobs/{job_id}")["status"] == "SUCCEEDED", f"job {job_id} to succeed", 30.0)
    report = api(base, f"/jobs/{job_id}/report")
    first = min(report["attempts"], key=lambda a: a["started_at"])
    t = first["started_at"]
    # Before the tile's counted attempt: one that failed on the same worker, and one whose
    # worker died (no end: its bar ends where the next attempt began).
    extra = [{**first, "attempt": 0, "status": "failed", "started_at": t - 0.6, "finished_at": t - 0.3,
              "error": "boom"},
             {**first, "attempt": 0, "status": "lost", "worker": "local-dead", "started_at": t - 0.3,
              "finished_at": None, "duration_s": None, "error": "its worker died"}]
    page.route(f"**/jobs/{job_id}/report", lambda route: route.fulfill(
        response=route.fetch(), json={**report, "attempts": extra + report["attempts"]}))
    try:
        page.goto(f"{base}/ui/jobs/{job_id}")
        page.wait_for_function("() => document.getElementById('gantt').dataset.failed === '2'", timeout=30_000)
    finally:
        page.unroute(f"**/jobs/{job_id}/report")
    drawn = page.eval_on_selector("#gantt", DRAWN)
    assert drawn == {"bars": len(report["attempts"]) + 2, "tiles": 4, "failed": 2}
    assert page.evaluate(RED_PAINT) > 100  # the failed bar's fill, the lost one's outline and hatch
    legend = page.locator("#gantt-legend .key").evaluate_all("keys => keys.map(k => k.dataset.label)")
    assert legend == ["lambda", "failed", "lost (worker died)"], legend


def test_the_charts_bars_map_attempts_as_runtime_png_does(base: str, page: Any) -> None:
    page.goto(base + "/ui/jobs")
    bars = page.evaluate("""() => tilefan.ganttBars({attempts: [
        {tile_id: 0, attempt: 1, status: "lost", started_at: 1, finished_at: null, worker: "w1", route: "lambda"},
        {tile_id: 0, attempt: 2, status: "done", started_at: 4, finished_at: 6, worker: "w2", route: "lambda"},
        {tile_id: 1, attempt: 1, status: "failed", started_at: 2, finished_at: 3, worker: "w1", route: "lambda"},
        {tile_id: 1, attempt: 2, status: "running", started_at: 5, finished_at: null, worker: "w1", route: "lambda"},
        {tile_id: 2, attempt: 1, status: "lost", started_at: 2, finished_at: null, worker: "w3", route: "lambda"},
        {tile_id: 3, attempt: 1, status: "running", started_at: null, finished_at: null, worker: null, route: null},
      ]}).map(b => [b.tile_id, b.status, b.started_at, b.end])""")
    # A lost attempt ends where its tile's next began (one with no next is not drawn), a
    # running one at the latest moment the report knows, one not yet started not at all.
    assert bars == [[0, "lost", 1, 4], [0, "done", 4, 6], [1, "failed", 2, 3], [1, "running", 5, 6]]


def test_matmul_from_uploaded_files_shows_checksums(base: str, page: Any, tmp_path: Path) -> None:
    a, b = np.arange(12.0).reshape(3, 4), np.ones((4, 2))
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    page.goto(base + "/")
    page.check("input[value=matmul]")
    page.set_input_files("input[name=a_file]", str(tmp_path / "A.npy"))
    page.set_input_files("input[name=b_file]", str(tmp_path / "B.npy"))
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    facts = page.inner_text("#facts")
    assert "3×2 float64" in facts and f"{(a @ b).sum():.10g}" in facts
    assert page.get_attribute("#download", "href").endswith("/result")


def test_a_pqr_upload_around_the_molecule_offers_its_map(base: str, page: Any, tmp_path: Path) -> None:
    from tests.molecule_maps import adk_path, assert_adk_map

    page.goto(base + "/")
    page.set_input_files("input[name=atoms_file]", str(adk_path()))
    page.check("input[name=around]")
    page.fill("input[name=margin]", "8")
    page.fill("input[name=spacing]", "1")
    page.uncheck("input[name=verify]")
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=300_000)
    job_id = page.url.rsplit("/", 1)[1]
    doc = api(base, f"/jobs/{job_id}")
    assert doc["status"] == "SUCCEEDED" and doc["spec"]["atoms"]["count"] == 3341
    assert "e/Å" in page.inner_text("#facts")
    shot(page, "web-molecule.png")
    for fmt in ("mrc", "dx"):
        link = f"#download-{fmt}"
        assert page.get_attribute(link, "href") == f"/jobs/{job_id}/field?format={fmt}"
        assert page.get_attribute(link, "download") == f"{job_id}-phi.{fmt}"
        # The link's bytes, fetched by the page itself (the browser's own request and headers).
        data = page.eval_on_selector(link, FETCHED_BASE64)
        (tmp_path / f"adk.{fmt}").write_bytes(base64.b64decode(data))
        assert_adk_map(tmp_path / f"adk.{fmt}", doc["result"])


def test_bad_input_is_shown_on_the_form(base: str, page: Any) -> None:
    page.goto(base + "/")
    page.check("input[value=add]")
    page.fill("input[name=shape_b]", "3x3")
    page.click("#submit")
    page.wait_for_function("() => document.getElementById('error').textContent.length > 0")
    assert "shapes must match" in page.inner_text("#error")


def test_job_list_and_swagger_ui_load_from_the_server(base: str, page: Any) -> None:
    page.goto(base + "/ui/jobs")
    page.wait_for_selector("#jobs tr")
    assert page.locator("#jobs tr").count() >= 2
    page.goto(base + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    assert "/jobs" in page.inner_text("#swagger-ui")
    assert page.outside == []  # no CDN, nothing fetched from elsewhere


def test_job_list_shows_when_each_job_was_submitted_and_cancels_a_running_one(base: str, page: Any) -> None:
    # Big enough to be still running when the button is pressed (minutes of work).
    job_id = post(base, "/jobs", {"kind": "atoms", "grid": 160, "atoms": {"count": 20000, "seed": 1},
                                  "tile": 16})["job_id"]
    done = post(base, "/jobs", {"kind": "add", "a": {"shape": "8x8"}, "b": {"shape": "8x8"}})["job_id"]
    wait_until(lambda: api(base, f"/jobs/{done}")["status"] == "SUCCEEDED", f"job {done} to succeed", 30.0)
    page.goto(base + "/ui/jobs")
    row = page.locator(f"#jobs tr[data-job='{job_id}']")
    row.wait_for()
    headers = page.locator("thead th").all_inner_texts()
    assert "submitted" in headers
    submitted_at = api(base, f"/jobs/{job_id}")["timings"]["submitted_at"]
    shown = row.locator("time").get_attribute("datetime")
    shown_s = datetime.fromisoformat(shown.replace("Z", "+00:00")).timestamp()
    assert abs(shown_s - submitted_at) < 1.0 and row.locator("time").inner_text().strip()
    # Only a job still queued or running has a cancel button.
    assert page.locator(f"#jobs tr[data-job='{done}'] button.cancel").count() == 0
    assert row.get_attribute("data-status") in ("QUEUED", "RUNNING")
    shot(page, "web-jobs.png")
    row.locator("button.cancel").click()
    page.wait_for_selector(f"#jobs tr[data-job='{job_id}'][data-status=CANCELLED]", timeout=10_000)
    assert row.locator("button.cancel").count() == 0
    assert api(base, f"/jobs/{job_id}")["status"] == "CANCELLED"

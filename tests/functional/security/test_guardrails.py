"""Guardrails: a job over the tile or cost limit is refused before anything is written,
with a message naming the limit and the setting that raises it: a 400 over REST, exit 2
from the CLI; the setting raises it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from chalice.test import Client

from tests.functional.rest_client import post_job
from tilefan.bootstrap import embedded_ports, load_config
from tilefan.entrypoints.cli import main as cli
from tilefan.errors import InvalidSpecError
from tilefan.pipeline.submit import submit_job
from tilefan.service.jobs import JobService

MANY_TILES = {"kind": "add", "a": {"shape": [512, 512]}, "b": {"shape": [512, 512]}, "tile": 1}  # 262,144 tiles
DEAR = {"kind": "atoms", "grid": 1000, "atoms": {"count": 10_000_000}}  # 1e16 pair terms


@pytest.mark.parametrize("body, field, setting", [(MANY_TILES, "tile", "TILEFAN_MAX_TILES"),
                                                  (DEAR, "cost", "TILEFAN_MAX_COST_USD")])
def test_rest_refuses_a_job_over_a_limit(client: Client, body: dict[str, object], field: str,
                                         setting: str) -> None:
    response = post_job(client, body)
    assert response.status_code == 400, response.json_body
    error = response.json_body["error"]
    assert error["field"] == field and setting in error["message"] and "over the limit" in error["message"]
    assert client.http.get("/jobs").json_body["jobs"] == []


@pytest.mark.parametrize("argv, flag, setting", [
    (["run", "add", "--shape-a", "512x512", "--shape-b", "512x512", "--tile", "1"], "--tile", "TILEFAN_MAX_TILES"),
    (["run", "atoms", "--grid", "1000", "--atoms", "10000000"], "cost", "TILEFAN_MAX_COST_USD"),
])
def test_the_cli_exits_2_with_the_same_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str], argv: list[str], flag: str,
                                               setting: str) -> None:
    monkeypatch.setenv("TILEFAN_HOME", str(tmp_path / "home"))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag}: ") and setting in err


def test_the_settings_raise_the_limits(tmp_path: Path) -> None:
    limits = load_config({"TILEFAN_MAX_TILES": "300000", "TILEFAN_MAX_COST_USD": "1000000"}).limits
    assert (limits.max_tiles, limits.max_cost_usd) == (300_000, 1_000_000.0)
    ports = embedded_ports(tmp_path / "home")
    with pytest.raises(InvalidSpecError):
        submit_job(ports, MANY_TILES)
    record = submit_job(ports, MANY_TILES, limits=limits)
    assert record.tiles_total == 262_144


def test_the_body_cap_is_a_setting(client: Client, service: JobService) -> None:
    service.http_limits = replace(service.http_limits, max_body_bytes=100)
    response = client.http.post("/jobs", headers={"Content-Type": "application/json"}, body=" " * 101 + "{}")
    assert response.status_code == 413
    assert "TILEFAN_MAX_BODY_BYTES" in response.json_body["error"]["message"]

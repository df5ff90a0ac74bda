"""The report of a job run on the AWS stack (moto) shows the cost model's prediction for its
plan next to the Lambda GB-seconds its tiles measured."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.functional.rest_client import post_job, wait_job


def test_the_report_puts_predicted_gb_s_next_to_measured(stack: Any, client: Any) -> None:
    spec = {"kind": "add", "a": {"shape": [40, 40]}, "b": {"shape": [40, 40]}, "tile": 20}
    doc = wait_job(client, post_job(client, spec).json_body["job_id"])
    assert doc["status"] == "SUCCEEDED", doc["error"]
    report = client.http.get(f"/jobs/{doc['job_id']}/report").json_body
    model = report["summary"]["aws_prediction"]
    assert (model["tiles"], model["lambda_tiles"], model["map_mode"], model["concurrency"]) == (4, 4, "inline", 4)
    assert model["tile_gb_s"] > 0 and model["lambda_gb_s"] > model["tile_gb_s"]
    assert model["total_usd"] > model["lambda_usd"] > 0
    text = client.http.get(f"/jobs/{doc['job_id']}/report/performance.txt").body.decode()
    [line] = [row for row in text.splitlines() if row.startswith("aws model")]
    predicted = float(re.search(r"([\d.e+]+) tile GB-s predicted", line).group(1))  # type: ignore[union-attr]
    assert predicted == pytest.approx(model["tile_gb_s"], rel=1e-3)
    measured = sum(t["duration_s"] for t in report["tiles"]) * 10_240 / 1024
    shown = float(re.search(r"measured ([\d.e+-]+) GB-s", line).group(1))  # type: ignore[union-attr]
    assert shown == pytest.approx(measured, rel=1e-2)
    assert "tile-s in Lambda at 10240 MB" in line

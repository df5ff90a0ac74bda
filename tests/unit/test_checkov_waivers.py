"""The checkov findings this stack accepts are written where they apply: each waiver in the
merge template names one check and says why (``make checkov`` runs checkov on the packaged
template, where these waivers travel with their resources)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = json.loads((ROOT / "stepfunctions" / "merge-template.json").read_text())
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def waivers() -> dict[str, list[dict[str, str]]]:
    return {name: r["Metadata"]["checkov"]["skip"] for name, r in RESOURCES.items()
            if "checkov" in r.get("Metadata", {})}


def test_every_waiver_names_one_check_and_gives_its_reason() -> None:
    found = waivers()
    assert found
    for name, skips in found.items():
        ids = [s["id"] for s in skips]
        assert len(ids) == len(set(ids)), name
        for skip in skips:
            assert set(skip) == {"id", "comment"} and re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (name, skip)
            assert len(skip["comment"]) >= 60, (name, skip)  # a reason, not a label


def test_the_findings_that_were_fixed_are_not_waived() -> None:
    waived = {(name, s["id"]) for name, skips in waivers().items() for s in skips}
    # The alarm topic is encrypted, API Gateway traces, every function has reserved concurrency.
    assert not {i for _, i in waived} & {"CKV_AWS_26", "CKV_AWS_73", "CKV_AWS_115"}
    assert RESOURCES["RestAPI"]["Properties"]["TracingEnabled"] is True


def test_the_functions_waive_the_same_three_choices() -> None:
    functions = ("Plan", "Capacity", "Tile", "Reduce", "MarkFailed", "APIHandler")
    for name in functions:
        assert sorted(s["id"] for s in waivers()[name]) == ["CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"], name

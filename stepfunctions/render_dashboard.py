"""Inline stepfunctions/dashboard.json into a merge template as the Dashboard's body.

    python stepfunctions/render_dashboard.py TEMPLATE.json     # rewrites TEMPLATE.json

The dashboard is kept as a readable JSON object in its own file. CloudFormation wants
``DashboardBody`` as one string, so it goes in as ``Fn::Sub`` of the serialized object:
``${StateMachine}``, ``${Tile}``, ``${SpotQueue.QueueName}`` and the like then name this
stack's own resources (tests/unit/test_observability.py checks that each one exists).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).with_name("dashboard.json")


def with_dashboard(template: dict[str, Any], dashboard: dict[str, Any]) -> dict[str, Any]:
    """``template`` with ``dashboard`` as ``Resources.Dashboard.Properties.DashboardBody``."""
    body = {"Fn::Sub": json.dumps(dashboard, separators=(",", ":"))}
    template["Resources"]["Dashboard"]["Properties"]["DashboardBody"] = body
    return template


def main(argv: list[str]) -> None:
    path = Path(argv[1])
    template = with_dashboard(json.loads(path.read_text()), json.loads(DASHBOARD.read_text()))
    path.write_text(json.dumps(template, indent=2))


if __name__ == "__main__":
    main(sys.argv)

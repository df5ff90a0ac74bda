"""A small ``tilefan run`` on a terminal stays lean: it draws its bar and finishes its job
without importing notebook support, pydantic or any AWS, server or report part, nor the
core's REST-only half (uploads, body caps, what a REST caller may name).

The run happens in a fresh interpreter whose stderr says it is a terminal (so the bar is
really drawn), on a temporary home; afterwards it reports what it loaded. Which parts
load is the behaviour that start-up time follows (``benchmarks/startup.py`` measures it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.unit.test_lazy_imports import HEAVY, REST_ONLY

PROBE = """
import io, json, sys

class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True

sys.stderr = Terminal()
from tilefan.entrypoints.cli.main import main
code = main(["run", "atoms", "--grid", "8", "--atoms", "50", "--seed", "3"])
print(json.dumps({"code": code, "bar": sys.stderr.getvalue(), "modules": sorted(sys.modules)}))
"""


def test_a_small_run_on_a_terminal_imports_no_heavy_part(tmp_path: Path) -> None:
    env = {**os.environ, "TILEFAN_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env)
    lines = out.stdout.splitlines()
    report = json.loads(lines[-1])
    assert report["code"] == 0
    assert "atoms: 100%" in report["bar"]  # the bar was drawn, to the end
    assert any("min" in line for line in lines[:-1])  # and the summary printed
    loaded = set(report["modules"])
    assert "tqdm.std" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    assert "tilefan.service.core" in loaded
    assert loaded.isdisjoint(REST_ONLY), sorted(loaded & set(REST_ONLY))
    # Its summary line shows no AWS prediction, so the cost model stays unloaded.
    assert "tilefan.domain.cost_model" not in loaded

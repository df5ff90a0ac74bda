"""Importing the command line loads none of the heavy optional parts.

Each of these costs a large share of a small job's whole run (IPython and traitlets
through notebook support ~0.25 s, pydantic and the request models about as much as NumPy,
boto3, chalice, matplotlib, waitress); the parts that need them import them when used.
A fresh interpreter imports the module and reports what it loaded: a behaviour check,
not a timing one.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("IPython", "ipywidgets", "traitlets", "pydantic", "boto3", "botocore", "chalice", "matplotlib",
         "waitress", "numba")
# Reading installed metadata (``--version``, ``tilefan.__version__``) imports the email
# parser too; tqdm reads its own version that way, so only a run without a bar avoids it.
METADATA = "importlib.metadata"


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_part() -> None:
    loaded = loaded_after("import tilefan.entrypoints.cli.main")
    assert "tilefan.entrypoints.cli.main" in loaded
    assert loaded.isdisjoint({*HEAVY, METADATA}), sorted(loaded & {*HEAVY, METADATA})


def test_importing_the_package_loads_no_heavy_part_and_the_version_still_reads() -> None:
    loaded = loaded_after("import tilefan")
    assert loaded.isdisjoint({*HEAVY, METADATA}), sorted(loaded & {*HEAVY, METADATA})
    version = subprocess.run([sys.executable, "-c", "import tilefan; print(tilefan.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version and version[0].isdigit()

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
# The core's REST-only half: uploads and their body caps, what a REST caller may name, the
# response models. ``tilefan run``'s core is the same object, but never calls them.
REST_ONLY = ("tilefan.service.uploads", "tilefan.service.body_caps", "tilefan.service.rest_door",
             "tilefan.service.response_models", "tilefan.entrypoints.http")
# The modules a one-shot run (``tilefan run``, ``resume``, the Python API) imports before
# its first job: its door, the composition root, the core and the embedded scheduler.
ONE_SHOT_PATH = ("tilefan.entrypoints.cli.main", "tilefan.entrypoints.cli.run", "tilefan.bootstrap",
                 "tilefan.service.core", "tilefan.runtimes.embedded.scheduler", "tilefan.pipeline.reduce")
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


def test_the_one_shot_run_path_loads_no_rest_only_part() -> None:
    loaded = loaded_after("\n".join(f"import {name}" for name in ONE_SHOT_PATH))
    assert loaded.issuperset(ONE_SHOT_PATH)
    assert loaded.isdisjoint(REST_ONLY), sorted(loaded & set(REST_ONLY))
    assert loaded.isdisjoint({*HEAVY, METADATA}), sorted(loaded & {*HEAVY, METADATA})


def test_importing_the_package_loads_no_heavy_part_and_the_version_still_reads() -> None:
    loaded = loaded_after("import tilefan")
    assert loaded.isdisjoint({*HEAVY, METADATA}), sorted(loaded & {*HEAVY, METADATA})
    version = subprocess.run([sys.executable, "-c", "import tilefan; print(tilefan.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version and version[0].isdigit()

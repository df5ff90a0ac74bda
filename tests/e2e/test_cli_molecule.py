"""``tilefan run atoms --around adk_open.pqr --spacing 1 --margin 8 --field-out adk.dx`` (and
``.mrc``) as a user types it, and the bad molecule files it must refuse (exit 2, one line
naming the flag, the line and the column, nothing written)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.molecule_maps import adk_path, assert_adk_map

CLI = [sys.executable, "-m", "tilefan.entrypoints.cli.main"]


def tilefan(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILEFAN_")}
    env.update({"TILEFAN_HOME": str(cwd / "home"), "TILEFAN_WORKERS": "2"})
    proc = subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def outside_home(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.name != "home"}


@pytest.mark.parametrize("name", ["adk.dx", "adk.mrc"])
def test_a_map_around_adk_is_what_an_independent_direct_sum_gives(tmp_path: Path, name: str) -> None:
    proc = tilefan(tmp_path, "run", "atoms", "--around", str(adk_path()), "--spacing", "1", "--margin", "8",
                   "--field-out", name, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["result"]["field"] == str(tmp_path / name)
    assert doc["spec"]["atoms"] == {"file": str(adk_path()), "count": 3341}
    assert_adk_map(tmp_path / name, doc["result"])
    assert outside_home(tmp_path) == {name}  # the staged .npy is gone


def test_tilefan_result_converts_a_kept_field_to_a_map(tmp_path: Path) -> None:
    proc = tilefan(tmp_path, "run", "atoms", "--around", str(adk_path()), "--spacing", "1", "--margin", "8",
                   "--field-out", "adk.npy", "--json")
    assert proc.returncode == 0, proc.stderr
    job_id = json.loads(proc.stdout)["job_id"]
    done = tilefan(tmp_path, "result", job_id, "--out", "again.mrc")
    assert done.returncode == 0, done.stderr
    assert_adk_map(tmp_path / "again.mrc")


GOOD = "ATOM      1  N   MET     1      27.340  24.430   2.614 -0.3000 1.8500\n"
NO_CHARGE = GOOD.replace(" -0.3000", "")
COMMA = GOOD.replace("24.430", "24,430")


@pytest.mark.parametrize(("text", "flag_and_place"), [
    (GOOD + GOOD[:50], "line 2, column 51: an ATOM record has 8 fields"),  # truncated mid-record
    (GOOD + NO_CHARGE, f"line 2, column {len(NO_CHARGE)}: an ATOM record has 9 fields"),  # just past its end
    (GOOD + COMMA, f"line 2, column {COMMA.index('24,430') + 1}: the y coordinate is not a number"),
])
@pytest.mark.parametrize("how", ["--around", "--atoms-file"])
def test_bad_molecules_exit_2_naming_line_and_column_and_write_nothing(tmp_path: Path, text: str,
                                                                         flag_and_place: str, how: str) -> None:
    (tmp_path / "bad.pqr").write_text(text)
    grid = ["--margin", "4"] if how == "--around" else ["--grid", "8"]
    proc = tilefan(tmp_path, "run", "atoms", how, "bad.pqr", *grid, "--field-out", "phi.mrc")
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"error: {how}: {flag_and_place}")
    assert outside_home(tmp_path) == {"bad.pqr"}


def test_a_dx_map_too_big_is_refused_before_the_job_runs(tmp_path: Path) -> None:
    proc = tilefan(tmp_path, "run", "atoms", "--around", str(adk_path()), "--spacing", "0.4", "--margin", "8",
                   "--field-out", "big.dx")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --field-out: a 136x180x181 grid has 4430880 points")
    assert "write .mrc instead" in proc.stderr
    assert outside_home(tmp_path) == set()
    assert tilefan(tmp_path, "jobs").stdout.startswith("no jobs yet")


def test_around_with_endpoint_uploads_the_molecule_and_result_converts_the_field(tmp_path: Path) -> None:
    from tests.e2e.serve_process import serving

    with serving(tmp_path / "server") as url:
        proc = tilefan(tmp_path, "run", "atoms", "--around", str(adk_path()), "--spacing", "1", "--margin", "8",
                       "--endpoint", url, "--json")
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["spec"]["atoms"]["file"].startswith("uploads/")  # sent once, named by its upload
        assert doc["spec"]["grid"] == [55, 73, 73]
        assert doc["result"].get("field") is None  # the REST door keeps the field only when asked for
        # A job that keeps it: tilefan result converts the streamed .npy to the map --out names.
        from tilefan.entrypoints.sdk.client import Client

        client = Client(url)
        spec = {**doc["spec"], "field": True}
        for key in ("grid", "origin", "field_out", "tile", "route"):
            spec.pop(key, None)
        kept = client.wait(client.submit({**spec, "around": {"margin": 8}})["job_id"], progress=False)
        assert kept["status"] == "SUCCEEDED", kept["error"]
        got = tilefan(tmp_path, "result", kept["job_id"], "--out", "remote.dx", "--endpoint", url)
        assert got.returncode == 0, got.stderr
        assert_adk_map(tmp_path / "remote.dx", kept["result"])
        assert outside_home(tmp_path) == {"server", "remote.dx"}

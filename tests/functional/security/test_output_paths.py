"""The CLI keeps its user's paths, but an output may not be one of the job's inputs, and two
jobs writing one path can never both report success: the later is refused while the
earlier runs, and only the path's claim holder may commit to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import npy_bytes, random_pair, run_job, start_job
from tilefan.bootstrap import embedded_ports
from tilefan.domain.records import Status
from tilefan.entrypoints.cli import main as cli
from tilefan.errors import InvalidSpecError, StoreError
from tilefan.pipeline.ports import Ports
from tilefan.pipeline.reduce import reduce_job
from tilefan.pipeline.submit import submit_job
from tilefan.pipeline.tile import run_tile

ADD = {"kind": "add", "a": {"shape": [20, 10]}, "b": {"shape": [20, 10]}, "seed": 1, "tile": 8}


@pytest.fixture
def ports(tmp_path: Path) -> Ports:
    return embedded_ports(tmp_path / "home")


@pytest.mark.parametrize("flag, target", [("--out", "A.npy"), ("--out", "B.npy"), ("--out", "link.npy")])
def test_the_cli_refuses_an_output_over_its_own_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flag: str, target: str
) -> None:
    monkeypatch.setenv("TILEFAN_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    a = npy_bytes(np.ones((4, 4)))
    (tmp_path / "A.npy").write_bytes(a)
    (tmp_path / "B.npy").write_bytes(a)
    (tmp_path / "link.npy").symlink_to(tmp_path / "A.npy")
    code = cli.main(["run", "add", "--a", "A.npy", "--b", "B.npy", flag, target])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag}: ") and "is the job's input" in err
    assert (tmp_path / "A.npy").read_bytes() == a and (tmp_path / "B.npy").read_bytes() == a


def test_the_cli_refuses_a_field_over_its_atoms_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TILEFAN_HOME", str(tmp_path / "home"))
    table = tmp_path / "atoms.npy"
    table.write_bytes(npy_bytes(np.array([[0.5, 0.5, 0.5, -1.0]])))
    code = cli.main(["run", "atoms", "--grid", "4", "--atoms-file", str(table), "--field-out", str(table)])
    assert code == 2 and "--field-out: " in capsys.readouterr().err


def test_a_second_job_on_a_path_being_written_is_refused(ports: Ports, tmp_path: Path) -> None:
    out = str(tmp_path / "C.npy")
    first, tiles = start_job(ports, {**ADD, "out": out})
    with pytest.raises(InvalidSpecError) as refused:
        submit_job(ports, {**ADD, "seed": 2, "out": out})
    assert refused.value.field == "out" and first in refused.value.message
    for tile_id in tiles:
        run_tile(ports, first, tile_id)
    assert reduce_job(ports, first).status is Status.SUCCEEDED
    # Once the first has finished, the path is free again.
    second = run_job(ports, {**ADD, "seed": 2, "out": out})
    a, b = random_pair(2, "float64", (20, 10), (20, 10))
    np.testing.assert_array_equal(np.load(out), a + b)
    assert second.result is not None and second.result["output"] == out


def test_a_claim_left_by_an_ended_job_is_taken_over(ports: Ports, tmp_path: Path) -> None:
    out = str(tmp_path / "phi.npy")
    atoms = {"kind": "atoms", "grid": 4, "atoms": 3, "softening": 0.3, "tile": 2, "field_out": out}
    first, _ = start_job(ports, atoms)
    ports.jobs.transition(first, Status.FAILED, error={"code": "x", "message": "died"})  # its process died
    assert run_job(ports, atoms).status is Status.SUCCEEDED
    assert np.load(out).shape == (4, 4, 4)


def test_only_the_claim_holder_commits(ports: Ports, tmp_path: Path) -> None:
    out = tmp_path / "C.npy"
    first, tiles = start_job(ports, {**ADD, "out": str(out)})
    for tile_id in tiles:
        run_tile(ports, first, tile_id)
    # Another writer took the path over meanwhile (as after a claim judged stale).
    ports.blobs.take_output(str(out), "someone-else")  # type: ignore[attr-defined]
    with pytest.raises(StoreError, match=r"claimed by job someone-else .* it was not overwritten"):
        reduce_job(ports, first)  # the runner records this as the job's failure
    assert sorted(p.name for p in tmp_path.iterdir() if "C.npy" in p.name) == [".C.npy.writer"]

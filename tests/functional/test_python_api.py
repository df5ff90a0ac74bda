"""The Python API on the embedded backend: arrays and paths in, NumPy's answers out."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tilefan
from tests.helpers import brute_force_phi
from tilefan.domain.randgen import random_atoms
from tilefan.domain.spec.resolved import RandomAtoms
from tilefan.entrypoints.sdk import api
from tilefan.errors import InvalidSpecError


def test_matmul_of_arrays_matches_numpy_and_leaves_no_temp_home(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    rng = np.random.default_rng(5)
    a, b = rng.random((90, 60)), rng.random((60, 70)).astype(np.float32)
    c = tilefan.matmul(a, b, tile=32, verify=True, workers=2)
    np.testing.assert_allclose(c, a @ b.astype(np.float64), rtol=1e-6)
    assert not isinstance(c, np.memmap)
    assert list(tmp_path.iterdir()) == []  # the temporary home is gone


def test_paths_in_and_out_and_a_kept_home(tmp_path: Path) -> None:
    a = np.arange(12.0).reshape(3, 4)
    np.save(tmp_path / "a.npy", a)
    out = tmp_path / "c.npy"
    c = tilefan.add(tmp_path / "a.npy", str(tmp_path / "a.npy"), out=out, home=tmp_path / "home")
    np.testing.assert_array_equal(c, 2 * a)
    np.testing.assert_array_equal(np.load(out), 2 * a)
    assert (tmp_path / "home" / "jobs.sqlite3").exists()


def test_big_output_comes_back_as_memmap(tmp_path: Path) -> None:
    a = np.ones((40, 30))
    c = tilefan.add(a, a, in_memory_limit=1000)
    assert isinstance(c, np.memmap)
    assert float(c.sum()) == 2 * 40 * 30
    kept = tilefan.add(a, a, out=tmp_path / "kept.npy", in_memory_limit=1000)
    assert isinstance(kept, np.memmap) and Path(kept.filename) == tmp_path / "kept.npy"


def test_atoms_result_matches_brute_force() -> None:
    table = np.array([[1.2, 2.7, 3.1, -2.0], [4.4, 1.3, 0.2, 1.5], [2.2, 2.2, 5.6, -0.7]])
    r = tilefan.atoms((6, 7, 8), atoms=table, spacing=0.9, origin=(0.1, -0.2, 0.3), softening=0.05,
                      field=True, verify=True, tile=4)
    phi, _scale = brute_force_phi(table, (6, 7, 8), (0.1, -0.2, 0.3), 0.9, 0.05)
    np.testing.assert_allclose(r.field, phi, rtol=1e-12)
    idx = np.unravel_index(int(np.argmin(phi)), phi.shape)
    assert r.min_index == tuple(int(i) for i in idx)
    origin = (0.1, -0.2, 0.3)
    assert r.min_point == pytest.approx(tuple(origin[n] + 0.9 * int(i) for n, i in enumerate(idx)))
    assert r.min_value == pytest.approx(float(phi.min()))
    assert r.verification is not None and r.verification["passed"]


def test_bad_input_raises_naming_the_field() -> None:
    with pytest.raises(InvalidSpecError) as err:
        tilefan.matmul(np.ones((3, 4)), np.ones((3, 4)))
    assert err.value.field.startswith("b")


def test_progress_bar_reaches_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    from tilefan.entrypoints.report import progress

    real = progress.JobProgress
    monkeypatch.setattr(progress, "JobProgress", lambda kind, **kw: real(kind, file=stream, disable=kw["disable"]))
    tilefan.atoms(8, atoms=20, tile=4, progress=True, verify=True, workers=2)
    text = stream.getvalue()
    final = text.replace("\n", "\r").split("\r")[-2]
    assert final.startswith("atoms: 100%|") and "8/8 tiles" in final and "point/s" in final


def test_an_interrupt_cancels_the_job_and_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tilefan.bootstrap import embedded_ports
    from tilefan.entrypoints.report import progress

    def interrupted(self: progress.JobProgress, record: object) -> None:
        raise KeyboardInterrupt  # what Ctrl-C, or a notebook's stop button, raises in the caller

    monkeypatch.setattr(progress.JobProgress, "update", interrupted)
    out = tmp_path / "c.npy"
    with pytest.raises(KeyboardInterrupt):
        tilefan.matmul(np.ones((64, 64)), np.ones((64, 64)), tile=16, workers=2, out=out, home=tmp_path / "home")
    [record], _ = embedded_ports(tmp_path / "home").jobs.list_jobs(5)
    assert record.status.value == "CANCELLED"
    assert [p.name for p in tmp_path.iterdir()] == ["home"]  # no output, and no hidden partial one


def _mapped(arr: np.ndarray) -> bool:
    """Whether ``arr``'s memory is a file mapping (np.memmap's), not an array of its own."""
    import mmap

    base = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return isinstance(base, mmap.mmap)


def test_an_output_in_the_home_comes_back_mapped_not_copied_and_private(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    a, b = rng.random((60, 40)), rng.random((40, 50))
    c = tilefan.matmul(a, b, home=tmp_path / "home")
    assert type(c) is np.ndarray and _mapped(c)  # the output file's pages, not a copy of them
    np.testing.assert_allclose(c, a @ b, rtol=1e-12)
    outputs = [p for p in (tmp_path / "home").rglob("*.npy") if "inputs" not in p.parts]
    assert len(outputs) == 1
    c[0, 0] = -1.0  # copy-on-write: the caller's array changes, the home's file does not
    assert np.load(outputs[0])[0, 0] == pytest.approx(float((a @ b)[0, 0]))
    again = tilefan.matmul(a, b, home=tmp_path / "home")  # a later job leaves c as it was
    assert c[0, 0] == -1.0 and c[1, 1] == pytest.approx(float(again[1, 1]))


def test_a_named_output_comes_back_as_a_copy(tmp_path: Path) -> None:
    a = np.ones((20, 30))
    c = tilefan.add(a, a, out=tmp_path / "c.npy")
    assert not _mapped(c)
    np.save(tmp_path / "c.npy", np.zeros(3))  # rewritten in place by anyone: c is unaffected
    assert float(c.sum()) == 2 * 20 * 30


@pytest.mark.parametrize("in_pool", [False, True])
def test_a_temporary_homes_inputs_stay_in_memory_and_so_does_an_output_computed_here(
    tmp_path: Path, in_pool: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from tilefan.bootstrap import embedded_ports
    from tilefan.domain import inline_tiles
    from tilefan.pipeline.report import tile_report

    if in_pool:  # the pool's workers, forked after the submission, read the same arrays
        monkeypatch.setattr(inline_tiles, "HELD_INLINE_MATMUL_FLOP", 0.0)
        monkeypatch.setattr(inline_tiles, "INLINE_ATOMS_C", False)
    # The call's temporary home, made where the test can see it and kept to be looked at.
    home = tmp_path / "home"
    monkeypatch.setattr(api.tempfile, "mkdtemp", lambda prefix: (home.mkdir(exist_ok=True), str(home))[1])
    monkeypatch.setattr(api._Run, "close", lambda self: None)
    rng = np.random.default_rng(8)
    a, b = rng.random((70, 50)), rng.random((50, 60))
    c = tilefan.matmul(a, b, tile=32, workers=2, verify=True)
    np.testing.assert_allclose(c, a @ b, rtol=1e-12)
    assert not (home / "inputs").exists() or list((home / "inputs").iterdir()) == []  # no input written
    # The output: in this process's memory when computed here; a file the forked workers
    # write into when they compute it (their stores into this process's private pages would be lost).
    outputs = [p.name for p in home.rglob("*.npy")]
    assert outputs == (["out.npy"] if in_pool else [])
    ports = embedded_ports(home)
    (record,), _ = ports.jobs.list_jobs(10)
    workers = {row["worker"] for row in tile_report(ports, record.job_id)["tiles"]}
    assert (f"local-{os.getpid()}" not in workers) if in_pool else (workers == {f"local-{os.getpid()}"})
    # An atoms job's field likewise; the table it stages for its tiles is held either way.
    phi = tilefan.atoms((5, 6, 7), atoms=12, seed=2, field=True, tile=3, workers=2)
    table = random_atoms(RandomAtoms(count=12, seed=2), (5, 6, 7), (0.0, 0.0, 0.0), 1.0)
    np.testing.assert_allclose(phi.field, brute_force_phi(table, (5, 6, 7))[0], rtol=1e-12)
    fields = [p.parent.name for p in home.rglob("*.npy") if p.name != "out.npy"]
    assert fields == (["fields"] if in_pool else [])


def test_a_one_shot_run_plans_in_its_own_thread_and_reduces_in_another(monkeypatch: pytest.MonkeyPatch) -> None:
    # The interrupt (Ctrl-C) reaches the calling thread: it must never fall between the
    # reduce's publishing of the output and its recording of the job SUCCEEDED.
    import threading

    from tilefan.pipeline import plan, reduce

    threads: dict[str, threading.Thread] = {}
    for module, name in ((plan, "plan_job"), (reduce, "reduce_job")):
        real = getattr(module, name)

        def spy(*args: Any, _real: Callable[..., Any] = real, _name: str = name, **kwargs: Any) -> Any:
            threads[_name] = threading.current_thread()
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    c = tilefan.matmul(np.eye(3), np.ones((3, 2)))
    np.testing.assert_array_equal(c, np.ones((3, 2)))
    assert threads["plan_job"] is threading.main_thread()
    assert threads["reduce_job"] is not threading.main_thread()


def test_a_kept_homes_inputs_are_files_so_a_crashed_call_can_be_resumed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    c = tilefan.matmul(a, b, home=home, workers=1)
    np.testing.assert_array_equal(c, a @ b)
    stored = sorted(np.load(path).shape for path in (home / "inputs").iterdir())
    assert stored == [(2, 3), (3, 4)]


def test_a_matmul_built_in_memory_here_is_cut_in_row_panels_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its tiles run here one after another on BLAS's threads, so fewer, wider GEMMs; a job
    # whose output is a file (named, or over the in-memory limit) keeps the default tiles.
    from tilefan.bootstrap import embedded_ports
    from tilefan.domain import inline_tiles
    from tilefan.domain.tiling import default_matrix_tile

    monkeypatch.setattr(inline_tiles, "HELD_PANEL_ROWS", 256)
    home = tmp_path / "home"
    monkeypatch.setattr(api.tempfile, "mkdtemp", lambda prefix: (home.mkdir(exist_ok=True), str(home))[1])
    monkeypatch.setattr(api._Run, "close", lambda self: None)
    rng = np.random.default_rng(3)
    a, b = rng.random((1000, 40)), rng.random((40, 700))
    calls = {"held": {}, "named": {"out": tmp_path / "c.npy"}, "over the limit": {"in_memory_limit": 1000},
             "told": {"tile": 100}}
    for kwargs in calls.values():
        np.testing.assert_allclose(tilefan.matmul(a, b, **kwargs), a @ b, rtol=1e-12)
    # A B its tiles would convert (a panel's B is all of B, copied per tile) keeps them too.
    np.testing.assert_allclose(tilefan.matmul(a, b.astype(np.float32)), a @ b, rtol=1e-6)
    records = sorted(embedded_ports(home).jobs.list_jobs(10)[0], key=lambda r: r.created_at)
    assert default_matrix_tile("matmul", (1000, 700), 40, 8) == (512, 512)
    assert [(r.spec.tile, r.tiles_total) for r in records] == [
        ((256, 700), 4), ((512, 512), 4), ((512, 512), 4), ((100, 100), 70), ((512, 512), 4)]

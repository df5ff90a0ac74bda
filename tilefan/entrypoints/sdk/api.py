"""The Python API: NumPy arrays in, arrays (or a typed atoms result) out.

Each call runs one job on the embedded backend, in ``home`` when given (or
``TILEFAN_HOME`` with ``use_config=True``) and otherwise in a temporary directory that is
removed afterwards. In that temporary home the job's tiles read the arrays from memory
with no copy, and tiles computed in this process (a matmul, atoms on the C kernel) build
the output in its memory, which is what the call returns; only tiles sent to the pool's
forked workers write a file. In a kept home the arrays are
written as ``.npy`` files, so that ``tilefan resume`` can finish a crashed call's job. A path
(str or ``Path``, also ``X.zarr`` and ``file.h5:dataset``) is used as it is, and so is a
zarr array on local storage or an h5py dataset (tiles read only their blocks of it). With
``out="C.zarr"`` the result is written as Zarr, one chunk per tile, and returned as a zarr
array. An output larger than ``in_memory_limit`` bytes is built in a file and comes back as
a read-only ``np.memmap``: give ``out=`` to keep its file; without it the file is removed
from the directory at once and the mapping stays valid while the array lives (POSIX). A
smaller output in a kept home comes back as a plain array over a private mapping of its
file (no copy).

>>> import numpy as np, tilefan
>>> a = np.arange(6.0).reshape(2, 3); b = np.ones((3, 2))
>>> tilefan.matmul(a, b, verify=True)
array([[ 3.,  3.],
       [12., 12.]])
>>> tilefan.add(a, a)[1].tolist()
[6.0, 8.0, 10.0]
>>> r = tilefan.atoms(8, atoms=np.array([[3.5, 3.5, 3.5, -1.0]]))
>>> r.min_index, round(r.min_value, 6)
((3, 3, 3), -1.154701)
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tilefan.domain.chunks import is_zarr
from tilefan.entrypoints.sdk.arrays import chunked_source
from tilefan.errors import InvalidSpecError, ReportedError, TilefanError

if TYPE_CHECKING:
    from collections.abc import Callable

    from tilefan.bootstrap import HeldArrays
    from tilefan.domain.spec.parse import JobSpec
    from tilefan.service.core import JobCore

ArrayLike = np.ndarray | str | os.PathLike[str]
IN_MEMORY_LIMIT = 1 << 30  # bytes: larger outputs come back as np.memmap


class JobFailedError(TilefanError):
    """The job ran and failed (or was cancelled); ``record`` is its final job record."""

    code = "job_failed"

    def __init__(self, record: dict[str, Any]) -> None:
        err = record.get("error") or {}
        super().__init__(f"job {record['job_id']} {record['status']}: {err.get('message', 'no detail')}")
        self.record = record


@dataclass(frozen=True)
class AtomsResult:
    """The minimum of the potential, where it is, and the whole field when asked for."""

    min_value: float
    min_index: tuple[int, int, int]
    min_point: tuple[float, float, float]
    field: np.ndarray | None = None
    job_id: str = ""
    verification: dict[str, Any] | None = None
    record: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclass
class _Run:
    """A job store home for one call: a temporary directory, whose job keeps the call's
    in-memory inputs and its outputs in memory (``held``, ``bootstrap.build_core``'s), or a
    kept one, where both are files."""

    home: Path
    held: HeldArrays | None = None

    @property
    def temporary(self) -> bool:
        return self.held is not None

    def input(self, name: str, value: ArrayLike) -> str:
        if isinstance(value, str | os.PathLike):
            return os.path.abspath(os.fspath(value))
        stored = chunked_source(value, self.home / "inputs", f"{os.getpid()}-{id(value):x}-{name}")
        if stored is not None:
            return stored
        path = self.home / "inputs" / f"{os.getpid()}-{id(value):x}-{name}.npy"
        if self.held is not None:
            # Nothing outlives this call's temporary home, so no later process (``tilefan
            # resume``, a server) needs the inputs as files: the job reads them from memory.
            self.held.hold(path, np.ascontiguousarray(value))
        else:
            # A kept home's job must be resumable after a crash of this process, by another
            # process that has only the files.
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.ascontiguousarray(value))
        return str(path)

    def close(self) -> None:
        if self.temporary:
            shutil.rmtree(self.home, ignore_errors=True)


def _open_run(home: str | os.PathLike[str] | None, use_config: bool, in_memory_limit: int) -> _Run:
    if home is not None:
        return _Run(Path(home))
    if use_config:
        from tilefan.bootstrap import load_config

        return _Run(load_config().home)
    from tilefan.bootstrap import hold_in_memory

    temporary = Path(tempfile.mkdtemp(prefix="tilefan-"))
    return _Run(temporary, hold_in_memory(temporary, max_output_bytes=in_memory_limit))


def _core(run: _Run, workers: int | None) -> JobCore:
    """The core that runs this call's job here, in the run's home."""
    from tilefan.bootstrap import build_core, load_config

    config = replace(load_config(), home=run.home)
    if workers is not None:
        config = replace(config, workers=workers)
    return build_core(config, one_shot=True, held=run.held)


def _execute(core: JobCore, raw: dict[str, Any], progress: bool,
             check: Callable[[JobSpec], None] | None = None) -> dict[str, Any]:
    """Submit ``raw`` and run it to the end here, as ``tilefan run`` does (if a server
    holds the home, it runs the job and this follows it); the final record, or
    JobFailedError. Interrupted (Ctrl-C, a notebook's stop), the job is cancelled and its
    partial output removed."""
    from tilefan.entrypoints.report.progress import JobProgress

    record = core.submit_here(raw, check)
    with JobProgress(record.kind, disable=not progress) as bar:
        final = core.run_here(record.job_id, on_progress=bar.update).to_dict()
    if final["status"] != "SUCCEEDED":
        err = final.get("error") or {}
        if err.get("code") == "invalid_input":
            raise InvalidSpecError(err.get("field") or "input", err.get("message", ""))
        if err:
            raise ReportedError(err.get("code", "job_failed"), err.get("message", ""), err.get("field"))
        raise JobFailedError(final)
    return final


def _load(run: _Run, path: str, limit: int, named: bool) -> np.ndarray:
    """The output at ``path``; ``named``: the caller named it."""
    held = run.held.result(path) if run.held is not None else None
    if held is not None:
        return held  # built in this process's memory, and no one else's: the caller's now
    if is_zarr(path):
        from tilefan.adapters.embedded.chunked_files import open_zarr

        arr: np.ndarray = open_zarr(Path(path), "", path)  # a zarr array: sliced, it reads its chunks
        return arr
    mapped = np.load(path, mmap_mode="r")
    if mapped.nbytes <= limit and not named:
        # A private (copy-on-write) mapping of tilefan's own output file, handed back as a
        # plain ndarray: its pages are the page cache's until the caller writes to one, so
        # the whole output is not copied (a copy of a 128 MiB output took 0.04-0.4 s,
        # with the load: BENCHMARKS.md, the one-shot section). No later job
        # changes these bytes: outputs are committed by renaming a new file into place, and
        # an unlinked file stays mapped. A file the caller named could be rewritten in
        # place by anything (truncating it under the mapping), so that one is copied.
        return np.asarray(np.load(path, mmap_mode="c"))
    if mapped.nbytes <= limit:
        return np.array(mapped)
    if run.temporary and not named:
        os.unlink(path)  # the mapping keeps the data; nothing is left on disk
    return mapped


def _matrix(kind: str, a: ArrayLike, b: ArrayLike, tile: int | tuple[int, int] | None, verify: bool,
            out: str | os.PathLike[str] | None, home: str | os.PathLike[str] | None, use_config: bool,
            workers: int | None, progress: bool, in_memory_limit: int) -> np.ndarray:
    run = _open_run(home, use_config, in_memory_limit)
    try:
        raw: dict[str, Any] = {"kind": kind, "verify": verify, "a": {"file": run.input("a", a)},
                               "b": {"file": run.input("b", b)}}
        if tile is not None:
            raw["tile"] = list(tile) if isinstance(tile, tuple) else tile
        if out is not None:
            raw["out"] = os.path.abspath(os.fspath(out))
        final = _execute(_core(run, workers), raw, progress)
        path = final["result"]["output"]
        return _load(run, path, in_memory_limit, named=out is not None)
    finally:
        run.close()


def matmul(a: ArrayLike, b: ArrayLike, *, tile: int | tuple[int, int] | None = None, verify: bool = False,
           out: str | os.PathLike[str] | None = None, home: str | os.PathLike[str] | None = None,
           use_config: bool = False, workers: int | None = None, progress: bool = False,
           in_memory_limit: int = IN_MEMORY_LIMIT) -> np.ndarray:
    """C = A·B, tiled over a process pool; ``verify`` runs Freivalds' check.

    >>> import numpy as np
    >>> a = np.random.default_rng(0).random((70, 50)); b = np.random.default_rng(1).random((50, 40))
    >>> c = matmul(a, b, tile=16, verify=True)
    >>> c.shape, bool(np.allclose(c, a @ b))
    ((70, 40), True)
    """
    return _matrix("matmul", a, b, tile, verify, out, home, use_config, workers, progress, in_memory_limit)


def add(a: ArrayLike, b: ArrayLike, *, tile: int | tuple[int, int] | None = None, verify: bool = False,
        out: str | os.PathLike[str] | None = None, home: str | os.PathLike[str] | None = None,
        use_config: bool = False, workers: int | None = None, progress: bool = False,
        in_memory_limit: int = IN_MEMORY_LIMIT) -> np.ndarray:
    """C = A + B for equal shapes; ``verify`` compares exactly.

    >>> import numpy as np
    >>> add(np.eye(2), np.full((2, 2), 0.5)).tolist()
    [[1.5, 0.5], [0.5, 1.5]]
    """
    return _matrix("add", a, b, tile, verify, out, home, use_config, workers, progress, in_memory_limit)


def atoms(grid: int | tuple[int, int, int] | None = None, atoms: ArrayLike | int | None = None, *, seed: int = 0,
          spacing: float = 1.0, origin: tuple[float, float, float] = (0.0, 0.0, 0.0), softening: float = 0.0,
          precision: str = "float64", field: bool = False, tile: int | tuple[int, int, int] | None = None,
          verify: bool = False, around: ArrayLike | bool = False, margin: float | None = None,
          units: str = "e/A", field_out: str | os.PathLike[str] | None = None,
          home: str | os.PathLike[str] | None = None, use_config: bool = False, workers: int | None = None,
          progress: bool = False, in_memory_limit: int = IN_MEMORY_LIMIT) -> AtomsResult:
    """φ(p) = Σ e / sqrt(|p − r|² + ε²) on a grid: its minimum, where it is, and the field if asked.

    ``atoms`` is an N×4 array (x, y, z, energy), a .npy/.csv path, a molecule (.pqr or
    extended .xyz, whose charges are the energies), or a count of seeded random atoms.
    ``around`` places the grid around a molecule (``True``: the atoms) with ``margin`` Å
    beyond its bounding box, instead of ``grid`` and ``origin``. ``units`` is e/A (Σq/r),
    kcal/mol/e or kT/e. ``field_out`` writes the field to a file: ``.npy``, or a map by its
    suffix (``.dx``, ``.mrc``, ``.ccp4``).

    >>> r = atoms((6, 6, 6), atoms=50, seed=3, field=True, verify=True)
    >>> r.field.shape, bool(r.field.min() == r.min_value), r.verification["passed"]
    ((6, 6, 6), True, True)
    """
    from tilefan.entrypoints.report.field_maps import discard, finish_map, map_check, stage_map

    if atoms is None:
        raise InvalidSpecError("atoms", "is required: an N×4 array, a file, or a count")
    run = _open_run(home, use_config, in_memory_limit)
    target = None
    try:
        raw: dict[str, Any] = {
            "kind": "atoms", "spacing": spacing, "softening": softening, "precision": precision,
            "verify": verify, "units": units,
        }
        raw["atoms"] = ({"file": run.input("atoms", atoms)} if isinstance(atoms, np.ndarray | str | os.PathLike)
                        else {"count": int(atoms), "seed": seed})
        if around is not False:
            raw["around"] = {"margin": margin}
            if around is not True:
                raw["around"]["file"] = run.input("around", around)
        else:
            raw["grid"] = list(grid) if isinstance(grid, tuple) else grid
            raw["origin"] = list(origin)
        if tile is not None:
            raw["tile"] = list(tile) if isinstance(tile, tuple) else tile
        if field_out is not None:
            raw["field_out"] = os.path.abspath(os.fspath(field_out))
        elif field:
            raw["field_out"] = str(run.home / "fields" / f"{os.getpid()}-{id(raw):x}.npy")
            (run.home / "fields").mkdir(parents=True, exist_ok=True)
        core = _core(run, workers)
        target = stage_map(raw)
        final = _execute(core, raw, progress, None if target is None else map_check(target))
        res = final["result"]
        phi = None
        if field and target is not None:
            phi = np.load(target.staged)
        elif field:
            phi = _load(run, res["field"], in_memory_limit, named=field_out is not None)
        if target is not None:
            final = finish_map(target, final)
            res = final["result"]
        i, j, k = res["min_index"]
        x, y, z = res["min_point"]
        return AtomsResult(min_value=float(res["min_value"]), min_index=(int(i), int(j), int(k)),
                           min_point=(float(x), float(y), float(z)), field=phi, job_id=final["job_id"],
                           verification=res.get("verification"), record=final)
    finally:
        if target is not None:
            discard(target)
        run.close()

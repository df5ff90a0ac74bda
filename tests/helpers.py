"""What many test files need: waiting for a condition, ``.npy`` bytes, running a job's
steps in-process, and the reference answers (NumPy's inputs for random matrices, a
brute-force potential for atoms) that the pipeline's results are compared with.

The atoms reference is written out here from the definition (φ = Σ e / √(d² + s²)) rather
than taken from ``tilefan.domain.kernels``, so a kernel bug cannot hide in its own yardstick.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from tilefan.domain.randgen import random_region
from tilefan.domain.records import JobRecord, Status
from tilefan.pipeline.plan import plan_job
from tilefan.pipeline.ports import BlobStore, Ports
from tilefan.pipeline.reduce import reduce_job
from tilefan.pipeline.submit import submit_job
from tilefan.pipeline.tile import TileOutcome, run_tile

T = TypeVar("T")

# How long a test waits for something that should happen within a second or two.
WAIT_S = 30.0
# The longest pause between two polls of a wait (see wait_until).
SLOWEST_POLL_S = 0.1


def wait_until(
    condition: Callable[[], T | None], what: str, timeout: float = WAIT_S, interval: float | None = None
) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    A test polls only for something another thread or process does; the assertion that
    follows rests on the condition having been seen true, never on time having passed.
    Without an ``interval``, the pause between polls grows from 0.02 s to ``SLOWEST_POLL_S``:
    a poll is a request the code under test serves too (under moto, one that holds the GIL
    for tens of milliseconds), so a long wait must not slow what it waits for. A test that
    must catch a short-lived state passes its own ``interval``, kept for the whole wait.
    """
    deadline = time.monotonic() + timeout
    pause = 0.02 if interval is None else interval
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(pause)
        if interval is None:
            pause = min(pause * 1.5, SLOWEST_POLL_S)


# --------------------------------------------------------------------------- .npy


class ForwardingBlobs:
    """A blob store that hands every call to ``inner``: a test subclasses it to watch or
    change some calls. It offers only ``BlobStore``; give ``Ports`` the inner store's
    capabilities with ``dataclasses.replace(ports, blobs=wrapper)``."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner

    def put_json(self, key: str, value: Any) -> None:
        self.inner.put_json(key, value)

    def get_json(self, key: str) -> Any:
        return self.inner.get_json(key)

    def array_info(self, key: str) -> tuple[tuple[int, ...], str]:
        return self.inner.array_info(key)

    def read_rows(self, key: str, rows: tuple[int, int], cols: tuple[int, int] | None = None) -> np.ndarray:
        return self.inner.read_rows(key, rows, cols)

    def read_array(self, key: str) -> np.ndarray:
        return self.inner.read_array(key)

    def read_bytes(self, key: str) -> bytes:
        return self.inner.read_bytes(key)

    def write_array(self, key: str, array: np.ndarray) -> None:
        self.inner.write_array(key, array)

    def create_array(self, key: str, shape: tuple[int, ...], dtype: str, job_id: str,
                     chunks: tuple[int, ...] | None = None) -> None:
        self.inner.create_array(key, shape, dtype, job_id, chunks)

    def write_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]], block: np.ndarray) -> None:
        self.inner.write_region(key, job_id, region, block)

    def read_region(self, key: str, job_id: str, region: Sequence[tuple[int, int]]) -> np.ndarray:
        return self.inner.read_region(key, job_id, region)

    def commit_array(self, key: str, job_id: str) -> str:
        return self.inner.commit_array(key, job_id)

    def discard_array(self, key: str, job_id: str) -> None:
        self.inner.discard_array(key, job_id)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def delete_prefix(self, prefix: str) -> None:
        self.inner.delete_prefix(prefix)


def defines(obj: object, protocol: type) -> bool:
    """Whether ``obj``'s class defines every method ``protocol`` names: the capability it
    could offer, whether or not a composition root wired it."""
    methods = {name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")}
    assert methods, f"{protocol.__name__} names no method"
    return methods <= set(dir(type(obj)))


def npy_bytes(array: np.ndarray) -> bytes:
    """The bytes ``np.save`` writes for ``array``: what a user uploads."""
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def npy_array(data: bytes) -> np.ndarray:
    """The array in ``.npy`` bytes (no pickles)."""
    return np.asarray(np.load(io.BytesIO(data), allow_pickle=False))


def s3_array(s3: Any, uri: str) -> np.ndarray:
    """The array an ``s3://bucket/key`` output holds."""
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return npy_array(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def atoms_csv(table: np.ndarray, header: bool = True) -> str:
    """An atoms table as the CSV a user writes: x, y, z, energy per row."""
    lines = ["x,y,z,energy"] if header else []
    lines += [",".join(repr(float(v)) for v in row) for row in table]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- running a job's steps


def start_job(ports: Ports, raw: dict[str, Any]) -> tuple[str, list[int]]:
    """Submit and plan in-process; the job id and its tile ids."""
    record = submit_job(ports, raw)
    assert record.status is Status.QUEUED
    the_plan = plan_job(ports, record.job_id)
    assert ports.jobs.get_job(record.job_id).status is Status.RUNNING
    return record.job_id, [t.tile_id for t in the_plan.tiles]


def run_job(ports: Ports, raw: dict[str, Any], **tile_kwargs: Any) -> JobRecord:
    """Submit, plan, run every tile once and reduce, in-process; the SUCCEEDED record."""
    job_id, tiles = start_job(ports, raw)
    assert len(tiles) > 1, "these tests are about fan-out: use several tiles"
    for tile_id in tiles:
        assert run_tile(ports, job_id, tile_id, **tile_kwargs).outcome is TileOutcome.RECORDED
    final = reduce_job(ports, job_id)
    assert final.status is Status.SUCCEEDED
    assert final.tiles_done == final.tiles_total == len(tiles)
    assert final.units_done == final.units_total
    return final


# --------------------------------------------------------------------------- references


def random_pair(
    seed: int, dtype: str, shape_a: tuple[int, int], shape_b: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The whole matrices a and b of a job with random inputs of these shapes and ``seed``."""
    a = random_region(seed, 0, dtype, (0, shape_a[0]), (0, shape_a[1]))
    b = random_region(seed, 1, dtype, (0, shape_b[0]), (0, shape_b[1]))
    return a, b


def normal_pair(
    seed: int, shape_a: tuple[int, int], shape_b: tuple[int, int], dtype_a: str = "float64", dtype_b: str = "float64"
) -> tuple[np.ndarray, np.ndarray]:
    """Two standard-normal matrices, for inputs a user supplies as files."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape_a).astype(dtype_a), rng.standard_normal(shape_b).astype(dtype_b)


def brute_force_phi(
    table: np.ndarray, grid: Sequence[int], origin: Sequence[float] = (0.0, 0.0, 0.0), spacing: float = 1.0,
    softening: float = 0.0, precision: str = "float64",
) -> tuple[np.ndarray, np.ndarray]:
    """φ and its error scale Σ|e|/d at every grid point, in float64.

    Coordinates and the table are first rounded to ``precision``, as the kernel sees them,
    so a float32 job is compared with the exact answer to its own inputs. Points are taken
    a block at a time to keep the pairwise distances small in memory.
    """
    axes = [(origin[a] + spacing * np.arange(grid[a], dtype=np.float64)).astype(precision).astype(np.float64)
            for a in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    rounded = table.astype(precision).astype(np.float64)
    pos, energy = rounded[:, :3], rounded[:, 3]
    phi, scale = np.empty(len(points)), np.empty(len(points))
    for start in range(0, len(points), 512):
        block = points[start : start + 512]
        inv = 1.0 / np.sqrt(((block[:, None, :] - pos[None, :, :]) ** 2).sum(-1) + softening * softening)
        phi[start : start + 512] = inv @ energy
        scale[start : start + 512] = inv @ np.abs(energy)
    shape = tuple(int(n) for n in grid)
    return phi.reshape(shape), scale.reshape(shape)


def argmin_index(field: np.ndarray) -> list[int]:
    """The (i, j, k) of the lowest value, first in C order on ties: how results name the minimum."""
    return [int(v) for v in np.unravel_index(int(np.argmin(field)), field.shape)]


def report_tiles_concurrently(
    jobs: Any, job_id: str, orders: Sequence[Sequence[int]], make_tile: Callable[[int, int], Any],
    *, mark_started: bool = False,
) -> list[int]:
    """Report tiles done from one thread per order, all released at once; return the tile ids
    whose report this store counted (each should appear once). ``make_tile(tile_id, thread)``
    builds the TileResult. A thread's exception is re-raised here, never lost."""
    import threading

    wins: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    gate = threading.Barrier(len(orders))

    def report(seed: int) -> None:
        try:
            gate.wait()
            for tile_id in orders[seed]:
                attempt = jobs.tile_started(job_id, tile_id, f"t{seed}", "lambda", 1.0) if mark_started else None
                if jobs.record_tile_done(job_id, make_tile(tile_id, seed), attempt=attempt):
                    with lock:
                        wins.append(tile_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=report, args=(s,)) for s in range(len(orders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return wins


def scheduled(config: Any) -> tuple[Any, Callable[[str], Any]]:
    """The ports of ``config``'s home and a function that runs one submitted job there to
    its end on the home's scheduler, as ``tilefan run`` and the Python API do."""
    from tilefan.bootstrap import build_scheduler, embedded_ports

    def run(job_id: str) -> Any:
        return build_scheduler(config, only={job_id}).run_until_done(job_id)

    return embedded_ports(config.home), run

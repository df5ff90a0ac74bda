"""How long a plan takes on this machine's process pool (the dry-run's "time here").

The route estimates (``routing``) are for AWS: a six-vCPU Lambda, a 16-vCPU spot worker.
Here each worker is one core, and a job costs more than its tiles' arithmetic: the pool's
processes start, every tile pays a fixed cost (its job read, its store writes, opening
the output), seeded inputs are generated and outputs written at memory speed, and the
merge verifies the result by reading A, B and C again. Each term has a rate in
``LocalRates``; ``benchmarks/time_here.py`` measures them from whole jobs (BENCHMARKS.md
has the figures, and predicted against measured times).
"""

from __future__ import annotations

from dataclasses import dataclass

# One list scheduler for both estimates: here each worker is a slot, with no cold start.
from tilefan.domain.cost_model import makespan
from tilefan.domain.plan import Plan, block_bytes_in
from tilefan.domain.spec.parse import AtomsSpec, JobSpec, Kind


@dataclass(frozen=True)
class LocalRates:
    """Per worker (one core): the means of three runs of ``benchmarks/time_here.py`` on the
    2-core development machine while other work kept its load average at 10–15
    (BENCHMARKS.md). An idle machine runs faster than this predicts."""

    pool_start_s: float = 0.14  # fork the workers, open their stores
    tile_overhead_s: float = 0.01  # per tile, outside its own work: job read, store writes, dispatch
    gemm_gflops: float = 14.0  # NumPy's BLAS on one thread
    atoms_gflops: float = 0.37  # the NumPy atoms kernel (10 flops a pair)
    atoms_compiled_gflops: float = 2.4  # the numba kernel (the ``fast`` extra)
    data_mb_s: float = 67.0  # bytes a tile generates or reads, plus those it writes
    verify_mb_s: float = 300.0  # bytes of A, B and C the check reads or regenerates

    def tile_seconds(self, flops: int, io_bytes: int, *, kind: Kind, compiled: bool = False) -> float:
        """One tile: its fixed cost, its arithmetic, its data.

        >>> LocalRates(tile_overhead_s=0.1, gemm_gflops=10, data_mb_s=100).tile_seconds(
        ...     10**10, 10**8, kind=Kind.MATMUL)
        2.1
        """
        if kind is Kind.MATMUL:
            arithmetic = flops / (self.gemm_gflops * 1e9)
        elif kind is Kind.ATOMS:
            arithmetic = flops / ((self.atoms_compiled_gflops if compiled else self.atoms_gflops) * 1e9)
        else:
            arithmetic = 0.0  # an add is all memory traffic: its data term covers it
        return self.tile_overhead_s + arithmetic + io_bytes / (self.data_mb_s * 1e6)


@dataclass(frozen=True)
class LocalEstimate:
    pool_s: float  # starting the pool (0 when tiles run in the calling process)
    tiles_s: float  # the tiles on the workers, longest first (the makespan)
    merge_s: float  # reduce, commit, and verification when asked for
    workers: int

    @property
    def total_s(self) -> float:
        return self.pool_s + self.tiles_s + self.merge_s


def verify_bytes(spec: JobSpec) -> int:
    """What verification reads or regenerates: A, B and C for a matrix job; nothing
    measurable for atoms (64 points).

    >>> from tilefan.domain.spec.resolved import MatrixSpec, RandomMatrix
    >>> m = RandomMatrix(shape=(100, 50), dtype="float64", seed=0, stream=0)
    >>> verify_bytes(MatrixSpec(Kind.ADD, m, m, None, (10, 10), True))
    120000
    """
    if isinstance(spec, AtomsSpec) or not spec.verify:
        return 0
    itemsize = 4 if spec.dtype == "float32" else 8
    (m, k), (k2, n) = spec.a.shape, spec.b.shape
    out = spec.out_shape
    return itemsize * (m * k + k2 * n + out[0] * out[1])


def estimate_here(plan: Plan, spec: JobSpec, workers: int, rates: LocalRates, *, compiled: bool = False,
                  inline: bool | None = None) -> LocalEstimate:
    """The job's time on ``workers`` local processes. ``inline`` (default: one tile, or one
    worker) means the tiles run in the calling process, with no pool to start."""
    kind = spec.kind
    # Local reads are memory-mapped slices: a tile touches its blocks, not whole rows.
    durations = sorted((rates.tile_seconds(t.flops, block_bytes_in(spec, t) + t.bytes_out, kind=kind,
                                           compiled=compiled) for t in plan.tiles), reverse=True)
    if inline is None:
        inline = workers <= 1 or len(durations) <= 1
    merge = rates.tile_overhead_s + verify_bytes(spec) / (rates.verify_mb_s * 1e6)
    return LocalEstimate(pool_s=0.0 if inline else rates.pool_start_s,
                         tiles_s=makespan(durations, 1 if inline else workers), merge_s=merge,
                         workers=1 if inline else min(workers, len(durations)))


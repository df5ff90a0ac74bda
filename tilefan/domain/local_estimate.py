"""How long a plan takes on this machine (the dry run's "time here").

The route estimates (``routing``) are for AWS: a six-vCPU Lambda, a 16-vCPU spot worker.
Here a job runs its tiles where ``inline_tiles.runs_inline`` says, as the scheduler does:

- right here in the calling process, one after another, each on every core: a small
  matmul (BLAS threads), an atoms job on the C kernel (its threads), a one-tile job;
- else on a pool of one-core worker processes, which costs their start.

A job costs more than its tiles' arithmetic: every tile pays a fixed cost (its job read,
its store writes, opening the output), seeded inputs are generated and outputs written
at memory speed, and the merge verifies the result by reading A, B and C again. Each
term has a rate in ``LocalRates``; ``benchmarks/time_here.py`` measures them from whole
jobs (BENCHMARKS.md has the figures, and predicted against measured times).
"""

from __future__ import annotations

from dataclasses import dataclass

# One list scheduler for both estimates: here each worker is a slot, with no cold start.
from tilefan.domain.cost_model import makespan
from tilefan.domain.inline_tiles import runs_inline
from tilefan.domain.plan import FLOPS_PER_PAIR, Plan, block_bytes_in
from tilefan.domain.spec.parse import AtomsSpec, JobSpec, Kind


@dataclass(frozen=True)
class LocalRates:
    """Per core: the medians of three ``benchmarks/time_here.py --repeat 3`` on the 2-core
    development machine (AVX2, quiet; BENCHMARKS.md). A tile on every core runs at the
    per-core rate times the cores. The C atoms rates are measured on every core and
    divided by the cores, so the threads' efficiency is in them; BLAS is measured on the
    pool's one-core workers and taken to scale with the cores (the make-run matmul, on two
    cores in the calling process, is estimated 24% above its best run: BENCHMARKS.md)."""

    pool_start_s: float = 0.03  # fork the workers, open their stores
    tile_overhead_s: float = 0.002  # per tile, outside its own work: job read, store writes, dispatch
    gemm_gflops: float = 35.0  # NumPy's BLAS (OpenBLAS, float64)
    numpy_f64_gpairs: float = 0.23  # the NumPy atoms kernel, G atom–point pairs/s
    numpy_f32_gpairs: float = 0.41
    c_f64_gpairs: float = 1.29  # the C atoms kernel (AVX2 build)
    c_f32_gpairs: float = 5.66
    data_mb_s: float = 390.0  # bytes a tile generates or reads, plus those it writes
    verify_mb_s: float = 1100.0  # bytes of A, B and C the check reads or regenerates

    def atoms_pairs_s(self, precision: str, compiled: bool) -> float:
        """Atom–point pairs a second on one core."""
        f32 = precision == "float32"
        if compiled:
            return 1e9 * (self.c_f32_gpairs if f32 else self.c_f64_gpairs)
        return 1e9 * (self.numpy_f32_gpairs if f32 else self.numpy_f64_gpairs)

    def tile_seconds(self, flops: int, io_bytes: int, *, kind: Kind, compiled: bool = False,
                     precision: str = "float64", cores: int = 1) -> float:
        """One tile on ``cores`` cores: its fixed cost, its arithmetic, its data.

        >>> LocalRates(tile_overhead_s=0.1, gemm_gflops=10, data_mb_s=100).tile_seconds(
        ...     10**10, 10**8, kind=Kind.MATMUL)
        2.1
        >>> LocalRates(tile_overhead_s=0.0, c_f32_gpairs=2.0).tile_seconds(
        ...     4 * 10**10, 0, kind=Kind.ATOMS, compiled=True, precision="float32", cores=2)
        1.0
        """
        if kind is Kind.MATMUL:
            arithmetic = flops / (self.gemm_gflops * 1e9 * cores)
        elif kind is Kind.ATOMS:
            arithmetic = flops / FLOPS_PER_PAIR / (self.atoms_pairs_s(precision, compiled) * cores)
        else:
            arithmetic = 0.0  # an add is all memory traffic: its data term covers it
        return self.tile_overhead_s + arithmetic + io_bytes / (self.data_mb_s * 1e6)


@dataclass(frozen=True)
class LocalEstimate:
    pool_s: float  # starting the pool (0 when tiles run in the calling process)
    tiles_s: float  # the tiles on the workers, longest first (the makespan)
    merge_s: float  # reduce, commit, and verification when asked for
    workers: int  # processes computing tiles: 1 when they run in the calling process
    cores: int = 1  # cores a tile computes on
    inline: bool = False  # whether the tiles run in the calling process (no pool)

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
                  cores: int | None = None, held: bool = False) -> LocalEstimate:
    """The job's time run on its own here, with a pool of ``workers`` processes when it
    uses one, on ``cores`` cores (the process's CPUs; default: ``workers``). ``compiled``:
    the atoms kernel is the C one; ``held``: the output is built in memory (the Python
    API). The tiles run where the scheduler runs them (``runs_inline``, or one worker): in
    the calling process, a matmul's BLAS and the C kernel's threads on every core; on the
    pool, a core a worker, so more workers than cores take turns."""
    cores = max(1, cores or workers)
    inline = workers <= 1 or runs_inline(spec, len(plan.tiles), compiled, held)
    spread = spec.kind is Kind.MATMUL or (spec.kind is Kind.ATOMS and compiled)
    per_tile = cores if inline and spread else 1
    precision = spec.precision if isinstance(spec, AtomsSpec) else spec.dtype
    # Local reads are memory-mapped slices: a tile touches its blocks, not whole rows.
    durations = sorted((rates.tile_seconds(t.flops, block_bytes_in(spec, t) + t.bytes_out, kind=spec.kind,
                                           compiled=compiled, precision=precision, cores=per_tile)
                        for t in plan.tiles), reverse=True)
    merge = rates.tile_overhead_s + verify_bytes(spec) / (rates.verify_mb_s * 1e6)
    slots = 1 if inline else min(workers, cores)
    return LocalEstimate(pool_s=0.0 if inline else rates.pool_start_s,
                         tiles_s=makespan(durations, slots), merge_s=merge,
                         workers=1 if inline else min(workers, len(durations)), cores=per_tile, inline=inline)

"""Where a job run on its own (``tilefan run``, the Python API) computes its tiles: right
here in the calling process, one after another on every core, or on a pool of one-core
worker processes.

One decision for the embedded scheduler, which acts on it, and for the dry run's "time
here" (``local_estimate``), which predicts it: both must agree or the estimate describes
a run that never happens. Pure: it depends on the spec, the tile count, whether the atoms
kernel computes on threads (the C kernel releases the GIL; NumPy's holds it between its
array operations) and whether the output is built in this process's memory. A matmul
whose output is built there runs here at any size, so the tiles it gets when the user names
none are cut for that (``held_matmul_tile``, applied by the submit step).
"""

from __future__ import annotations

import math

from tilefan.domain.chunks import chunked_ref
from tilefan.domain.spec.parse import AtomsSpec, JobSpec, Kind, MatrixSpec, StoredMatrix

# A matmul of at most this many flops runs its tiles in the calling process, one after
# another, with BLAS on every core: starting and stopping a pool of one-thread workers
# (forks, its manager thread, the kill) took about 0.1 s in a profile of a second
# ``tilefan.matmul`` at 2000×1500·1500×1000, and 2·10¹⁰ flops is about 0.2 s of GEMM on two
# cores at ~100 GFLOP/s. A bigger matmul keeps the pool (benchmarks/matmul_e2e.py --api).
INLINE_MATMUL_FLOP = 2e10
# A matmul whose output is built in this process's memory (``MemoryOutputs``: the Python
# API's temporary home) runs here at any size: filling those pages costs less than the
# file-backed pages the pool's workers would write. Measured at 4096³ against ``a @ b``
# (BENCHMARKS.md, the temporary home in memory): 1.06× here and 1.11× through the pool;
# with a file output the other way round, 1.20× here and 1.11× through the pool, so the
# limit above stays for files.
HELD_INLINE_MATMUL_FLOP = math.inf

# Such a matmul's tiles, when the user names none, are full-width row panels: run here one
# after another, tiles buy only progress and cancellation points, and each is a GEMM call
# that packs its A rows and all its B columns again. A second ``tilefan.matmul`` at 4096³
# float64, medians of five against ``a @ b`` at 1.335 s (BENCHMARKS.md, the held
# matmul's tiles): four 2048² tiles (the pool's default) 1.396 s, four panels of 1,024 rows
# 1.476 s, two of 2,048 rows 1.335 s, one tile 1.332 s. So at most HELD_PANELS panels, of
# at least HELD_PANEL_ROWS rows: progress in quarters of a big job, nothing lost on a small one.
# Only for inputs every tile reads in place (``reads_in_place``): a panel's B is all of B,
# which a tile converting its dtype, generating it or reading it from chunks would copy whole.
HELD_PANELS = 4
HELD_PANEL_ROWS = 2048

# An atoms job run on its own with the C kernel computes its tiles in the calling process,
# one after another, each on threads over every core (``compute/threads.py``: ctypes
# releases the GIL). A pool adds nothing there (its workers would share the same cores
# through tokens) and costs the forks, each worker's store, the dispatcher's round trip
# between two tiles of one worker and the kill at the end: 2-5% of a 1.8 s run of 256³
# float32 (BENCHMARKS.md). ``tilefan serve`` keeps the pool, and with it the isolation of a
# tile that crashes its process. False sends these tiles to the pool as before.
INLINE_ATOMS_C = True


def held_matmul_tile(out_shape: tuple[int, int]) -> tuple[int, int]:
    """The default tile of a matmul whose output is built in this process's memory (so it
    runs here, ``runs_inline``): row panels as wide as the output, at most HELD_PANELS of
    them, at least HELD_PANEL_ROWS rows each (a multiple of 256, BLAS-friendly).

    >>> held_matmul_tile((4096, 4096)), held_matmul_tile((8192, 8192))
    ((2048, 4096), (2048, 8192))
    >>> held_matmul_tile((2000, 1000)), held_matmul_tile((100_000, 1000))
    ((2000, 1000), (25088, 1000))
    """
    m, n = out_shape
    rows = -(-max(HELD_PANEL_ROWS, -(-m // HELD_PANELS)) // 256) * 256
    return (min(m, rows), n)


def reads_in_place(spec: MatrixSpec) -> bool:
    """Whether the job's tiles read both inputs without a copy: stored ``.npy`` arrays (held
    in memory or mapped), already in the job's dtype.

    >>> from dataclasses import replace
    >>> from tilefan.domain.spec.parse import RandomMatrix
    >>> a = StoredMatrix(file="/d/a.npy", shape=(4, 3), dtype="float64")
    >>> spec = MatrixSpec(Kind.MATMUL, a, replace(a, file="/d/b.npy", shape=(3, 2)), None, (4, 2), False)
    >>> reads_in_place(spec)
    True
    >>> others = (replace(spec.b, dtype="float32"), replace(spec.b, file="/d/b.zarr"),
    ...           RandomMatrix(shape=(3, 2), dtype="float64", seed=0, stream=1))
    >>> [reads_in_place(replace(spec, b=b)) for b in others]
    [False, False, False]
    """
    return all(isinstance(m, StoredMatrix) and chunked_ref(m.file) is None and m.dtype == spec.dtype
               for m in (spec.a, spec.b))


def runs_inline(spec: JobSpec, tiles: int, threaded_kernel: bool, held: bool = False) -> bool:
    """Whether a job run on its own computes its tiles right here; ``threaded_kernel``
    whether its atoms kernel computes on threads (the C kernel), ``held`` whether its
    output is built in this process's memory.

    >>> from dataclasses import replace
    >>> from tilefan.domain.spec.parse import RandomMatrix
    >>> a = RandomMatrix(shape=(2000, 1500), dtype="float64", seed=0, stream=0)
    >>> b = RandomMatrix(shape=(1500, 1000), dtype="float64", seed=0, stream=1)
    >>> small = MatrixSpec(Kind.MATMUL, a, b, None, (1024, 1024), False)
    >>> runs_inline(small, 2, False), runs_inline(replace(small, kind=Kind.ADD), 2, False)
    (True, False)
    >>> big = replace(small, a=replace(a, shape=(4096, 4096)), b=replace(b, shape=(4096, 4096)))
    >>> runs_inline(big, 16, False), runs_inline(big, 16, False, held=True)
    (False, True)
    """
    if tiles == 1:
        return True  # starting a pool would cost more than the tile
    if isinstance(spec, MatrixSpec) and spec.kind is Kind.MATMUL:
        (m, k), n = spec.a.shape, spec.b.shape[1]
        return 2.0 * m * k * n <= (HELD_INLINE_MATMUL_FLOP if held else INLINE_MATMUL_FLOP)
    if isinstance(spec, AtomsSpec):
        return INLINE_ATOMS_C and threaded_kernel
    return False

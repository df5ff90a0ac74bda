"""The C atoms kernel (``atoms_kernel.c``), loaded with ctypes: what ships in Lambda.

``make kernel`` (and ``make package``, for the deployment zip and the worker wheel)
compiles ``atoms_kernel.c`` into ``_atoms_kernel.so`` beside this module. The library
needs no libc symbol, so one build serves the Lambda runtime (glibc 2.26), the spot
workers and this machine; it runs its AVX-512, AVX2 or baseline build, the fastest the CPU
supports for the precision (``preferred_level``). Loading
takes milliseconds, unlike numba's compile-or-cache step, and nothing else is imported.
``load()`` returns None when the library is absent (a checkout where it was never built,
or a CPU it cannot run on) or was built from another version of ``atoms_kernel.c`` (its
calling convention differs), and ``kernel_choice`` decides what to fall back to.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tilefan.compute import threads
from tilefan.domain.kernels import grid_axes
from tilefan.domain.tiling import Region

LIBRARY = Path(__file__).with_name("_atoms_kernel.so")
AtomsFn = Callable[..., np.ndarray]
# The kernel's table of (z_k - z_a)^2 for a block of atoms, read by every row of a tile: sized
# to stay in a core's L2 cache beside the row (BENCHMARKS.md, the atoms' z offsets computed
# once per block of atoms). Never less than two rows' worth, which one atom's table (and its
# float32 copy, in the AVX2 float64 build) needs.
SCRATCH_BYTES = 128 * 1024
# The calling convention this module speaks (``tilefan_kernel_abi`` in atoms_kernel.c): a
# library built from another version of the source is treated as absent, never miscalled.
ABI = 3

_loaded: dict[Path, ctypes.CDLL | None] = {}


def _library(path: Path) -> ctypes.CDLL | None:
    if path not in _loaded:
        lib: ctypes.CDLL | None
        try:
            lib = ctypes.CDLL(str(path))
            lib.tilefan_kernel_abi.restype = ctypes.c_int
            if lib.tilefan_kernel_abi() != ABI:
                lib = None
        except (OSError, AttributeError):  # absent, built for another machine, or before the version
            lib = None
        if lib is not None:
            lib.tilefan_kernel_level.restype = ctypes.c_int
            best = int(lib.tilefan_kernel_level())
            for bits, real, at in ((b, r, a) for b, r in ((32, ctypes.c_float), (64, ctypes.c_double))
                                   for a in range(1, best + 1)):
                fn = getattr(lib, f"tilefan_phi_f{bits}_l{at}")
                fn.restype = None
                fn.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_void_p,
                               ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_ssize_t, real, ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_void_p]
        _loaded[path] = lib
    return _loaded[path]


def level(path: Path = LIBRARY) -> int:
    """The build the library runs on this CPU: 3 (AVX-512), 2 (AVX2 and FMA), 1 (baseline),
    0 (no library)."""
    lib = _library(path)
    return int(lib.tilefan_kernel_level()) if lib is not None else 0


def halves_512(cpuinfo: str) -> bool:
    r"""Whether the CPU ``/proc/cpuinfo`` describes runs 512-bit instructions as two 256-bit
    halves: AMD's family 25 (Zen 3 and Zen 4; of them only Zen 4 has AVX-512). On a Zen 4
    the float32 loop is faster in its AVX2 build, 7.1-7.3 against 6.2-6.5 G pairs/s a
    thread, while float64 is faster in its AVX-512 build, 2.48-2.50 against 2.23-2.38
    (BENCHMARKS.md, "The kernel's build chosen per precision").

    >>> halves_512("vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n")
    True
    >>> halves_512("vendor_id\t: GenuineIntel\ncpu family\t: 6\n")
    False
    """
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in cpuinfo.splitlines())}
    return fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"


@functools.cache
def _this_cpu_halves_512() -> bool:
    try:
        with open("/proc/cpuinfo") as info:  # Linux, as on Lambda and the spot workers
            return halves_512(info.read(4096))  # the first processor's lines
    except OSError:
        return False


def preferred_level(precision: str, best: int) -> int:
    """The build a tile in ``precision`` runs, of those up to ``best`` the CPU supports.

    >>> preferred_level("float64", 3), preferred_level("float32", 2)
    (3, 2)
    """
    if best == 3 and precision == "float32" and _this_cpu_halves_512():
        return 2
    return best


def load(path: Path = LIBRARY, use_level: int | None = None) -> AtomsFn | None:
    """The C kernel as an ``atoms_potential``-shaped function, or None without the library.

    ``use_level`` runs a lower build than the CPU's best (benchmarks compare them). The
    function is a module-level one (or a partial of one) so the process pool can pickle it.
    """
    if _library(path) is None:
        return None
    if path == LIBRARY and use_level is None:
        return atoms_potential_c
    return functools.partial(_run, path, use_level)


def atoms_potential_c(
    table: np.ndarray, origin: tuple[float, float, float], spacing: float, softening: float, region: Region,
    precision: str,
) -> np.ndarray:
    """φ over ``region`` by the C kernel's fastest build for this CPU, in ``precision``."""
    return _run(LIBRARY, None, table, origin, spacing, softening, region, precision)


def _run(
    path: Path, use_level: int | None, table: np.ndarray, origin: tuple[float, float, float], spacing: float,
    softening: float, region: Region, precision: str,
) -> np.ndarray:
    library = _library(path)
    if library is None:
        raise RuntimeError(f"the C atoms kernel is not built ({path.name} is missing, or was built from another "
                           "version of atoms_kernel.c): run make kernel")
    best = min(level(path), use_level) if use_level else preferred_level(precision, level(path))
    xs, ys, zs = grid_axes(origin, spacing, region, precision)
    phi = np.zeros((len(xs), len(ys), len(zs)), dtype=precision)
    fn = getattr(library, f"tilefan_phi_f{8 * phi.dtype.itemsize}_l{best}")
    eps2 = float(np.asarray(softening * softening, dtype=precision))
    ax, ay, az, ae = (np.ascontiguousarray(row) for row in table.T.astype(precision))
    size, nj, nk = phi.dtype.itemsize, len(ys), len(zs)

    def rows(i0: int, i1: int, j0: int, j1: int) -> None:
        # ctypes releases the GIL for the call, so threads compute their rows in parallel,
        # each with scratch of its own for the atoms' z offsets.
        scratch = np.empty(max(SCRATCH_BYTES // size, 2 * nk), dtype=phi.dtype)
        fn(xs.ctypes.data + i0 * size, i1 - i0, ys.ctypes.data + j0 * size, j1 - j0, zs.ctypes.data, nk,
           ax.ctypes.data, ay.ctypes.data, az.ctypes.data, ae.ctypes.data, len(ae), eps2,
           scratch.ctypes.data, len(scratch), phi.ctypes.data + (i0 * nj + j0) * nk * size)

    threads.for_each_slab(len(xs), nj, rows, work_per_row=float(nk * len(ae)))
    return phi

"""Which atoms kernel a run uses: the one decision for the process pool, the spot worker
and the tile Lambda.

Two compiled kernels exist. The C kernel (``ckernel``, built by ``make kernel`` and by
``make package``) loads in milliseconds and is the only one that fits in Lambda. numba's
(``fastkernels``, the ``fast`` extra) takes a few hundred milliseconds to load in each
process but its float32 loop is faster, so it wins whole big runs (BENCHMARKS.md).
``TILEFAN_KERNEL`` is ``numpy``, ``compiled`` or ``auto``:

- ``numpy`` always runs the NumPy kernel;
- ``auto``, for a big job (at least COMPILED_KERNEL_MIN_PAIRS atom–point pairs) or on a
  spot worker (no one job known): numba, else the C kernel, else NumPy; for a smaller job:
  the C kernel, else NumPy (numba would spend longer loading than NumPy computing);
- ``compiled`` is the same with NumPy ruled out: a demand that fails loudly rather than
  run many times slower than asked.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tilefan.domain import ckernel, fastkernels, kernels
from tilefan.errors import InvalidSpecError

AtomsKernel = Callable[..., np.ndarray]
Loader = Callable[[], AtomsKernel | None]

KERNEL_CHOICES = ("auto", "numpy", "compiled")
# Below this many atom–point pairs the NumPy kernel finishes before numba would load.
COMPILED_KERNEL_MIN_PAIRS = 100_000_000


def choose_atoms_kernel(
    choice: str, pairs: int | None = None, *, load: Loader | None = None, load_c: Loader | None = None,
) -> AtomsKernel:
    """The atoms kernel for ``choice``; ``pairs`` (atoms × grid points) when one job is known.

    ``load`` is numba's loader (``fastkernels.load``) and ``load_c`` the C kernel's
    (``ckernel.load``), each looked up at call time.

    >>> choose_atoms_kernel("numpy") is kernels.atoms_potential
    True
    >>> choose_atoms_kernel("auto", load=lambda: None, load_c=lambda: None) is kernels.atoms_potential
    True
    >>> choose_atoms_kernel("compiled", load=lambda: None, load_c=lambda: None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tilefan.errors.InvalidSpecError: TILEFAN_KERNEL: compiled needs numba or the C kernel...
    """
    if choice not in KERNEL_CHOICES:
        raise InvalidSpecError("TILEFAN_KERNEL", f"must be auto, numpy or compiled, got {choice!r}")
    if choice == "numpy":
        return kernels.atoms_potential
    big = pairs is None or pairs >= COMPILED_KERNEL_MIN_PAIRS
    # Loaders are tried in order and only as far as needed: numba's costs a second.
    loaders: list[Loader] = [load or fastkernels.load, load_c or ckernel.load] if big else [load_c or ckernel.load]
    if not big and choice == "compiled":
        loaders.append(load or fastkernels.load)
    for loader in loaders:
        kernel = loader()
        if kernel is not None:
            return kernel
    if choice == "compiled":
        raise InvalidSpecError("TILEFAN_KERNEL",
                               "compiled needs numba or the C kernel (make kernel): use auto or numpy")
    return kernels.atoms_potential

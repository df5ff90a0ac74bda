"""Which atoms kernel a run uses: the one decision for the process pool, the spot worker
and the tile Lambda.

Two compiled kernels exist. The C kernel (``ckernel``, built by ``make kernel`` and by
``make package``) loads in milliseconds and is the only one that fits in Lambda. numba's
(``fastkernels``, the ``fast`` extra) takes about a second to load or compile in each
process. ``TILEFAN_KERNEL`` is ``numpy``, ``compiled`` or ``auto``:

- ``numpy`` always runs the NumPy kernel;
- ``auto`` takes the C kernel whenever it is built, else numba where it pays (a job of at
  least COMPILED_KERNEL_MIN_PAIRS atom–point pairs, or any job on a spot worker), else NumPy;
- ``compiled`` is a demand: the C kernel, else numba, else it fails loudly rather than
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
    tilefan.errors.InvalidSpecError: TILEFAN_KERNEL: compiled needs the C kernel (make kernel) or numba...
    """
    if choice not in KERNEL_CHOICES:
        raise InvalidSpecError("TILEFAN_KERNEL", f"must be auto, numpy or compiled, got {choice!r}")
    if choice == "numpy":
        return kernels.atoms_potential
    c_kernel = (load_c or ckernel.load)()
    if c_kernel is not None:
        return c_kernel
    if choice == "auto" and pairs is not None and pairs < COMPILED_KERNEL_MIN_PAIRS:
        return kernels.atoms_potential
    fast = (load or fastkernels.load)()
    if fast is not None:
        return fast
    if choice == "compiled":
        raise InvalidSpecError("TILEFAN_KERNEL",
                               "compiled needs the C kernel (make kernel) or numba: use auto or numpy")
    return kernels.atoms_potential

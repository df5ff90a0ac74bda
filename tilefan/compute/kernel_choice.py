"""Which atoms kernel a run uses: the one decision for the process pool, the spot worker
and the tile Lambda.

The C kernel (``ckernel``) is the fastest on every CPU measured, in both precisions and on
every core of the process (BENCHMARKS.md, "Which kernel"), and loads in milliseconds.
``pip install`` builds it whenever a C compiler is present (``setup.py``), as do
``make kernel`` and ``make package``. The NumPy kernel is the fallback and the reference.
``TILEFAN_KERNEL`` is ``numpy``, ``compiled`` or ``auto``:

- ``numpy`` always runs the NumPy kernel;
- ``auto`` runs the C kernel, else NumPy's, and then says once, in one line, how to get
  the fast one (a ``SlowKernelWarning``);
- ``compiled`` is ``auto`` with NumPy ruled out: a demand that fails loudly rather than
  run many times slower than asked.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from tilefan.compute import ckernel
from tilefan.domain import kernels
from tilefan.errors import InvalidSpecError

AtomsKernel = Callable[..., np.ndarray]
Loader = Callable[[], AtomsKernel | None]

KERNEL_CHOICES = ("auto", "numpy", "compiled")
HOW_TO_GET_C = ("install a C compiler (apt-get install gcc) and reinstall tilefan "
                "(pip install --force-reinstall --no-deps tilefan), or run make kernel in a checkout")


class SlowKernelWarning(UserWarning):
    """The NumPy atoms kernel runs because the C kernel is not built in this install."""


def choose_atoms_kernel(choice: str, *, load_c: Loader | None = None) -> AtomsKernel:
    """The atoms kernel for ``choice``; ``load_c`` is the C kernel's loader (``ckernel.load``).

    >>> choose_atoms_kernel("numpy") is kernels.atoms_potential
    True
    >>> choose_atoms_kernel("compiled", load_c=lambda: None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tilefan.errors.InvalidSpecError: TILEFAN_KERNEL: compiled needs the C kernel...
    """
    if choice not in KERNEL_CHOICES:
        raise InvalidSpecError("TILEFAN_KERNEL", f"must be auto, numpy or compiled, got {choice!r}")
    if choice == "numpy":
        return kernels.atoms_potential
    kernel = (load_c or ckernel.load)()
    if kernel is not None:
        return kernel
    if choice == "compiled":
        raise InvalidSpecError("TILEFAN_KERNEL", "compiled needs the C kernel, which is not built for this "
                               f"version of tilefan: {HOW_TO_GET_C}")
    warnings.warn(SlowKernelWarning("the C atoms kernel is not built for this version of tilefan, so the NumPy "
                                    f"kernel (about 5-20x slower) runs; to get the fast one, {HOW_TO_GET_C}"),
                  stacklevel=2)
    return kernels.atoms_potential

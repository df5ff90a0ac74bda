"""Which atoms kernel a run uses: the one decision for the process pool and the spot worker.

``TILEFAN_KERNEL`` is ``numpy``, ``compiled`` or ``auto``. ``compiled`` is a demand: when
numba is not installed it fails loudly rather than run many times slower than asked.
``auto`` uses the compiled kernel where it pays (numba takes about a second to load, more
than the NumPy kernel needs for a small job) and falls back to NumPy when it is missing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tilefan.domain import fastkernels, kernels
from tilefan.errors import InvalidSpecError

AtomsKernel = Callable[..., np.ndarray]

KERNEL_CHOICES = ("auto", "numpy", "compiled")
# Below this many atom–point pairs the NumPy kernel finishes before numba would load.
COMPILED_KERNEL_MIN_PAIRS = 100_000_000


def choose_atoms_kernel(
    choice: str, pairs: int | None = None, *, load: Callable[[], AtomsKernel | None] | None = None
) -> AtomsKernel:
    """The atoms kernel for ``choice``; ``pairs`` (atoms × grid points) when one job is known.

    Without ``pairs`` (a spot worker serves many jobs, all big enough to be sent there)
    ``auto`` takes the compiled kernel when it can. ``load`` is the compiled kernel's loader
(``fastkernels.load``, looked up at call time).

    >>> choose_atoms_kernel("numpy") is kernels.atoms_potential
    True
    >>> choose_atoms_kernel("auto", load=lambda: None) is kernels.atoms_potential
    True
    >>> choose_atoms_kernel("compiled", load=lambda: None)
    Traceback (most recent call last):
    ...
    tilefan.errors.InvalidSpecError: TILEFAN_KERNEL: compiled needs numba, which is not installed; use auto or numpy
    """
    if choice not in KERNEL_CHOICES:
        raise InvalidSpecError("TILEFAN_KERNEL", f"must be auto, numpy or compiled, got {choice!r}")
    if choice == "numpy" or (choice == "auto" and pairs is not None and pairs < COMPILED_KERNEL_MIN_PAIRS):
        return kernels.atoms_potential
    fast = (load or fastkernels.load)()
    if fast is not None:
        return fast
    if choice == "compiled":
        raise InvalidSpecError("TILEFAN_KERNEL", "compiled needs numba, which is not installed; use auto or numpy")
    return kernels.atoms_potential

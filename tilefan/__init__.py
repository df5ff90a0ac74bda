"""tilefan: run big numeric jobs as a tiled fan-out (plan → tiles → reduce).

Dependencies point inwards: ``domain`` (pure specs, tiling, kernels) ← ``pipeline``
(plan/tile/reduce over ports) ← ``adapters`` (embedded and AWS implementations of the
ports) ← ``entrypoints`` (CLI, REST, Lambda doors). ``bootstrap`` wires them together.

The Python API (``tilefan.matmul``, ``tilefan.add``, ``tilefan.atoms``, ``tilefan.Client``) is loaded on first
use, so ``import tilefan`` stays cheap for the Lambda doors.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("tilefan")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_API = {"matmul", "add", "atoms", "AtomsResult", "JobFailedError"}

__all__ = ["AtomsResult", "Client", "JobFailedError", "__version__", "add", "atoms", "matmul"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module("tilefan.entrypoints.api"), name)
    if name == "Client":
        return import_module("tilefan.entrypoints.client").Client
    raise AttributeError(f"module 'tilefan' has no attribute {name!r}")

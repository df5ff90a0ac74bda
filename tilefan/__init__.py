"""tilefan: run big numeric jobs as a tiled fan-out (plan → tiles → reduce).

Dependencies point inwards: ``domain`` (pure specs, tiling, kernels) ← ``pipeline``
(plan/tile/reduce over ports) ← ``adapters`` (embedded and AWS implementations of the
ports) ← ``entrypoints`` (CLI, REST, Lambda doors). ``bootstrap`` wires them together.

The Python API (``tilefan.matmul``, ``tilefan.add``, ``tilefan.atoms``, ``tilefan.Client``) is loaded on first
use, so ``import tilefan`` stays cheap for the Lambda doors and the CLI; so is
``__version__`` (reading the installed metadata imports ``importlib.metadata`` and the
email parser, ~0.1 s).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_API = {"matmul", "add", "atoms", "AtomsResult", "JobFailedError"}

__all__ = ["AtomsResult", "Client", "JobFailedError", "__version__", "add", "atoms", "matmul"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tilefan")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    if name in _API:
        return getattr(import_module("tilefan.entrypoints.sdk.api"), name)
    if name == "Client":
        return import_module("tilefan.entrypoints.sdk.client").Client
    raise AttributeError(f"module 'tilefan' has no attribute {name!r}")

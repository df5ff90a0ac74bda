"""tilefan: run big numeric jobs as a tiled fan-out (plan → tiles → reduce).

The folders say which way dependencies point (docs/architecture.md has the tree and the
rules, and ``tests/unit/test_architecture.py`` checks them): ``domain`` (pure values and
arithmetic; ``domain.spec`` holds a job spec in every form) ← ``compute`` (the kernels that
load libraries, threads, the core budget) ← ``pipeline`` (submit, plan, tile, reduce over
ports) ← ``service`` (the application core every door calls) ← ``runtimes`` (the embedded
scheduler, Step Functions, the spot worker) and ``entrypoints`` (the doors: ``cli``,
``http``, ``sdk``, and ``report`` for what they show). ``adapters`` implement the ports
(embedded, AWS, memory), and ``bootstrap``, the only reader of the environment, wires them.

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

"""A backend's stores as the pipeline tests use them: the ports, plus a user's own files
written and listed through that backend's storage (a directory, a user's S3 bucket, or
keys of the in-memory store).

The stores themselves come from the store contract's builders, so the pipeline runs on
exactly the adapters that contract checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.functional.conftest import USER_BUCKET
from tests.functional.test_store_contract import Backend, _aws, _embedded, _memory
from tests.helpers import npy_bytes
from tilefan.pipeline.ports import Ports

# Where each backend's ``user_key`` puts a user's own files, as ``Backend.stored`` names them.
USER_AREA = {"embedded": "user/", "aws": f"{USER_BUCKET}/", "memory": "/user/"}


@dataclass
class Storage:
    """A backend's stores as the pipeline uses them, and what a test needs to look behind them."""

    be: Backend

    @property
    def ports(self) -> Ports:
        return self.be.ports

    def put_npy(self, name: str, array: np.ndarray) -> str:
        """A user's ``.npy`` file; its key, as a job names it."""
        return self.be.put_user_file(name, npy_bytes(array))

    def inputs(self, a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
        """``a`` and ``b`` as the user's A.npy and B.npy: the spec's inputs that read them."""
        return {"a": {"file": self.put_npy("A.npy", a)}, "b": {"file": self.put_npy("B.npy", b)}}

    def user_key(self, name: str) -> str:
        """Where a user's file of that name goes (for a job's ``out``)."""
        return self.be.user_key(name)

    def location(self, key: str) -> str:
        """How a committed output at ``key`` is reported (a local file by its resolved path)."""
        return str(Path(key).resolve()) if self.be.kind == "embedded" else key

    def user_files(self) -> list[str]:
        """The names in the user's area, hidden partial files included."""
        area = USER_AREA[self.be.kind]
        return sorted(name.removeprefix(area) for name in self.be.stored() if name.startswith(area))

    def partials(self) -> list[str]:
        """Everything held for an output that is not committed: partial files, parts."""
        return sorted(name for name in self.be.stored() if ".partial" in name or "/parts/" in name)



def storage_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """The stores of backend ``kind`` (AWS ones in moto, through ``request``'s fixtures)."""
    if kind == "embedded":
        return Storage(_embedded(tmp_path))
    return Storage(_aws(request) if kind == "aws" else _memory())

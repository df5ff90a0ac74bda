"""The one place that reads configuration and wires the backend together.

Nothing else in tilefan reads environment variables. ``TILEFAN_BACKEND`` picks
``embedded`` (default) or ``aws``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib.adapters.localfs import LocalBlobStore
from chalicelib.adapters.sqlite_store import SqliteJobStore
from chalicelib.domain.spec import Limits
from chalicelib.errors import InvalidSpecError
from chalicelib.pipeline.ports import Ports


@dataclass(frozen=True)
class Config:
    backend: str = "embedded"
    home: Path = field(default_factory=lambda: Path.home() / ".tilefan")
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    kernel: str = "auto"
    limits: Limits = field(default_factory=Limits)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidSpecError(name, f"must be an integer, got {raw!r}") from None
    if value < 1:
        raise InvalidSpecError(name, f"must be at least 1, got {value}")
    return value


def load_config(env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    defaults = Limits()
    limits = Limits(
        max_matrix_elements=_env_int(env, "TILEFAN_MAX_MATRIX_ELEMENTS", defaults.max_matrix_elements),
        max_dim=_env_int(env, "TILEFAN_MAX_DIM", defaults.max_dim),
        max_grid_points=_env_int(env, "TILEFAN_MAX_GRID_POINTS", defaults.max_grid_points),
        max_atoms=_env_int(env, "TILEFAN_MAX_ATOMS", defaults.max_atoms),
    )
    kernel = env.get("TILEFAN_KERNEL", "auto")
    if kernel not in ("auto", "numpy", "compiled"):
        raise InvalidSpecError("TILEFAN_KERNEL", f"must be auto, numpy or compiled, got {kernel!r}")
    home = Path(env["TILEFAN_HOME"]) if env.get("TILEFAN_HOME") else Path.home() / ".tilefan"
    return Config(
        backend=env.get("TILEFAN_BACKEND", "embedded"),
        home=home,
        workers=_env_int(env, "TILEFAN_WORKERS", os.cpu_count() or 1),
        kernel=kernel,
        limits=limits,
    )


def embedded_ports(home: Path) -> Ports:
    return Ports(blobs=LocalBlobStore(home / "blobs"), jobs=SqliteJobStore(home / "jobs.sqlite3"))


def build_embedded(config: Config):  # type: ignore[no-untyped-def]
    """Ports and runner for the embedded backend."""
    from chalicelib.adapters.pool_runner import LocalRunner, PoolSettings

    ports = embedded_ports(config.home)
    make_ports = functools.partial(embedded_ports, config.home)
    return ports, LocalRunner(ports, make_ports, PoolSettings(workers=config.workers, kernel=config.kernel))

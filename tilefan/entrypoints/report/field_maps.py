"""A field asked for as a map (``--field-out adk.dx``, ``atoms(field_out="adk.mrc")``).

Tiles write the field as a ``.npy``, so the job runs with a staged ``.npy`` beside the
target; once it succeeds the map is written from it (``tilefan.adapters.maps``) and the
staged file removed. The map is checked before the job starts (a DX too big, MRC without
its extra), so a refused map costs no run and writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tilefan.adapters.maps import check_map, map_format, write_map
from tilefan.domain.spec.parse import AtomsSpec, JobSpec


@dataclass(frozen=True)
class MapTarget:
    """Where the map goes, its format, and the ``.npy`` the job writes first."""

    target: Path
    fmt: str
    staged: Path


def stage_map(raw: dict[str, Any]) -> MapTarget | None:
    """Point ``raw``'s field_out at a staged ``.npy`` when it names a map; None otherwise."""
    fmt = map_format(raw.get("field_out"))
    if fmt is None:
        return None
    target = Path(raw["field_out"]).absolute()
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.npy")
    raw["field_out"] = str(staged)
    return MapTarget(target=target, fmt=fmt, staged=staged)


def check_target(target: MapTarget, grid: tuple[int, int, int]) -> None:
    """Raise InvalidSpecError (field_out) when this map cannot be written for this grid."""
    check_map(target.fmt, grid)


def map_check(target: MapTarget) -> Callable[[JobSpec], None]:
    """The submission's test of an admitted spec for this map: an atoms grid it can hold."""

    def check(spec: JobSpec) -> None:
        if isinstance(spec, AtomsSpec):
            check_target(target, spec.grid)

    return check


def finish_map(target: MapTarget, record: dict[str, Any]) -> dict[str, Any]:
    """Write the map from the staged field of a finished job; the record now names the map."""
    import numpy as np

    spec = record["spec"]
    try:
        if record["status"] == "SUCCEEDED":
            field = np.load(target.staged, mmap_mode="r")
            write_map(target.target, field, tuple(spec["origin"]), float(spec["spacing"]))
            record = {**record, "result": {**record["result"], "field": str(target.target)}}
    finally:
        discard(target)
    return record


def discard(target: MapTarget) -> None:
    """Remove the staged field (the job failed, was refused, or the map is written)."""
    target.staged.unlink(missing_ok=True)

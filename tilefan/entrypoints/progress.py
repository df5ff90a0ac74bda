"""A live one-line progress bar for a terminal."""

from __future__ import annotations

import time
from typing import TextIO

from tilefan.domain.records import JobRecord

UNIT_NAMES = {"matmul": "elements", "add": "elements", "atoms": "points"}


def human(n: float) -> str:
    """
    >>> human(16777216)
    '16.8M'
    >>> human(999)
    '999'
    """
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.1f}{suffix}"
    return f"{n:.0f}"


class ProgressBar:
    def __init__(self, stream: TextIO, width: int = 30, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.stream = stream
        self.width = width
        self.clock = clock
        self.started = clock()
        self._last = ""

    def render(self, record: JobRecord) -> str:
        frac = record.units_done / record.units_total if record.units_total else 0.0
        filled = round(frac * self.width)
        bar = "█" * filled + "░" * (self.width - filled)
        units = UNIT_NAMES.get(record.kind, "units")
        return (
            f"{record.kind:<6} [{bar}] {100 * frac:5.1f}%  {record.tiles_done}/{record.tiles_total} tiles  "
            f"{human(record.units_done)}/{human(record.units_total)} {units}  {self.clock() - self.started:.1f}s"
        )

    def update(self, record: JobRecord) -> None:
        line = self.render(record)
        if line != self._last:
            self.stream.write("\r" + line)
            self.stream.flush()
            self._last = line

    def close(self) -> None:
        if self._last:
            self.stream.write("\n")
            self.stream.flush()

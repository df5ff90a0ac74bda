"""Reduce = combine (associative, on plain per-tile statistics) + finalize.

Matrix tiles report the sum and sum of squares of their block; atoms tiles report their
block's minimum and its global flat index.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import reduce
from typing import Any


def combine_min(x: dict[str, Any], y: dict[str, Any]) -> dict[str, Any]:
    """The smaller minimum; on a tie, the lower flat index, so the answer is the same
    whatever the tile sizes and whichever tile finished first.

    >>> combine_min({"min": -1.0, "flat": 9}, {"min": -1.0, "flat": 4})
    {'min': -1.0, 'flat': 4}
    """
    return min(x, y, key=lambda s: (s["min"], s["flat"]))


def combine_all(kind: str, stats: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Combine every tile's statistics for a job of ``kind``.

    >>> combine_all("add", [{"sum": 1.0, "sumsq": 1.0}, {"sum": 2.0, "sumsq": 4.0}])
    {'sum': 3.0, 'sumsq': 5.0}
    >>> combine_all("atoms", [{"min": -2.0, "flat": 7}, {"min": -3.0, "flat": 1}])
    {'min': -3.0, 'flat': 1}
    """
    items = list(stats)
    if not items:
        raise ValueError("nothing to combine")
    if kind == "atoms":
        return reduce(combine_min, items)
    # fsum makes the total independent of the order the tiles finished in.
    return {"sum": math.fsum(s["sum"] for s in items), "sumsq": math.fsum(s["sumsq"] for s in items)}

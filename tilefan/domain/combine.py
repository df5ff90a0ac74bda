"""Reduce = combine (associative, on plain per-tile statistics) + finalize.

Matrix tiles report the sum and sum of squares of their block; atoms tiles report their
block's minimum and its global flat index.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import reduce
from typing import Any


def combine_matrix(x: dict[str, Any], y: dict[str, Any]) -> dict[str, Any]:
    """
    >>> combine_matrix({"sum": 1.0, "sumsq": 1.0}, {"sum": 2.0, "sumsq": 4.0})
    {'sum': 3.0, 'sumsq': 5.0}
    """
    return {"sum": x["sum"] + y["sum"], "sumsq": x["sumsq"] + y["sumsq"]}


def combine_min(x: dict[str, Any], y: dict[str, Any]) -> dict[str, Any]:
    """The smaller minimum; on a tie, the lower flat index (DESIGN.md §3).

    >>> combine_min({"min": -1.0, "flat": 9}, {"min": -1.0, "flat": 4})
    {'min': -1.0, 'flat': 4}
    """
    return min(x, y, key=lambda s: (s["min"], s["flat"]))


def combine_all(kind: str, stats: Iterable[dict[str, Any]]) -> dict[str, Any]:
    items = list(stats)
    if not items:
        raise ValueError("nothing to combine")
    if kind == "atoms":
        return reduce(combine_min, items)
    # fsum makes the total independent of the order the tiles finished in.
    return {"sum": math.fsum(s["sum"] for s in items), "sumsq": math.fsum(s["sumsq"] for s in items)}

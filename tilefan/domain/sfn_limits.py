"""How many tiles an inline Map may carry before the execution's history overflows.

A Standard execution holds at most 25,000 history events (AWS's documented quota). The
inline Map writes every iteration's events into the parent's history; the Distributed
Map runs each tile as a child execution with a history of its own. Measured under moto
(``tests/functional/test_sfn_history.py``): a job's inline run writes 22 events plus 9
per tile. AWS may write a few more than moto, so the threshold keeps a fifth of the cap
spare.
"""

from __future__ import annotations

HISTORY_EVENT_CAP = 25_000
INLINE_EVENTS_PER_JOB = 22
INLINE_EVENTS_PER_TILE = 9
HISTORY_MARGIN = 0.8


def max_inline_tiles() -> int:
    """The largest inline-Map threshold that stays within the margin of the event cap.

    >>> max_inline_tiles()
    2219
    """
    return int((HISTORY_EVENT_CAP * HISTORY_MARGIN - INLINE_EVENTS_PER_JOB) // INLINE_EVENTS_PER_TILE)

"""How many spot workers a job's launch step asks for: pure arithmetic, no I/O."""

from __future__ import annotations


def workers_to_launch(spot_tiles: int, running: int, cap: int) -> int:
    """One worker per spot tile, keeping the stage's fleet (running + new) within ``cap``.

    Workers serve any job's tiles from the shared queue, one tile at a time, so a job with
    more spot tiles than the cap simply queues the rest; a worker already running for
    another job still counts against the cap.

    >>> workers_to_launch(spot_tiles=3, running=0, cap=4)
    3
    >>> workers_to_launch(spot_tiles=10, running=1, cap=4)
    3
    >>> workers_to_launch(spot_tiles=2, running=5, cap=4)
    0
    >>> workers_to_launch(spot_tiles=0, running=0, cap=4)
    0
    """
    return max(0, min(spot_tiles, cap - running))

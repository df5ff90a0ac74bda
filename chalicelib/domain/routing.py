"""Where a tile runs: a Lambda, or (too big for one) an EC2 spot worker.

The ceilings are Lambda's documented limits (DESIGN.md §6) less safety margins, since an
estimate that is slightly low must not turn into an out-of-memory kill or a timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

LAMBDA = "lambda"
SPOT = "spot"


@dataclass(frozen=True)
class RoutePolicy:
    lambda_memory_mb: int = 10_240
    lambda_timeout_s: int = 900
    memory_margin: float = 0.7
    time_margin: float = 0.5
    # Sustained NumPy flop rate of a full-size Lambda (about six vCPUs); PyWren-era
    # measurements put one vCPU at 14–20 GFLOP/s.
    lambda_gflops: float = 60.0


def choose_route(mem_bytes: int, flops: int, policy: RoutePolicy) -> str:
    """
    >>> choose_route(1 << 30, 10**12, RoutePolicy())
    'lambda'
    >>> choose_route(9 << 30, 10**9, RoutePolicy())
    'spot'
    """
    mem_ok = mem_bytes <= policy.memory_margin * policy.lambda_memory_mb * (1 << 20)
    seconds = flops / (policy.lambda_gflops * 1e9)
    time_ok = seconds <= policy.time_margin * policy.lambda_timeout_s
    return LAMBDA if mem_ok and time_ok else SPOT

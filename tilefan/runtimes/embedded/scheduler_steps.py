"""The scheduler's plans and reduces, run off its dispatcher thread.

A job's plan (staging its inputs, creating its output) and its reduce (combining,
verifying, committing) can take long on a big job. The dispatcher hands them out: into
the pool's processes when a server shares its pool between jobs (a step then takes a
worker slot like a tile, and neither delays other jobs' tiles nor takes the server's CPU
from its HTTP threads), or to helper threads otherwise. A one-shot run (the CLI, the
Python API: one job) plans in the dispatcher itself and reduces in a helper thread. When
each step runs, and again after a failure, is ``scheduler_decide``'s call.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from typing import Any

from tilefan.domain.plan import Plan
from tilefan.domain.routing import RoutePolicy
from tilefan.pipeline.ports import Ports
from tilefan.runtimes.embedded.scheduler_state import Act


def plan_step(job_id: str, policy: RoutePolicy, planned: Plan | None = None, ports: Ports | None = None) -> None:
    """Plan a QUEUED job (in a pool worker, through its ports, unless ``ports`` is given),
    with the plan its submission cut when this process has it."""
    from tilefan.pipeline.plan import plan_job

    plan_job(ports or _pool_ports(), job_id, policy=policy, planned=planned)


def reduce_step(job_id: str, ports: Ports | None = None) -> None:
    """Reduce a RUNNING job whose tiles are all recorded done."""
    from tilefan.pipeline.reduce import reduce_job

    reduce_job(ports or _pool_ports(), job_id)


STEPS: dict[Act, Callable[..., None]] = {Act.PLAN: plan_step, Act.REDUCE: reduce_step}


def _pool_ports() -> Ports:
    from tilefan.runtimes.embedded.pool_worker import worker_ports

    return worker_ports()


class StepThreads(cf.ThreadPoolExecutor):
    """Helper threads for plans and reduces, through the scheduler's own ports: one per job
    the scheduler admits at once (a job has one step at a time), so no step waits for another's."""

    def __init__(self, ports: Ports, threads: int) -> None:
        super().__init__(max_workers=threads, thread_name_prefix="job-steps")
        self.ports = ports

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        return super().submit(fn, *args, ports=self.ports, **kwargs)

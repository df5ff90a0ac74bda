"""What the store says of a job the scheduler admits: QUEUED (to plan), ended, or RUNNING
with the tiles not yet recorded done, the kernel they take and whether they run in the
calling process. The scheduler's dispatcher feeds the answer to ``scheduler_decide``."""

from __future__ import annotations

from tilefan.domain.inline_tiles import runs_inline
from tilefan.domain.records import Status
from tilefan.pipeline.plan import planned_tiles
from tilefan.pipeline.ports import Ports
from tilefan.runtimes.embedded import scheduler_state as machine
from tilefan.runtimes.embedded.scheduler_parts import PoolSettings, job_kernel
from tilefan.runtimes.embedded.scheduler_state import Found


def open_job(ports: Ports, settings: PoolSettings, one_shot: bool, job_id: str) -> machine.Event:
    """The event for admitted job ``job_id``; ``one_shot`` when the scheduler runs only its
    caller's jobs (the CLI, the Python API), which may then run tiles right here. A store
    that cannot be read is the job's failure, recorded by the caller, never raised."""
    try:
        record = ports.jobs.get_job(job_id)
        if record.status is Status.QUEUED:
            return machine.JobFound(job_id, Found.QUEUED)
        if record.status.terminal:
            return machine.JobFound(job_id, Found.ENDED)
        # The plan step stored the job's tiles (and wrote its output and staged its inputs)
        # before the job became RUNNING: read them rather than plan it again.
        tiles = planned_tiles(ports, job_id, record.spec, settings.policy)
        done = {r.tile_id for r in ports.jobs.tile_results(job_id)}
        todo = tuple((tile_id, route) for tile_id, route in tiles if tile_id not in done)
        # The CLI and the Python API run a one-tile job, a small matmul, or atoms on the C
        # kernel (threads over every core) right here.
        kernel, threaded = job_kernel(record, settings.kernel)
        memory = ports.memory_outputs
        held = memory.in_memory(job_id) if memory is not None else False
        inline = one_shot and runs_inline(record.spec, len(tiles), threaded, held)
        if held and not inline:
            assert memory is not None
            memory.to_files(job_id)  # pool workers cannot write into this process's memory
        return machine.FoundRunning(job_id, todo, kernel, inline)
    except Exception as exc:  # the job's failure is recorded, not raised
        return machine.JobFound(job_id, Found.UNREADABLE, exc)

"""``tilefan resume JOB``: finish a job a stopped server or an interrupted run left behind.

The home's scheduler picks the job up where the store says it is: a QUEUED job is
planned, a RUNNING one runs only the tiles not recorded done, into the output already
being built. If a server holds the home's lease, it is already resuming the job, and
this command follows the record until the job ends.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from tilefan.domain.records import JobRecord

if TYPE_CHECKING:
    from tilefan.service.core import JobCore


def resume(job_id: str) -> tuple[JobRecord, JobCore]:
    """Run the job to its end (JobNotFoundError if unknown); its final record and the core."""
    from tilefan.bootstrap import build_core

    core = build_core(one_shot=True)
    record = core.record(job_id)
    if not record.status.terminal:
        print(f"resuming job {job_id} ({record.status.value}, {record.tiles_done} of {record.tiles_total} tiles "
              "done)", file=sys.stderr)
    try:
        return core.resume(job_id), core
    except KeyboardInterrupt:
        status = core.record(job_id).status.value
        print(f"\ninterrupted: job {job_id} stays {status} and can be resumed again", file=sys.stderr)
        raise

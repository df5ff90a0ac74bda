"""``tilefan resume JOB``: finish a job a stopped server or an interrupted run left behind.

The home's scheduler picks the job up where the store says it is: a QUEUED job is
planned, a RUNNING one runs only the tiles not recorded done, into the output already
being built. If a server holds the home's lease, it is already resuming the job, and
this command follows the record until the job ends.
"""

from __future__ import annotations

import sys

from tilefan.domain.records import JobRecord
from tilefan.pipeline.ports import Ports


def resume(job_id: str) -> tuple[JobRecord, Ports]:
    """Run the job to its end (JobNotFoundError if unknown); its final record and the ports."""
    from tilefan.bootstrap import build_scheduler, load_config

    scheduler = build_scheduler(load_config(), only={job_id})
    record = scheduler.ports.jobs.get_job(job_id)
    if record.status.terminal:
        return record, scheduler.ports
    print(f"resuming job {job_id} ({record.status.value}, {record.tiles_done} of {record.tiles_total} tiles done)",
          file=sys.stderr)
    try:
        return scheduler.run_until_done(job_id), scheduler.ports
    except KeyboardInterrupt:
        status = scheduler.ports.jobs.get_job(job_id).status.value
        print(f"\ninterrupted: job {job_id} stays {status} and can be resumed again", file=sys.stderr)
        raise

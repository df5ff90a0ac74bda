"""The application core: the one object every door submits, runs, follows, cancels and resumes jobs through.

The REST routes, the web page and ``tilefan serve`` use what ``JobService`` answers a
request with (submit for a REST caller, get, list, cancel, report, uploads, outputs);
``tilefan run``, ``tilefan resume``, the local job commands and the Python API use the
same object, plus what only a caller on this machine does: check or plan a request
without recording it (``admit``, ``plan_only``) and run a job here until it ends
(``submit_here``, ``run_here``, ``run``, ``resume``), and find a finished job's array result
on this machine (``result_file``). A door only translates its own input and output.

A core that runs jobs here is given ``here`` by the composition root
(``tilefan.bootstrap.build_core(..., one_shot=True)``): for each job, a runner of just
that job in this process (the home's scheduler, which follows the job's record instead
when a server holds the home's lease and runs it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tilefan.domain.plan import Plan, plan_unless_planned
from tilefan.domain.records import JobRecord
from tilefan.domain.spec.parse import JobSpec, Limits
from tilefan.errors import NotFoundError
from tilefan.pipeline.ports import JobRunner, Ports
from tilefan.pipeline.report import tile_report
from tilefan.pipeline.submit import admit, admit_planned, submit
from tilefan.service.jobs import JobService

OnProgress = Callable[[JobRecord], None]


class RunsHere(Protocol):
    """Runs one job in this process until it ends (the embedded scheduler)."""

    def run_until_done(self, job_id: str, on_progress: OnProgress | None = None,
                       poll_s: float = 0.1, plan: Plan | None = None) -> JobRecord: ...

    def cancel(self, job_id: str) -> bool: ...


@dataclass(frozen=True)
class DryRun:
    """What a request would run, recorded nowhere: its spec, its plan, and the plan's
    manifest with the AWS cost prediction (``aws_prediction``)."""

    spec: JobSpec
    plan: Plan
    manifest: dict[str, Any]


class JobCore(JobService):
    """``JobService``'s calls for every door, and running a job here for the local ones.

    ``service`` are ``JobService``'s keyword options (clock, policy, principal, queue, places, serving,
    http_limits).
    """

    def __init__(self, ports: Ports, runner: JobRunner, limits: Limits, *,
                 here: Callable[[str], RunsHere] | None = None, **service: Any) -> None:
        super().__init__(ports, runner, limits, **service)
        # None on a server's core: its runner starts jobs in the background instead.
        self.here = here
        self._plans: dict[str, Plan] = {}  # plans of jobs submitted here, until they run here

    # ------------------------------------------------------------------ before recording

    def admit(self, raw: Any) -> JobSpec:
        """The spec a request resolves to (InvalidSpecError naming the field otherwise)."""
        return admit(self.ports, raw, self.limits, self.policy)

    def plan_only(self, raw: Any) -> DryRun:
        """``--dry-run``: the plan of a request, and what it would cost on AWS."""
        from tilefan.domain.cost_model import predict  # only a dry run prices a plan

        spec, fitted = admit_planned(self.ports, raw, self.limits, self.policy)
        the_plan = plan_unless_planned("dry-run", spec, self.policy, fitted)
        manifest = the_plan.manifest()
        manifest["aws_prediction"] = predict(manifest, self.policy).to_dict()
        return DryRun(spec, the_plan, manifest)

    # ------------------------------------------------------------------ running here

    def submit_here(self, raw: Any, check: Callable[[JobSpec], None] | None = None) -> JobRecord:
        """Record a trusted local request (it names its own paths) as QUEUED, to run here;
        ``check`` is the door's own test of the admitted spec, before anything is recorded."""
        self._here()  # refused before anything is recorded
        submission = submit(self.ports, raw, limits=self.limits, clock=self.clock, policy=self.policy,
                            owner=self.owner_of(self.principal), queue=self.queue, check=check)
        # Handed to the plan step when the job runs here, so the job is planned once.
        self._plans[submission.record.job_id] = submission.plan
        return submission.record

    def run_here(self, job_id: str, on_progress: OnProgress | None = None) -> JobRecord:
        """Run a recorded job here to its end; its final record. Interrupted (Ctrl-C, a
        notebook's stop), the job is cancelled, so its record says so and its partial
        output is removed, and KeyboardInterrupt goes on up."""
        runner = self._here()(job_id)
        try:
            return runner.run_until_done(job_id, on_progress=on_progress, plan=self._plans.pop(job_id, None))
        except KeyboardInterrupt:
            runner.cancel(job_id)
            raise

    def run(self, raw: Any, on_progress: OnProgress | None = None) -> JobRecord:
        """``submit_here`` then ``run_here``: a local request's final record."""
        return self.run_here(self.submit_here(raw).job_id, on_progress)

    def resume(self, job_id: str, on_progress: OnProgress | None = None) -> JobRecord:
        """Run a job a stopped server or run left QUEUED or RUNNING to its end, from its
        recorded tiles (JobNotFoundError if unknown); an ended job's record at once.
        Interrupted, the job stays as it is, to be resumed again."""
        runs_here = self._here()
        record = self.record(job_id)
        if record.status.terminal:
            return record
        return runs_here(job_id).run_until_done(job_id, on_progress=on_progress)

    # ------------------------------------------------------------------ results here

    def local_report(self, job_id: str) -> dict[str, Any]:
        """The job's report as a door on this machine prints it (``tilefan run``'s summary):
        what ``report`` answers less the AWS prediction, not held to the response model, which
        only a REST answer needs, so a run imports neither pydantic nor the cost model.
        JobNotFoundError if unknown."""
        self.record(job_id)
        return tile_report(self.ports, job_id, self.policy, aws_prediction=False)

    def result_file(self, job_id: str) -> tuple[dict[str, Any], Path]:
        """A finished job's array result on this machine: the job (as ``get`` answers it) and
        the file of its output, else of the field it kept. NotFoundError, saying why, when
        the job has none (not SUCCEEDED, or no array kept), no longer has it, or its store
        keeps no files here."""
        doc = self.get(job_id)
        result = doc.get("result") or {}
        source = result.get("output") or result.get("field")
        if doc["status"] != "SUCCEEDED" or not source:
            what = "has no array result (run atoms with --field-out to keep the field)" \
                if doc["status"] == "SUCCEEDED" else f"is {doc['status']}"
            raise NotFoundError(f"job {job_id} {what}")
        if self.ports.local_files is None:
            raise NotFoundError(f"job {job_id}'s store keeps no files on this machine: fetch its result from "
                                "the server (--endpoint)")
        path = Path(self.ports.local_files.path(source))
        if not path.exists():
            # A field asked for as a map was staged, turned into the map and removed.
            raise NotFoundError(f"job {job_id}'s array is no longer at {source}")
        return doc, path

    def _here(self) -> Callable[[str], RunsHere]:
        if self.here is None:
            raise RuntimeError("this core runs no job here: build it with build_core(..., one_shot=True)")
        return self.here

"""The application core over a temporary home: what the local doors (``tilefan run`` and
``resume``, the Python API) do through it, and the answers the REST doors send through it
being exactly what the response models in the OpenAPI document dump."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tilefan.bootstrap import Config, build_core
from tilefan.domain.records import LOCAL_OWNER, JobRecord, Status
from tilefan.errors import InvalidSpecError, NotFoundError
from tilefan.runtimes.embedded.scheduler import Scheduler
from tilefan.service.core import JobCore
from tilefan.service.response_models import Job, JobPage, Report, UploadComplete, UploadStored, UploadTarget

MATMUL = {"kind": "matmul", "a": {"shape": "30x20"}, "b": {"shape": [20, 10]}, "seed": 3, "tile": 16,
          "verify": True}


@pytest.fixture
def core(tmp_path: Path) -> JobCore:
    return build_core(Config(home=tmp_path / "home", workers=2), one_shot=True)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[JobCore]:
    core = build_core(Config(home=tmp_path / "home", workers=2))
    try:
        yield core
    finally:
        assert isinstance(core.runner, Scheduler)
        core.runner.stop()


def test_a_local_run_goes_through_the_core_to_its_end(core: JobCore) -> None:
    seen: list[JobRecord] = []
    final = core.run(MATMUL, on_progress=seen.append)
    assert final.status is Status.SUCCEEDED and final.result is not None
    assert final.result["verification"]["passed"] is True
    assert final.owner == LOCAL_OWNER
    assert seen and seen[-1].status is Status.SUCCEEDED and seen[-1].job_id == final.job_id
    assert core.report(final.job_id)["summary"]["tiles_done"] == final.tiles_total == 2
    assert core.get(final.job_id)["status"] == "SUCCEEDED"


def test_a_dry_run_and_a_refused_request_record_nothing(core: JobCore) -> None:
    dry = core.plan_only(MATMUL)
    assert len(dry.plan.tiles) == 2 and dry.spec.kind.value == "matmul"
    assert dry.manifest["aws_prediction"] and len(dry.manifest["tiles"]) == 2
    with pytest.raises(InvalidSpecError) as refused:
        core.admit({**MATMUL, "grid": 4})
    assert refused.value.field == "grid"
    assert core.list()["jobs"] == []


def test_an_interrupted_run_is_cancelled_and_an_interrupted_resume_is_not(core: JobCore) -> None:
    def interrupt(record: JobRecord) -> None:
        raise KeyboardInterrupt

    record = core.submit_here(MATMUL)
    with pytest.raises(KeyboardInterrupt):
        core.run_here(record.job_id, on_progress=interrupt)
    assert core.record(record.job_id).status is Status.CANCELLED

    again = core.submit_here(MATMUL)
    with pytest.raises(KeyboardInterrupt):
        core.resume(again.job_id, on_progress=interrupt)
    assert not core.record(again.job_id).status.terminal  # left to be resumed
    assert core.resume(again.job_id).status is Status.SUCCEEDED
    assert core.resume(again.job_id).status is Status.SUCCEEDED  # ended: its record at once


def test_a_finished_jobs_array_result_is_the_file_the_core_names(core: JobCore) -> None:
    import numpy as np

    final = core.run(MATMUL)
    assert final.result is not None
    doc, path = core.result_file(final.job_id)
    assert doc == core.get(final.job_id) and path.is_file()
    assert float(np.load(path).sum()) == pytest.approx(final.result["checksums"]["sum"], rel=1e-12)
    # A store whose objects are no files here (S3) has none to name.
    remote = JobCore(replace(core.ports, local_files=None), core.runner, core.limits)
    with pytest.raises(NotFoundError, match="keeps no files on this machine"):
        remote.result_file(final.job_id)
    path.unlink()
    with pytest.raises(NotFoundError, match=f"job {final.job_id}'s array is no longer at"):
        core.result_file(final.job_id)


def test_a_job_without_an_array_result_is_refused_saying_why(core: JobCore) -> None:
    queued = core.submit_here(MATMUL)
    with pytest.raises(NotFoundError, match=f"^job {queued.job_id} is QUEUED$"):
        core.result_file(queued.job_id)
    atoms = core.run({"kind": "atoms", "grid": 4, "atoms": {"count": 3, "seed": 1}})
    with pytest.raises(NotFoundError, match=r"has no array result \(run atoms with --field-out"):
        core.result_file(atoms.job_id)


def test_a_servers_core_runs_nothing_here_and_records_nothing_when_asked(server: JobCore) -> None:
    with pytest.raises(RuntimeError, match="one_shot"):
        server.run(MATMUL)
    assert server.list()["jobs"] == []


def dumped(model: type[BaseModel], answer: dict[str, Any]) -> dict[str, Any]:
    return model.model_validate(answer).model_dump(mode="json", exclude_unset=True, warnings=False)


def test_the_answers_are_what_the_documented_models_dump(server: JobCore, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import numpy as np

    accepted = server.submit(MATMUL)
    assert dumped(Job, accepted) == accepted
    assert isinstance(server.runner, Scheduler)
    server.runner.wait(accepted["job_id"], 60)
    done = server.get(accepted["job_id"])
    assert done["status"] == "SUCCEEDED" and dumped(Job, done) == done
    page = server.list(limit="5")
    assert page["jobs"] == [done] and dumped(JobPage, page) == page
    report = server.report(accepted["job_id"])
    assert report["summary"]["tiles_done"] == 2 and len(report["attempts"]) == 2
    assert "aws_prediction" in report["summary"] and dumped(Report, report) == report
    # What tilefan run prints from: the same report, less the AWS prediction.
    summary = {k: v for k, v in report["summary"].items() if k != "aws_prediction"}
    assert server.local_report(accepted["job_id"]) == {**report, "summary": summary}
    # The report is held to its model as it leaves the service, like every other answer.
    from pydantic import ValidationError

    from tilefan.service import jobs

    made = jobs.tile_report
    monkeypatch.setattr(jobs, "tile_report", lambda *args: {**made(*args), "undocumented": True})
    with pytest.raises(ValidationError):
        server.report(accepted["job_id"])
    monkeypatch.undo()

    target = server.create_upload({"filename": "A.npy"})
    assert dumped(UploadTarget, target) == target
    buffer = io.BytesIO()
    np.save(buffer, np.ones((3, 4)))
    stored = server.receive_upload(target["upload_id"], "A.npy", buffer.getvalue())
    assert dumped(UploadStored, stored) == stored == {"key": target["key"], "bytes": len(buffer.getvalue())}
    complete = server.complete_upload(target["upload_id"])
    assert complete["status"] == "COMPLETE" and dumped(UploadComplete, complete) == complete

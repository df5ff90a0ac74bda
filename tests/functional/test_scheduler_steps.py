"""Plans and reduces run off the scheduler's dispatcher: a slow one does not hold up another
job's tiles, each runs once per job, and a transient failure is retried."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tilefan import bootstrap
from tilefan.pipeline import plan as plan_module
from tilefan.pipeline import reduce as reduce_module
from tilefan.runtimes.embedded.scheduler import Scheduler
from tilefan.service.jobs import JobService

ADD = {"kind": "add", "a": {"shape": [8, 8]}, "b": {"shape": [8, 8]}, "tile": 4}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[JobService]:
    # One worker: tiles run in the dispatcher's thread, plans and reduces in helper threads,
    # all in this process, where the patches below apply.
    built = bootstrap.build_service(bootstrap.Config(home=tmp_path / "home", workers=1, kernel="numpy"))
    yield built
    assert isinstance(built.runner, Scheduler)
    built.runner.stop()


def status(service: JobService, job_id: str) -> str:
    return str(service.get(job_id)["status"])


def ended(service: JobService, job_id: str) -> str:
    return wait_until(lambda: (s := status(service, job_id)) not in ("QUEUED", "RUNNING") and s, f"{job_id} to end")


def held_first_call(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> tuple[threading.Event, Counter[str]]:
    """Patch ``module.name`` so its first call waits for the returned event; count calls by job."""
    real: Callable[..., Any] = getattr(module, name)
    gate, calls, first = threading.Event(), Counter[str](), threading.Lock()

    def patched(ports: Any, job_id: str, **kwargs: Any) -> Any:
        calls[job_id] += 1
        if first.acquire(blocking=False):
            assert gate.wait(30), "the test never released the held step"
        return real(ports, job_id, **kwargs)

    monkeypatch.setattr(module, name, patched)
    return gate, calls


@pytest.mark.parametrize(("module", "name", "held_status"), [
    (plan_module, "plan_job", "QUEUED"), (reduce_module, "reduce_job", "RUNNING")])
def test_a_slow_step_does_not_hold_up_another_jobs_tiles(
    service: JobService, monkeypatch: pytest.MonkeyPatch, module: Any, name: str, held_status: str
) -> None:
    gate, calls = held_first_call(monkeypatch, module, name)
    slow = service.submit(ADD)["job_id"]
    wait_until(lambda: calls[slow] == 1, f"the slow job's {name}")
    fast = service.submit(ADD)["job_id"]
    assert ended(service, fast) == "SUCCEEDED"
    assert status(service, slow) == held_status, f"the slow job's {name} was not still running"
    gate.set()
    assert ended(service, slow) == "SUCCEEDED"
    assert calls == {slow: 1, fast: 1}


def test_each_job_is_planned_and_reduced_exactly_once(service: JobService, monkeypatch: pytest.MonkeyPatch) -> None:
    plan_gate, plans = held_first_call(monkeypatch, plan_module, "plan_job")
    reduce_gate, reduces = held_first_call(monkeypatch, reduce_module, "reduce_job")
    plan_gate.set()
    reduce_gate.set()
    ids = [service.submit(ADD)["job_id"] for _ in range(6)]
    assert [ended(service, j) for j in ids] == ["SUCCEEDED"] * 6
    assert plans == dict.fromkeys(ids, 1)
    assert reduces == dict.fromkeys(ids, 1)
    assert [service.get(j)["progress"]["tiles_done"] for j in ids] == [4] * 6


def test_a_plan_that_fails_transiently_is_retried(service: JobService, monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = plan_module.plan_job, Counter[str]()

    def flaky(ports: Any, job_id: str, **kwargs: Any) -> Any:
        calls[job_id] += 1
        if calls[job_id] == 1:
            raise OSError("injected: a disk hiccup while staging")
        return real(ports, job_id, **kwargs)

    monkeypatch.setattr(plan_module, "plan_job", flaky)
    job_id = service.submit(ADD)["job_id"]
    assert ended(service, job_id) == "SUCCEEDED"
    assert calls == {job_id: 2}


def test_a_plan_that_keeps_failing_fails_the_job(service: JobService, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(ports: Any, job_id: str, **kwargs: Any) -> Any:
        raise OSError("injected: always")

    monkeypatch.setattr(plan_module, "plan_job", broken)
    job_id = service.submit(ADD)["job_id"]
    assert ended(service, job_id) == "FAILED"
    assert "injected: always" in service.get(job_id)["error"]["message"]


def test_jobs_in_the_shared_pool_all_succeed(tmp_path: Path) -> None:
    """A server's scheduler runs plans and reduces in its pool's processes."""
    pooled = bootstrap.build_service(bootstrap.Config(home=tmp_path / "home", workers=2, kernel="numpy"))
    assert isinstance(pooled.runner, Scheduler)
    try:
        ids = [pooled.submit(ADD)["job_id"] for _ in range(5)]
        assert [ended(pooled, j) for j in ids] == ["SUCCEEDED"] * 5
        assert all(pooled.get(j)["result"]["checksums"] for j in ids)
    finally:
        pooled.runner.stop()

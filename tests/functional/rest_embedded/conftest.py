"""The embedded service behind the REST blueprint, in a temp home, for every test here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice import Chalice
from chalice.test import Client

from tests.functional.rest_client import rest_app
from tests.functional.rest_embedded.support import MakeService, scheduler_of
from tilefan import bootstrap
from tilefan.bootstrap import Config
from tilefan.service.jobs import JobService


@pytest.fixture
def built() -> list[JobService]:
    """The services a test built, in order; the app serves the last."""
    return []


@pytest.fixture
def make_service(tmp_path: Path, built: list[JobService]) -> Iterator[MakeService]:
    """Build the embedded service in a temp home; the test's ``app`` serves it from then on.

    Teardown cancels whatever is still running and joins every runner thread, so no
    job outlives its temp dir.
    """

    def make(workers: int = 2, kernel: str = "auto") -> JobService:
        service: JobService = bootstrap.build_service(Config(home=tmp_path / "home", workers=workers, kernel=kernel))
        built.append(service)
        return service

    yield make
    for service in built:
        records, _ = service.ports.jobs.list_jobs(100)
        for record in records:
            if not record.status.terminal:
                service.runner.cancel(record.job_id)
            scheduler_of(service).wait(record.job_id, 60)
        scheduler_of(service).stop()


@pytest.fixture
def service(make_service: MakeService) -> JobService:
    return make_service()


@pytest.fixture
def app(built: list[JobService]) -> Chalice:
    """The HTTP routes over the service the test built last (a test may build another)."""
    return rest_app(lambda: built[-1])


@pytest.fixture
def client(service: JobService, app: Chalice) -> Iterator[Client]:
    with Client(app) as c:
        yield c


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d

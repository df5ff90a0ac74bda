"""The embedded service behind the REST blueprint, in a temp home, for every test here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice.test import Client

import app as chalice_app
from tests.functional.rest_embedded.support import MakeService, scheduler_of
from tilefan import bootstrap
from tilefan.bootstrap import Config
from tilefan.entrypoints import rest
from tilefan.service.jobs import JobService


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[MakeService]:
    """Build the embedded service in a temp home and route the blueprint to it.

    Teardown cancels whatever is still running and joins every runner thread, so no
    job outlives its temp dir.
    """
    built: list[JobService] = []

    def make(workers: int = 2, kernel: str = "auto") -> JobService:
        service: JobService = bootstrap.build_service(Config(home=tmp_path / "home", workers=workers, kernel=kernel))
        rest.set_service_factory(lambda: service)
        built.append(service)
        return service

    yield make
    rest.set_service_factory(None)
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
def client(service: JobService) -> Iterator[Client]:
    with Client(chalice_app.app) as c:
        yield c


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d

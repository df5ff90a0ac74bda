"""The cap on jobs at once from the command line: ``tilefan run`` exits 2 with the API's message.

A home whose one owner (``local``) already has TILEFAN_MAX_QUEUED_JOBS (1 here) jobs
queued refuses the next one, run on this machine or through ``--endpoint`` against the
REST app over that home (served in-process by the HTTP front of ``tilefan serve``, with
its scheduler not started, so the queued job stays queued); remotely, only after the
client's bounded retries, each waiting as the 429's Retry-After asks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from tests.functional.rest_client import rest_app
from tests.functional.test_store_contract import job
from tilefan import bootstrap
from tilefan.entrypoints.cli import main as cli
from tilefan.entrypoints.http.http_errors import RETRY_AFTER_S
from tilefan.entrypoints.http.server import ChaliceWsgi
from tilefan.entrypoints.sdk import client

MESSAGE = ("too many jobs at once: each caller may have at most 1 queued or running (setting "
           "TILEFAN_MAX_QUEUED_JOBS); wait for one to end or cancel one")
RUN = ["run", "add", "--shape-a", "8x8", "--shape-b", "8x8", "--seed", "1"]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("TILEFAN_HOME", str(home))
    monkeypatch.setenv("TILEFAN_MAX_QUEUED_JOBS", "1")
    for name in ("TILEFAN_ENDPOINT", "TILEFAN_TOKEN", "TILEFAN_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    bootstrap.embedded_ports(home).jobs.create_job(job("0123456789abcdef"))  # QUEUED, the local owner's
    return home


@pytest.fixture
def endpoint(home: Path) -> Iterator[str]:
    service = bootstrap.build_service()  # over TILEFAN_HOME; its scheduler is never started
    server = make_server("127.0.0.1", 0, ChaliceWsgi(rest_app(service)), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def test_a_local_run_over_the_cap_exits_2_naming_the_setting(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(RUN) == 2
    assert capsys.readouterr().err == f"error: {MESSAGE}\n"
    records, _ = bootstrap.embedded_ports(home).jobs.list_jobs(10)
    assert [r.job_id for r in records] == ["0123456789abcdef"]  # nothing else was recorded


def test_a_remote_run_over_the_cap_exits_2_with_the_apis_message(
    endpoint: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(client, "_sleep", waits.append)
    assert cli.main([*RUN, "--endpoint", endpoint]) == 2
    assert capsys.readouterr().err == f"error: {MESSAGE}\n"
    assert len(waits) == client.Client(endpoint).retries and min(waits) >= RETRY_AFTER_S

"""``tilefan.Client`` and the CLI's remote mode back off when told to: a real HTTP server on
127.0.0.1 answers 429 (or 503) with ``Retry-After`` before it accepts, and the client waits
at least that long, a bounded number of times, then succeeds (or reports the refusal)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tilefan.entrypoints.cli import main as cli
from tilefan.entrypoints.sdk import client
from tilefan.entrypoints.sdk.client import Client
from tilefan.errors import ReportedError

BUSY = {"error": {"code": "too_many_jobs", "message": "too many jobs at once: each caller may have at most 1 "
                                                     "queued or running (setting TILEFAN_MAX_QUEUED_JOBS); "
                                                     "wait for one to end or cancel one"}}
JOB = {"job_id": "0123456789abcdef", "kind": "add", "status": "QUEUED"}


class Busy(ThreadingHTTPServer):
    """Answers ``refusals`` POSTs with ``status`` (and ``retry_after``, if any), then 202."""

    def __init__(self, refusals: int, status: int = 429, retry_after: str | None = "1") -> None:
        self.refusals, self.status, self.retry_after = refusals, status, retry_after
        self.posts: list[float] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Busy

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.posts.append(time.monotonic())
        if len(self.server.posts) <= self.server.refusals:
            headers = {"Retry-After": self.server.retry_after} if self.server.retry_after else {}
            self._answer(self.server.status, BUSY, headers)
        else:
            self._answer(202, JOB, {})

    def _answer(self, status: int, doc: dict[str, Any], headers: dict[str, str]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[Busy] = []

    def start(*args: Any, **kwargs: Any) -> Busy:
        server = Busy(*args, **kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def test_the_client_waits_as_retry_after_asks_then_succeeds(serve: Any) -> None:
    server = serve(refusals=1, retry_after="1")
    doc = Client(server.url).submit({"kind": "add"})
    assert doc["job_id"] == JOB["job_id"]
    assert len(server.posts) == 2
    gap = server.posts[1] - server.posts[0]
    assert 1.0 <= gap < 1.25 + 0.5  # Retry-After, plus at most a quarter of jitter (and slack)


def test_a_503_without_retry_after_is_retried_with_backoff(serve: Any) -> None:
    server = serve(refusals=2, status=503, retry_after=None)
    assert Client(server.url).submit({"kind": "add"})["status"] == "QUEUED"
    gaps = [b - a for a, b in zip(server.posts, server.posts[1:], strict=False)]
    assert len(gaps) == 2 and gaps[0] >= 0.5 and gaps[1] >= 1.0  # 0.5 s, then doubled


def test_retries_are_bounded_and_jittered_then_the_refusal_is_reported(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(client, "_sleep", waits.append)
    server = serve(refusals=100, retry_after="7")
    with pytest.raises(ReportedError) as refused:
        Client(server.url, retries=3).submit({"kind": "add"})
    assert refused.value.code == "too_many_jobs"
    assert len(server.posts) == 4 and len(waits) == 3
    assert all(7.0 <= w <= 8.75 for w in waits)
    assert len(set(waits)) > 1  # jittered: not the same instant for every client


def test_the_cli_remote_mode_backs_off_then_reports_the_cap_with_exit_2(
    serve: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(client, "_sleep", waits.append)
    server = serve(refusals=100, retry_after="2")
    code = cli.main(["run", "add", "--shape-a", "4x4", "--shape-b", "4x4", "--endpoint", server.url])
    assert code == 2
    assert capsys.readouterr().err == f"error: {BUSY['error']['message']}\n"
    assert len(waits) == Client(server.url).retries and all(w >= 2.0 for w in waits)

"""``tilefan serve``'s HTTP front end under load and abuse: 100 clients at once, an
oversized body, and a client that stalls mid-request."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.serve_process import ServeProcess, running

CLIENT_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with running(tmp_path_factory.mktemp("front"), extra=("--client-timeout", str(CLIENT_TIMEOUT_S))) as proc:
        yield proc


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_100_concurrent_clients_are_all_answered(server: ServeProcess) -> None:
    barrier = threading.Barrier(100)
    results: list[object] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.connect()
            barrier.wait(30)  # every connection is open before any request goes out
            conn.request("GET", "/jobs?limit=1")
            results.append(conn.getresponse().status)
        except Exception as exc:
            results.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 100


def test_an_oversized_body_is_refused_before_it_is_read(server: ServeProcess) -> None:
    before = rss_kib(server.proc.pid)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 400000000\r\n\r\n" + b"{" * 65536)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert rss_kib(server.proc.pid) - before < 20_000, "the server grew while refusing the body"


def test_a_json_body_over_the_cap_gets_the_json_413(server: ServeProcess) -> None:
    status, body = server.request("POST", "/jobs", {"pad": "x" * 70_000})
    assert status == 413
    assert body["error"]["code"] == "body_too_large"


def test_a_stalled_client_is_disconnected(server: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5 * CLIENT_TIMEOUT_S + 5) as sock:
        sock.sendall(b"GET /jobs HTTP/1.1\r\nHost: loc")  # and nothing more
        assert sock.recv(1024) == b"", "the server kept a stalled connection open"

"""``tilefan serve``'s per-request limits over real sockets: a client trickling bytes meets
the whole-request deadline, and a JSON body over its cap is refused after its headers,
before the body is sent, in the API's error shape."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.serve_process import ServeProcess, running

CLIENT_TIMEOUT_S = 2
TRICKLE_S = 0.25  # far inside the idle timeout: only the request deadline can end it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with running(tmp_path_factory.mktemp("limits"), extra=("--client-timeout", str(CLIENT_TIMEOUT_S))) as proc:
        yield proc


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def split(raw: bytes) -> tuple[str, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), json.loads(body)


def exchange(server: ServeProcess, request: bytes) -> tuple[str, dict[str, object]]:
    """Send ``request`` whole; the answer's status line and JSON body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        return split(answer(sock))


def trickle(server: ServeProcess, head: bytes, drip: bytes) -> tuple[bytes, float]:
    """Send ``head``, then ``drip`` one byte every TRICKLE_S until the server answers or closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(head)
        for byte in drip:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.settimeout(TRICKLE_S)
            try:
                first = sock.recv(65536)
            except TimeoutError:
                continue
            sock.settimeout(10)
            return first + answer(sock), time.monotonic() - started
    raise AssertionError("the server kept reading a trickling request to its end")


def test_a_client_trickling_its_headers_gets_a_408_at_the_deadline(server: ServeProcess) -> None:
    head = f"GET /jobs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode()
    raw, took = trickle(server, head, b"X-Pad: " + b"a" * 200)
    status, body = split(raw)
    assert status.split()[1] == "408", raw[:200]
    assert body["error"]["code"] == "request_timeout"  # type: ignore[index]
    assert CLIENT_TIMEOUT_S <= took < CLIENT_TIMEOUT_S + 3, took


def test_a_client_trickling_a_json_body_gets_a_408_at_the_deadline(server: ServeProcess) -> None:
    head = (f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: 200\r\n\r\n").encode()
    raw, took = trickle(server, head, b" " * 200)
    status, body = split(raw)
    assert status.split()[1] == "408", raw[:200]
    assert "within 2 s" in body["error"]["message"]  # type: ignore[index]
    assert CLIENT_TIMEOUT_S <= took < CLIENT_TIMEOUT_S + 3, took


def test_a_json_body_under_the_upload_cap_is_refused_before_it_is_sent(server: ServeProcess) -> None:
    # 100 MB: over the 64 KiB JSON cap, under the 256 MiB upload cap. Only the headers go out;
    # the answer must come without a byte of the body (before, waitress spooled it all first).
    head = (f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {100_000_000}\r\n\r\n").encode()
    status, body = exchange(server, head)
    assert status.split()[1] == "413"
    assert body == {"error": {"code": "body_too_large", "message":
                              "request bodies are capped at 65536 bytes (setting TILEFAN_MAX_BODY_BYTES)"}}


def test_a_chunked_json_body_is_cut_off_at_the_cap(server: ServeProcess) -> None:
    # Just past the cap (64 KiB and the chunks' framing), never terminated: the answer
    # comes without the end of the body. (Bytes sent after the refusal would go unread,
    # and the kernel would reset the connection under the answer.)
    chunk = b"%x\r\n%s\r\n" % (16384, b" " * 16384)
    head = (f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n").encode()
    status, body = exchange(server, head + chunk * 4)
    assert status.split()[1] == "413"
    assert body["error"]["code"] == "body_too_large"  # type: ignore[index]


def test_an_upload_over_its_cap_names_the_upload_setting(server: ServeProcess) -> None:
    head = (f"PUT /uploads/u1/A.npy HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {2**28 + 1}\r\n\r\n").encode()
    status, body = exchange(server, head)
    assert status.split()[1] == "413"
    assert "TILEFAN_MAX_UPLOAD_BYTES" in body["error"]["message"]  # type: ignore[index]


def test_a_malformed_request_gets_the_error_shape(server: ServeProcess) -> None:
    status, body = exchange(server, b"GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n")
    assert status.split()[1] == "400"
    assert body["error"]["code"] == "invalid_request"  # type: ignore[index]


def test_requests_within_the_limits_still_pass(server: ServeProcess, tmp_path: Path) -> None:
    status, doc = server.request("POST", "/jobs", {"kind": "add", "a": {"shape": [8, 8]}, "b": {"shape": [8, 8]}})
    assert status == 202, doc
    assert server.wait_ended(doc["job_id"])["status"] == "SUCCEEDED"

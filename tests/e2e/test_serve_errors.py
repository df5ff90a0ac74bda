"""A real ``tilefan serve`` answers requests no route takes in the API's one error shape:
an unknown path is a 404 (not API Gateway's 403 "Missing Authentication Token"), a wrong
content type a 415, a wrong method a 405, and a deeply nested body a 400 (not a 500)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

from tests.e2e.served import serve


def call(port: int, method: str, path: str, body: bytes = b"", content_type: str | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def assert_error(answer: tuple[int, Any], status: int, code: str) -> None:
    got, body = answer
    assert got == status, body
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"], body


def test_requests_no_route_takes_get_the_error_shape(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        port = served.port
        assert_error(call(port, "GET", "/no-such-route"), 404, "not_found")
        assert_error(call(port, "POST", "/jobs", b"{}", "text/plain"), 415, "unsupported_media_type")
        assert_error(call(port, "PUT", "/jobs", b"{}", "application/json"), 405, "method_not_allowed")
        deep = b"[" * 30_000 + b"]" * 30_000
        assert_error(call(port, "POST", "/jobs", deep, "application/json"), 400, "invalid_input")
        # The server is still whole afterwards.
        assert call(port, "GET", "/jobs")[0] == 200

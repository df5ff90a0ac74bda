"""Who a real ``tilefan serve`` answers: on loopback, only requests whose Host names it
(no DNS rebinding); bound to any other address, only requests with its token, which it
generates once, keeps with mode 0600 in the home and prints at start."""

from __future__ import annotations

import http.client
import json
import stat
from pathlib import Path
from typing import Any

from tests.e2e.served import serve


def get(port: int, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_loopback_answers_only_its_own_host(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        port = served.port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            status, body = get(port, "/jobs", {"Host": host})
            assert status == 200, body
        for host in ("attacker.example", f"attacker.example:{port}", f"127.0.0.1:{port + 1}", ""):
            status, body = get(port, "/jobs", {"Host": host} if host else {})
            assert status == 403, (host, body)
            assert body["error"]["code"] == "host_not_allowed"
        assert not (served.home / "token").exists(), "no token is made for a loopback server"


def test_a_wider_bind_requires_the_token(tmp_path: Path) -> None:
    with serve(tmp_path, "--host", "0.0.0.0") as served:
        port, host = served.port, {"Host": f"127.0.0.1:{served.port}"}
        token_file = served.home / "token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32 and token in served.log_text()
        status, body = get(port, "/jobs", host)
        assert (status, body["error"]["code"]) == (401, "unauthorized")
        status, body = get(port, "/jobs", {**host, "Authorization": "Bearer wrong"})
        assert status == 401
        assert get(port, "/jobs", {**host, "Authorization": f"Bearer {token}"})[0] == 200
        assert get(port, f"/jobs?token={token}", host)[0] == 200
    # A restart keeps the same token.
    with serve(tmp_path, "--host", "0.0.0.0") as again:
        assert (again.home / "token").read_text().strip() == token

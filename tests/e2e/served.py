"""A real ``tilefan serve`` process for access and fuzz tests: its own home, a free port, a chosen bind."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import wait_until

TILEFAN = Path(sys.executable).with_name("tilefan")
START_DEADLINE_S = 20.0


@dataclass(frozen=True)
class Served:
    port: int
    home: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def answers(base: str) -> bool:
    """Whether the server at ``base`` serves its OpenAPI document (200)."""
    try:
        with urllib.request.urlopen(base + "/openapi.json", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _answers(port: int) -> bool:
    """Whether the server answers HTTP at all (a 401 or 403 is an answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/openapi.json")
        return conn.getresponse().status > 0
    except (ConnectionError, TimeoutError, OSError):
        return False
    finally:
        conn.close()


@contextmanager
def serve(root: Path, *args: str, workers: int = 1, env: dict[str, str] | None = None) -> Iterator[Served]:
    assert TILEFAN.exists(), f"the tilefan command is not installed next to {sys.executable}"
    port = free_port()
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILEFAN_")}
    env.update({"TILEFAN_HOME": str(root / "home"), "TILEFAN_WORKERS": str(workers), **extra})
    log = root / "server.log"
    with open(log, "wb") as log_fp:
        proc = subprocess.Popen([str(TILEFAN), "serve", "--port", str(port), *args], cwd=root, env=env,
                                stdout=log_fp, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert proc.poll() is None, f"tilefan serve exited with {proc.returncode}: {log.read_text()}"
            return _answers(port)

        wait_until(up, "tilefan serve to answer", START_DEADLINE_S, interval=0.1)
        yield Served(port, root / "home", log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

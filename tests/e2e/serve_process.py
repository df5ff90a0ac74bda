"""A real ``tilefan serve`` process for fault injection: start, signal, find its processes.

Every process the server starts (the fork server, the resource tracker, the pool's
workers) inherits a marker in its environment, so the test finds them all, even after
the server itself is gone and they would have been re-parented.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.served import TILEFAN, answers, free_port
from tests.helpers import wait_until

MARK = "TILEFAN_E2E_MARK"


def marked_pids(mark: str) -> list[int]:
    """Live processes (zombies excluded) whose environment carries ``mark``."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


@dataclass
class ServeProcess:
    home: Path
    log: Path
    workers: int = 2
    extra: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # more settings for the server

    def __post_init__(self) -> None:
        self.mark = uuid.uuid4().hex
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TILEFAN_")}
        env.update({"TILEFAN_HOME": str(self.home), "TILEFAN_WORKERS": str(self.workers), "TILEFAN_KERNEL": "numpy",
                    MARK: self.mark, **self.env})
        with open(self.log, "ab") as log_fp:
            self.proc = subprocess.Popen([str(TILEFAN), "serve", "--port", str(self.port), *self.extra],
                                         cwd=self.home.parent, env=env, stdout=log_fp, stderr=subprocess.STDOUT)

        def up() -> bool:
            assert self.proc.poll() is None, f"tilefan serve exited with {self.proc.returncode}: {self.log.read_text()}"
            return answers(self.base)

        wait_until(up, "tilefan serve to answer", 20.0, interval=0.05)

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    def job(self, job_id: str) -> dict[str, Any]:
        status, doc = self.request("GET", f"/jobs/{job_id}")
        assert status == 200, doc
        return dict(doc)

    def wait_ended(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            doc = self.job(job_id)
            return None if doc["status"] in ("QUEUED", "RUNNING") else doc

        return wait_until(ended, f"job {job_id} to end (log: {self.log})", timeout, interval=0.05)

    def pids(self) -> list[int]:
        return marked_pids(self.mark)

    def pool_workers(self) -> list[int]:
        """The pool's worker processes: children of the fork server."""
        servers = [p for p in self.pids() if "forkserver" in cmdline(p) and parent_of(p) == self.proc.pid]
        return [p for p in self.pids() if servers and parent_of(p) in servers]

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def wait_all_gone(self, timeout: float = 15.0) -> None:
        wait_until(lambda: not self.pids(), "every process of the server to exit", timeout, interval=0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in self.pids():  # a failed test must not leave processes behind either
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextmanager
def running(root: Path, workers: int = 2, extra: tuple[str, ...] = ()) -> Iterator[ServeProcess]:
    """Yield a running ``tilefan serve`` (``extra``: more command-line flags) with its own
    home under ``root``; stop it (and everything it started) afterwards."""
    (root / "home").mkdir(parents=True, exist_ok=True)
    server = ServeProcess(home=root / "home", log=root / "server.log", workers=workers, extra=extra)
    try:
        yield server
    finally:
        server.close()


@contextmanager
def serving(root: Path, workers: int = 2) -> Iterator[str]:
    """The base URL of a server ``running`` under ``root``, for tests that only speak HTTP."""
    with running(root, workers) as server:
        yield server.base

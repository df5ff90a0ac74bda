"""Start the real ``tilefan serve`` on a free port with its own home, for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.test_serve import START_DEADLINE_S, TILEFAN, answers, free_port
from tests.helpers import wait_until


@contextmanager
def serving(root: Path, workers: int = 2) -> Iterator[str]:
    """Yield the base URL of a running ``tilefan serve``; stop it afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILEFAN_")}
    env.update({"TILEFAN_HOME": str(root / "home"), "TILEFAN_WORKERS": str(workers)})
    with open(root / "server.log", "wb") as log:
        proc = subprocess.Popen([str(TILEFAN), "serve", "--port", str(port)], cwd=root, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, (root / "server.log").read_text()
            return answers(url)

        wait_until(up, "tilefan serve to answer", START_DEADLINE_S, 0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)

"""What an oversized JSON body costs ``tilefan serve``: a client POSTs /jobs declaring a
body over the 64 KiB JSON cap but under the 256 MiB upload cap, and sends it as fast as it
can until the server answers.

Reports, per server: the status, how long until the answer, how many body bytes the
client got to send before it, and the server's RSS growth and peak (``VmHWM``). With
``--baseline DIR`` (another checkout) the same is measured against a server from DIR,
alternating, ``--rounds`` times.

Usage: ``.venv/bin/python benchmarks/http_limits.py [--mib 200] [--baseline DIR --rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

from service import start_server  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parent.parent


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def one(root: Path, home: Path, mib: int) -> str:
    server, port = start_server(root, home)
    try:
        rss_before = _status_kib(server.pid, "VmRSS")
        total, sent, block = mib * 2**20, 0, b" " * 2**20
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            start = time.perf_counter()
            sock.sendall(f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {total}\r\n\r\n".encode())
            sock.setblocking(False)
            answer = b""
            while not answer:
                try:
                    answer = sock.recv(65536)
                    break
                except BlockingIOError:
                    pass
                if sent < total:
                    try:
                        sent += sock.send(block[: min(len(block), total - sent)])
                    except BlockingIOError:
                        time.sleep(0.001)
                    except (BrokenPipeError, ConnectionResetError):
                        break
                else:
                    time.sleep(0.001)
            took = time.perf_counter() - start
        status = answer.split(b"\r\n", 1)[0].decode() if answer else "(no answer)"
        grew = _status_kib(server.pid, "VmRSS") - rss_before
        peak = _status_kib(server.pid, "VmHWM")
        return (f"{status}: answered after {took * 1000:.0f} ms, {sent / 2**20:.1f} MiB of the body sent; "
                f"server RSS +{grew / 1024:.1f} MiB, peak {peak / 1024:.0f} MiB")
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; body {args.mib} MiB")
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            runs = [("new", ROOT)] + ([("old", args.baseline.resolve())] if args.baseline else [])
            for name, root in runs if r % 2 == 0 else runs[::-1]:
                print(f"round {r + 1} {name}: {one(root, Path(tmp) / f'home-{r}-{name}', args.mib)}")


if __name__ == "__main__":
    main()

"""The embedded service under load: small jobs per second, POST latency at 25 clients,
and the overhead per small job against the same job run by the CLI.

Starts a real ``tilefan serve`` (waitress, 2 pool workers) on a fresh home, then:

1. throughput and latency: 25 client threads POST ``--jobs`` small jobs (8 per client
   by default) as fast as each gets its answer; every POST's latency is recorded, and
   the clock stops when the last job is SUCCEEDED;
2. overhead: one small job at a time (``--sequential`` of them), from the POST until the
   client sees SUCCEEDED (polling every 2 ms), against ``tilefan run`` of the same job
   measured by its own record (wall_s: plan start to finish; a fresh process each time).

With ``--baseline DIR`` (another checkout of tilefan, e.g. ``git worktree add /tmp/old
main``), each of ``--rounds`` rounds measures a server from DIR and one from this checkout,
back to back in alternating order, so both see the same machine load; the summary gives
the new/old ratio of each round's medians.

Usage: ``.venv/bin/python benchmarks/service.py [--jobs 200] [--sequential 20] [--baseline DIR --rounds 3]``
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TILEFAN = [sys.executable, "-m", "tilefan.entrypoints.cli.main"]
SMALL = {"kind": "add", "a": {"shape": [64, 64]}, "b": {"shape": [64, 64]}, "tile": 32}
CLIENTS = 25


def _env(home: Path, root: Path = ROOT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILEFAN_")}
    env.update({"TILEFAN_HOME": str(home), "TILEFAN_WORKERS": "2", "PYTHONPATH": str(root)})
    if root != ROOT:
        # Every job here has the home's one owner. This checkout's default server queues them
        # all (TILEFAN_MAX_QUEUED_JOBS); an older one (--baseline) capped QUEUED jobs by this.
        env["TILEFAN_MAX_CONCURRENT_JOBS"] = "100000"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as resp:
        doc = json.loads(resp.read())
        return resp.status, doc, time.perf_counter() - start


def _wait_done(base: str, job_id: str, poll_s: float) -> dict[str, Any]:
    while True:
        _, doc, _ = _call(base, "GET", f"/jobs/{job_id}")
        if doc["status"] not in ("QUEUED", "RUNNING"):
            return dict(doc)
        time.sleep(poll_s)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load(base: str, jobs: int) -> dict[str, float]:
    start = time.perf_counter()
    with cf.ThreadPoolExecutor(CLIENTS) as pool:
        posted = list(pool.map(lambda _: _call(base, "POST", "/jobs", SMALL), range(jobs)))
    assert all(status == 202 for status, _, _ in posted)
    docs = [_wait_done(base, doc["job_id"], 0.01) for _, doc, _ in posted]
    elapsed = time.perf_counter() - start
    assert {d["status"] for d in docs} == {"SUCCEEDED"}, {d["status"] for d in docs}
    latencies = [t * 1000 for _, _, t in posted]
    return {"jobs": jobs, "seconds": elapsed, "jobs_per_s": jobs / elapsed,
            "post_p50_ms": statistics.median(latencies), "post_p99_ms": _pct(latencies, 0.99),
            "post_max_ms": max(latencies)}


def sequential(base: str, count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        _, doc, _ = _call(base, "POST", "/jobs", SMALL)
        assert _wait_done(base, doc["job_id"], 0.002)["status"] == "SUCCEEDED"
        out.append((time.perf_counter() - start) * 1000)
    return out


def cli_runs(home: Path, count: int, workers: int) -> list[float]:
    out = []
    args = ["run", "add", "--shape-a", "64x64", "--shape-b", "64x64", "--tile", "32", "--json"]
    for _ in range(count):
        env = {**_env(home), "TILEFAN_WORKERS": str(workers)}
        done = subprocess.run([*TILEFAN, *args], env=env, check=True, capture_output=True, text=True, cwd=ROOT)
        doc = json.loads(done.stdout)
        out.append(doc["timings"]["wall_s"] * 1000)  # plan, tiles and reduce: started_at to finished_at
    return out


def start_server(root: Path, home: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``tilefan serve`` from the checkout ``root`` on a free port, once it answers."""
    port = _free_port()
    server = subprocess.Popen([*TILEFAN, "serve", "--port", str(port)], env=_env(home, root), cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            _call(f"http://127.0.0.1:{port}", "GET", "/openapi.json")
            return server, port
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("tilefan serve did not start") from None
            time.sleep(0.1)


def serve_and_measure(root: Path, home: Path, jobs: int, count: int) -> tuple[dict[str, float], list[float]]:
    """Start ``tilefan serve`` from the checkout ``root`` and measure it (load, then one at a time)."""
    server, port = start_server(root, home)
    base = f"http://127.0.0.1:{port}"
    try:
        sequential(base, 3)  # warm the pool
        before = _cpu_s(server.pid)
        result = load(base, jobs)
        # The server process's own CPU (HTTP threads and dispatcher; not its pool's workers):
        # what competes with the HTTP threads for the GIL, and less sensitive to machine load.
        result["server_cpu_ms_per_job"] = (_cpu_s(server.pid) - before) * 1000 / jobs
        return result, sequential(base, count)
    finally:
        server.terminate()
        server.wait(30)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load_line(result: dict[str, float]) -> str:
    return (f"{result['jobs']} jobs from {CLIENTS} clients in {result['seconds']:.2f} s = "
            f"{result['jobs_per_s']:.1f} jobs/s; POST latency p50 {result['post_p50_ms']:.1f} ms, "
            f"p99 {result['post_p99_ms']:.1f} ms, max {result['post_max_ms']:.1f} ms; "
            f"server CPU {result['server_cpu_ms_per_job']:.1f} ms per job")


def side_by_side(baseline: Path, rounds: int, jobs: int, count: int, tmp: Path) -> None:
    """Old and new servers alternately, ``rounds`` times; ratios new/old per round."""
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores; small job: {json.dumps(SMALL)}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for r in range(rounds):
        order = [("old", baseline), ("new", ROOT)] if r % 2 == 0 else [("new", ROOT), ("old", baseline)]
        got: dict[str, tuple[dict[str, float], list[float]]] = {}
        for name, root in order:
            got[name] = serve_and_measure(root, tmp / f"home-{r}-{name}", jobs, count)
            print(f"round {r + 1} {name}: {_load_line(got[name][0])}; one job at a time median "
                  f"{statistics.median(got[name][1]):.1f} ms (load average {os.getloadavg()[0]:.2f})")
        (old, old_seq), (new, new_seq) = got["old"], got["new"]
        print(f"round {r + 1} new/old: p50 {new['post_p50_ms'] / old['post_p50_ms']:.2f}, "
              f"p99 {new['post_p99_ms'] / old['post_p99_ms']:.2f}, jobs/s {new['jobs_per_s'] / old['jobs_per_s']:.2f}, "
              f"one job {statistics.median(new_seq) / statistics.median(old_seq):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--sequential", type=int, default=20)
    parser.add_argument("--baseline", type=Path, help="another tilefan checkout to measure side by side")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            side_by_side(args.baseline.resolve(), args.rounds, args.jobs, args.sequential, Path(tmp))
            return
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        result, served = serve_and_measure(ROOT, Path(tmp) / "home", args.jobs, args.sequential)
        runs = max(5, args.sequential // 4)
        cli = {w: cli_runs(Path(tmp) / f"cli-home-{w}", runs, w) for w in (2, 1)}
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores; small job: {json.dumps(SMALL)}")
    print(f"load: {_load_line(result)}")
    s_med = statistics.median(served)
    print(f"one job at a time: service POST->SUCCEEDED median {s_med:.1f} ms (p90 {_pct(served, 0.9):.1f} ms)")
    for workers, times in cli.items():
        c_med = statistics.median(times)
        pool = "a fresh pool of 2 forked workers" if workers == 2 else "tiles inline, no pool"
        print(f"  CLI, {workers} worker(s) ({pool}): record wall_s median {c_med:.1f} ms; "
              f"service overhead {s_med - c_med:+.1f} ms per job")


if __name__ == "__main__":
    main()

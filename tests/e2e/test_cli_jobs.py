"""The job commands, the readable dry run, ``--version`` and a closed pipe, on the real command."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

CLI = [sys.executable, "-m", "tilefan.entrypoints.cli.main"]


def tilefan(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # As a user's shell runs it: without PYTHONUNBUFFERED, stdout into a pipe is buffered, so
    # these catch a command that leaves (cli.main.entry skips the interpreter's teardown)
    # before flushing what it printed.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILEFAN_") and k != "PYTHONUNBUFFERED"}
    env.update({"TILEFAN_HOME": str(home), "TILEFAN_WORKERS": "2"})
    proc = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A home holding one finished matmul job, its id and its output. The commands that read
    it run in later processes: the run left its records in the store's write-ahead log."""
    root = tmp_path_factory.mktemp("jobs")
    out = root / "C.npy"
    r = tilefan(root / "home", "run", "matmul", "--shape-a", "200x100", "--shape-b", "100x120", "--tile", "64",
                "--seed", "4", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    return root / "home", json.loads(r.stdout)["job_id"], out


def test_jobs_lists_and_status_shows_the_job(done: tuple[Path, str, Path]) -> None:
    home, job_id, _ = done
    listed = tilefan(home, "jobs")
    assert listed.returncode == 0 and job_id in listed.stdout and "SUCCEEDED" in listed.stdout
    page = json.loads(tilefan(home, "jobs", "--json").stdout)
    assert [j["job_id"] for j in page["jobs"]] == [job_id]
    status = tilefan(home, "status", job_id, "--json")
    assert json.loads(status.stdout)["progress"]["tiles_done"] == 8


def test_result_copies_the_output(done: tuple[Path, str, Path], tmp_path: Path) -> None:
    home, job_id, out = done
    r = tilefan(home, "result", job_id, "--out", str(tmp_path / "copy.npy"))
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "copy.npy"), np.load(out))


def test_report_writes_the_results_folder(done: tuple[Path, str, Path], tmp_path: Path) -> None:
    home, job_id, _ = done
    r = tilefan(home, "report", job_id, "--out", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "rep" / "logs.csv").read_text().splitlines()))
    assert sorted(int(row["tile_id"]) for row in rows) == list(range(8))
    assert all(float(row["duration_s"]) > 0 and row["worker"] and int(row["bytes_written"]) > 0 for row in rows)
    assert list(csv.DictReader((tmp_path / "rep" / "error.csv").read_text().splitlines())) == []
    perf = (tmp_path / "rep" / "performance.txt").read_text()
    assert "8 done of 8" in perf and "speedup" in perf and "efficiency" in perf
    assert (tmp_path / "rep" / "runtime.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cancel_of_a_finished_job_and_unknown_ids_fail_in_one_line(done: tuple[Path, str, Path]) -> None:
    home, job_id, _ = done
    r = tilefan(home, "cancel", job_id)
    assert r.returncode == 1 and "SUCCEEDED" in r.stderr and len(r.stderr.splitlines()) == 1
    r = tilefan(home, "status", "0123456789abcdef")
    assert r.returncode == 2 and r.stderr.strip() == "error: no job 0123456789abcdef here"


def test_dry_run_is_a_table_version_and_allowed_values(tmp_path: Path) -> None:
    r = tilefan(tmp_path, "run", "atoms", "--grid", "32", "--atoms", "10", "--tile", "16", "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line[:9].strip() for line in lines] == ["plan", "tiles", "work", "data", "memory", "time", "cost",
                                                     "aws run", "aws time", "aws cost", "aws load"]
    assert lines[1].startswith("tiles     8 (")
    assert lines[7] == "aws run   8 Lambda tiles, 8 at once (inline map), 1 wave"
    assert tilefan(tmp_path, "--version").stdout.startswith("tilefan ")
    assert "{float32,float64}" in tilefan(tmp_path, "run", "atoms", "--help").stdout


def test_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILEFAN_")}
    env["TILEFAN_HOME"] = str(tmp_path)
    cmd = " ".join([*CLI, "run", "matmul", "--shape-a", "3000x3000", "--shape-b", "3000x3000", "--tile", "64",
                    "--dry-run", "--json"])
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | head -1"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout == "{\n" and proc.stderr == "" and proc.returncode == 0


@pytest.mark.parametrize("module, command, extra", [("chalice", ["serve"], "serve"),
                                                     ("boto3", ["worker"], "aws")])
def test_a_missing_extra_is_one_line_not_a_traceback(
    module: str, command: list[str], extra: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from tilefan.entrypoints.cli.main import main

    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    monkeypatch.setenv("TILEFAN_HOME", str(tmp_path))
    monkeypatch.setenv("TILEFAN_BUCKET", "bucket")
    monkeypatch.setenv("TILEFAN_TABLE", "table")
    monkeypatch.setenv("TILEFAN_SPOT_QUEUE_URL", "https://queue.invalid/q")
    monkeypatch.setenv("TILEFAN_SPOT_DLQ_URL", "https://queue.invalid/dlq")
    assert main(command) == 1
    err = capsys.readouterr().err
    assert err == f"error: tilefan {command[0]} needs the {extra} extra: pip install 'tilefan[{extra}]'\n"


def test_report_without_matplotlib_writes_the_rest_and_says_how(
    done: tuple[Path, str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tilefan.entrypoints.cli.main import main

    home, job_id, _ = done
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "tilefan.entrypoints.report.gantt", raising=False)
    monkeypatch.setenv("TILEFAN_HOME", str(home))
    assert main(["report", job_id, "--out", str(tmp_path / "rep")]) == 0
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["error.csv", "logs.csv", "performance.txt"]
    assert "pip install 'tilefan[report]'" in capsys.readouterr().err


@pytest.mark.parametrize("columns", [0, 60, 200])
def test_progress_bar_on_a_terminal_redraws_one_line_within_its_width(tmp_path: Path, columns: int) -> None:
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24 if columns else 0, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILEFAN_")}
    env.update({"TILEFAN_HOME": str(tmp_path), "TILEFAN_WORKERS": "2"})
    chunks: list[bytes] = []

    def drain() -> None:
        # Read while the command runs: a pty's buffer is small, and a writer blocked on a
        # full one would hang the run.
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the follower side closed: the command has exited
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.run([*CLI, "run", "atoms", "--grid", "32", "--atoms", "50", "--tile", "8", "--verify"],
                          env=env, stderr=follower, stdout=subprocess.PIPE, timeout=60)
    os.close(follower)
    reader.join(10)
    os.close(leader)
    err = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert err.count("\n") == 1  # one line, redrawn in place, ended once
    frames = [f for f in err.replace("\n", "\r").split("\r") if f]
    assert frames[-1].startswith("atoms: 100%|") and "64/64 tiles" in frames[-1]
    assert max(len(f) for f in frames) <= (columns or 80)
    assert "s]" in frames[-1] and "point/s" in frames[-1]

"""``make test``'s first step (.ci/system-deps.sh) on a machine without the Debian packages the
tests need: as root with apt-get it installs exactly the missing ones; otherwise it stops at
once with one line giving the command to run. Fake ``id`` and ``apt-get`` on a bare PATH
stand in for the machine, so nothing is installed here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "system-deps.sh"
BASH = shutil.which("bash") or "/bin/bash"


def _machine(tmp_path: Path, uid: int, apt: bool, present: tuple[str, ...] = ()) -> Path:
    """A PATH holding only a fake ``id`` (saying ``uid``), maybe a recording ``apt-get``, and
    the named programs (as stubs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stubs = {"id": f"#!{BASH}\necho {uid}\n", **{name: f"#!{BASH}\nexit 0\n" for name in present}}
    if apt:
        stubs["apt-get"] = f'#!{BASH}\necho "$*" >> {tmp_path / "apt.log"}\n'
    for name, text in stubs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _run(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, str(SCRIPT)], env={"PATH": str(bin_dir)}, capture_output=True, text=True,
                          timeout=30)


@pytest.mark.parametrize("uid, apt", [(1000, True), (0, False)])
def test_without_root_or_apt_it_stops_at_once_with_the_one_command(tmp_path: Path, uid: int, apt: bool) -> None:
    done = _run(_machine(tmp_path, uid, apt, present=("gcc",)))
    assert done.returncode == 1
    assert done.stderr == ("make test needs chromium binutils; install with: "
                           "sudo apt-get install -y --no-install-recommends chromium binutils\n")
    assert not (tmp_path / "apt.log").exists()


def test_as_root_with_apt_it_installs_only_what_is_missing(tmp_path: Path) -> None:
    done = _run(_machine(tmp_path, 0, True, present=("objdump",)))
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls == ["update -qq", "install -y -qq --no-install-recommends chromium gcc"]


def test_with_everything_present_it_does_nothing(tmp_path: Path) -> None:
    done = _run(_machine(tmp_path, 1000, False, present=("chromium", "gcc", "objdump")))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")

"""The wheelhouse script, end to end on a tiny lock: ``lock`` pins a requirement and what it
pulls in with hashes, the build puts exactly those wheels and the tilefan wheel next to a
lock of all of them, and the user data's own install command (index-free, hashes
required) installs from that directory alone, and refuses a wheel that was changed.

The wheels are tiny ones made here and served from a local directory (``PIP_SOURCE``), so
nothing reaches a package index.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "stepfunctions" / "wheelhouse.sh"


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal pure-Python wheel: one module and the metadata pip reads."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": "\n".join(["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
                                       *(f"Requires-Dist: {r}" for r in requires)]) + "\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},sha256={hashlib.sha256(text.encode()).hexdigest()},{len(text)}\n"
                     for path, text in files.items()) + f"{info}/RECORD,,\n"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in {**files, f"{info}/RECORD": record}.items():
            wheel.writestr(member, text)
    return path


def run(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "PYTHON": sys.executable, "PIP_CONFIG_FILE": "/dev/null"}
    return subprocess.run(["bash", str(SCRIPT), *args], env={**base, **env}, capture_output=True, text=True,
                          timeout=120, check=False)


def install_command(wheelhouse: Path, site: Path) -> list[str]:
    """The launch template's pip install, pointed at ``wheelhouse`` and a target directory
    instead of the instance's /opt/tilefan venv."""
    data = json.loads((ROOT / "stepfunctions" / "merge-template.json").read_text())
    script = data["Resources"]["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
    [line] = [line for line in script["Fn::Base64"]["Fn::Sub"].splitlines() if re.search(r"\bpip install\b", line)]
    words = shlex.split(line.replace("/opt/tilefan/wheelhouse", str(wheelhouse)))
    assert words[:2] == ["/opt/tilefan/bin/pip", "install"]
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *words[1:], "--target", str(site)]


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """A local "index": tinya needs tinyb; an unrelated tinyc is there too."""
    folder = tmp_path / "index"
    folder.mkdir()
    make_wheel(folder, "tinya", "1.0", ("tinyb>=2",))
    make_wheel(folder, "tinyb", "2.0")
    make_wheel(folder, "tinyc", "3.0")
    return folder


def test_a_wheelhouse_built_from_a_tiny_lock_installs_offline(tmp_path: Path, index: Path) -> None:
    requirements, lock, out = tmp_path / "requirements.txt", tmp_path / "lock.txt", tmp_path / "dist"
    requirements.write_text("tinya==1.0\n")
    source = {"PIP_SOURCE": f"--no-index --find-links {index}", "WORKER_REQUIREMENTS": str(requirements),
              "WORKER_LOCK": str(lock), "OUT": str(out)}
    locked = run(tmp_path, "lock", **source)
    assert locked.returncode == 0, locked.stderr
    for name, version in (("tinya", "1.0"), ("tinyb", "2.0")):
        digest = hashlib.sha256((index / f"{name}-{version}-py3-none-any.whl").read_bytes()).hexdigest()
        assert f"{name}=={version} \\\n    --hash=sha256:{digest}" in lock.read_text()
    assert "tinyc" not in lock.read_text()

    # The build wants package.sh's tilefan wheel; a stand-in that needs tinya.
    (out / "worker").mkdir(parents=True)
    tilefan = make_wheel(out / "worker", "tilefan", "0.1.0", ("tinya==1.0",))
    built = run(tmp_path, **source)
    assert built.returncode == 0, built.stderr
    wheelhouse = out / "worker"
    assert sorted(p.name for p in wheelhouse.glob("*.whl")) == [
        "tilefan-0.1.0-py3-none-any.whl", "tinya-1.0-py3-none-any.whl", "tinyb-2.0-py3-none-any.whl"]
    final = (wheelhouse / "worker-lock.txt").read_text()
    assert final.startswith(lock.read_text())
    assert f"tilefan[worker]==0.1.0 \\\n    --hash=sha256:{hashlib.sha256(tilefan.read_bytes()).hexdigest()}" in final

    site = tmp_path / "site"
    installed = subprocess.run(install_command(wheelhouse, site), capture_output=True, text=True, timeout=120,
                               check=False, env={"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null"})
    assert installed.returncode == 0, installed.stderr
    assert {p.name for p in site.glob("*.py")} == {"tilefan.py", "tinya.py", "tinyb.py"}

    # A wheel changed after the lock was written is refused.
    with zipfile.ZipFile(wheelhouse / "tinyb-2.0-py3-none-any.whl", "a") as wheel:
        wheel.writestr("extra.txt", "not what was locked")
    refused = subprocess.run(install_command(wheelhouse, tmp_path / "site2"), capture_output=True, text=True,
                             timeout=120, check=False, env={"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null"})
    assert refused.returncode != 0 and "THESE PACKAGES DO NOT MATCH THE HASHES" in refused.stderr


def test_the_build_refuses_to_run_without_the_tilefan_wheel(tmp_path: Path, index: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text("")
    result = run(tmp_path, OUT=str(tmp_path / "dist"), WORKER_LOCK=str(lock),
                 PIP_SOURCE=f"--no-index --find-links {index}")
    assert result.returncode == 1 and "run package.sh first" in result.stderr

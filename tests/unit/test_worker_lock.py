"""A booting spot worker installs from the wheelhouse alone: the launch template's user data
installs with no package index and every hash required, from the lock, and the lock pins
every package the worker runs (its runtime dependencies, the ``worker`` extra and all
they pull in on Linux x86_64 with CPython 3.13) to a version its requirements accept."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = json.loads((ROOT / "stepfunctions" / "merge-template.json").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = (ROOT / "stepfunctions" / "worker-lock.txt").read_text()
# The worker's interpreter and platform, for evaluating dependency markers.
WORKER_ENV = {**default_environment(), "python_version": "3.13", "python_full_version": "3.13.0",
              "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
              "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def user_data() -> str:
    data = TEMPLATE["Resources"]["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    script: str = data["UserData"]["Fn::Base64"]["Fn::Sub"]
    return script


def locked() -> dict[str, tuple[str, list[str]]]:
    """Package name -> (version, hashes), from the lock's ``name==version --hash=...`` entries."""
    entries = re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\\n)?)+)", LOCK, re.M)
    return {canonicalize_name(name): (version, re.findall(r"sha256:([0-9a-f]{64})", hashes))
            for name, version, hashes in entries}


def worker_requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    return [Requirement(r) for r in (*project["dependencies"], *project["optional-dependencies"]["worker"])]


def test_the_user_data_installs_only_from_the_wheelhouse_with_hashes() -> None:
    installs = [shlex.split(line) for line in user_data().splitlines() if re.search(r"\bpip\b.* install\b", line)]
    assert len(installs) == 1, installs  # one install, and nothing else reaches for an index
    [words] = installs
    assert words[:2] == ["/opt/tilefan/bin/pip", "install"]
    assert "--no-index" in words and "--require-hashes" in words
    assert words[words.index("--find-links") + 1] == "/opt/tilefan/wheelhouse"
    assert words[words.index("-r") + 1] == "/opt/tilefan/wheelhouse/worker-lock.txt"
    assert not [w for w in words[2:] if not w.startswith("-") and w not in
                {"/opt/tilefan/wheelhouse", "/opt/tilefan/wheelhouse/worker-lock.txt"}]  # no bare package names
    # The wheelhouse is copied from the bucket's worker/ prefix first.
    copy = "aws s3 cp --quiet --recursive s3://${JobsBucket}/worker/ /opt/tilefan/wheelhouse/"
    assert user_data().index(copy) < user_data().index("pip install")


def test_every_locked_package_has_a_version_and_a_hash() -> None:
    lock = locked()
    entries = [line for line in LOCK.splitlines() if line and not line.startswith(("#", " "))]
    assert len(entries) == len(lock) > 0  # every entry parsed
    for name, (version, hashes) in lock.items():
        assert version and hashes, name


def test_every_runtime_dependency_of_the_worker_is_pinned_in_the_lock() -> None:
    lock = locked()
    for requirement in worker_requirements():
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{name} is not in stepfunctions/worker-lock.txt: run make worker-lock"
        assert requirement.specifier.contains(lock[name][0], prereleases=True), (requirement, lock[name][0])
    # Everything those pull in on the worker, as the installed distributions declare it
    # (names only: this venv may hold other patch versions; the wheelhouse build resolves
    # the locked versions themselves, offline, for the worker's platform).
    seen: set[str] = set()
    todo = [canonicalize_name(r.name) for r in worker_requirements()]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({**WORKER_ENV, "extra": ""}):
                continue
            dependency = canonicalize_name(requirement.name)
            assert dependency in lock, f"{dependency} (needed by {name}) is not in the lock: run make worker-lock"
            todo.append(dependency)
    assert set(lock) == seen, f"locked but not needed by the worker: {sorted(set(lock) - seen)}"


def test_the_lock_agrees_with_the_exact_pins_elsewhere() -> None:
    # The Lambda package (requirements.txt) and the deploying extra's exact pins run the same
    # versions as the workers. (The library's own dependencies are ranges, not deployments.)
    lock = locked()
    pins = [*PYPROJECT["project"]["optional-dependencies"]["aws"],
            *(ROOT / "requirements.txt").read_text().splitlines()]
    for text in pins:
        text = text.split("#", 1)[0].strip()
        if "==" not in text:
            continue
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name in lock:
            assert requirement.specifier.contains(lock[name][0]), (text, lock[name][0])

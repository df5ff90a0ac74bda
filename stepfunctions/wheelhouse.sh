#!/usr/bin/env bash
# The spot workers' wheelhouse: every wheel a worker installs, so a booting instance needs
# no package index (docs/spot.md).
#
#   stepfunctions/wheelhouse.sh lock   # worker-requirements.txt -> worker-lock.txt (PyPI, hashes)
#   stepfunctions/wheelhouse.sh        # after package.sh: the locked wheels into $OUT/worker/
#
# `lock` resolves the worker's pinned requirements for its platform (CPython 3.13, as the
# Lambda functions run; manylinux x86_64, binary wheels only) and writes each wheel's version and sha256. The
# build downloads exactly those files (pip checks every hash), adds the tilefan wheel that
# package.sh built, with its own hash, as `tilefan[worker]`, and writes
# $OUT/worker/worker-lock.txt. A resolution against the wheelhouse alone (no index, hashes
# required, the worker's platform) then proves the lock is complete. Upload $OUT/worker/
# to s3://<JobsBucket>/worker/; instances install with
#   pip install --no-index --find-links <wheelhouse> --require-hashes -r worker-lock.txt
#
# PIP_SOURCE adds pip options saying where wheels come from (the tests pass a local
# directory with --no-index); by default pip's own configuration (PyPI).
set -euo pipefail

cd "$(dirname "$0")/.."

MODE="${1:-build}"
OUT="${OUT:-dist}"
PYTHON="${PYTHON:-.venv/bin/python}"
WORKER_REQUIREMENTS="${WORKER_REQUIREMENTS:-stepfunctions/worker-requirements.txt}"
WORKER_LOCK="${WORKER_LOCK:-stepfunctions/worker-lock.txt}"
read -r -a source <<<"${PIP_SOURCE:-}"
# The worker's interpreter and platform (Amazon Linux 2023's python3.13, glibc 2.34: manylinux
# up to 2_34): the Lambda functions' Python, so both run the same NumPy.
target=(--only-binary=:all: --python-version 3.13 --implementation cp --abi cp313
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
pip=("$PYTHON" -m pip --disable-pip-version-check --quiet)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [[ "$MODE" == lock ]]; then
    "${pip[@]}" download "${source[@]}" "${target[@]}" --dest "$work/wheels" -r "$WORKER_REQUIREMENTS"
    "$PYTHON" - "$work/wheels" "$WORKER_REQUIREMENTS" "$WORKER_LOCK" <<'PY'
import hashlib
import pathlib
import sys

wheels, requirements, lock = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
lines = [
    f"# The spot workers' packages, resolved from {pathlib.Path(requirements).name} for CPython 3.13 on",
    "# manylinux x86_64 by `make worker-lock`: every wheel a worker installs, with its sha256.",
    "# Do not edit; change the requirements and run `make worker-lock` again.",
]
for wheel in sorted(wheels.glob("*.whl"), key=lambda p: p.name.lower()):
    name, version = wheel.name.split("-")[:2]
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    lines.append(f"{name.lower().replace('_', '-')}=={version} \\\n    --hash=sha256:{digest}")
lock.write_text("\n".join(lines) + "\n")
print(f"{lock}: {len(lines) - 3} packages")
PY
    exit 0
fi

[[ "$MODE" == build ]] || { echo "usage: $0 [lock]" >&2; exit 2; }
shopt -s nullglob
built=("$OUT"/worker/tilefan-*.whl)
((${#built[@]} == 1)) || { echo "expected one $OUT/worker/tilefan-*.whl (run package.sh first)" >&2; exit 1; }
"${pip[@]}" download "${source[@]}" "${target[@]}" --no-deps --require-hashes --dest "$OUT/worker" -r "$WORKER_LOCK"
"$PYTHON" - "${built[0]}" "$WORKER_LOCK" "$OUT/worker/worker-lock.txt" <<'PY'
import hashlib
import pathlib
import sys

wheel, lock, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
version = wheel.name.split("-")[1]
digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
out.write_text(lock.read_text() + f"tilefan[worker]=={version} \\\n    --hash=sha256:{digest}\n")
PY
# What an instance will do, resolved for its platform from the wheelhouse alone.
"${pip[@]}" install --dry-run --ignore-installed --no-index --find-links "$OUT/worker" --require-hashes \
    "${target[@]}" --target "$work/site" -r "$OUT/worker/worker-lock.txt"
count=$(grep -c -- '--hash=sha256:' "$OUT/worker/worker-lock.txt")
echo "wheelhouse: $OUT/worker/ ($count wheels, worker-lock.txt); upload it to s3://<JobsBucket>/worker/"

#!/usr/bin/env bash
# The Debian packages `make test` needs, installed only when missing: chromium for the browser
# test (never a downloaded browser), gcc to build the C atoms kernel, binutils (objdump) to check
# it. As root with apt-get they are installed quietly; otherwise this stops at once and prints
# the one command that installs them, so the test run never ends in errors for want of them.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v objdump >/dev/null 2>&1 || missing+=(binutils)
((${#missing[@]})) || exit 0
command="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "make test needs ${missing[*]}; install with: sudo $command" >&2
    exit 1
fi
echo "installing ${missing[*]} (Debian packages the tests need)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

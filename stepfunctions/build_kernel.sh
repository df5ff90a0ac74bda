#!/usr/bin/env bash
# Compile the C atoms kernel (tilefan/compute/atoms_kernel.c) into a shared library.
#
#   stepfunctions/build_kernel.sh [OUT]     # default tilefan/compute/_atoms_kernel.so
#
# -nostdlib with libgcc only: the library imports no libc symbol, so it loads under any
# glibc (the Lambda python3.13 runtime has 2.34, python3.11's 2.26) and any Python. -ffast-math is a compile flag only:
# linked with it, gcc would add crtfastmath.o, which changes the floating-point mode of
# the whole Python process when the library loads.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-tilefan/compute/_atoms_kernel.so}"
CC="${CC:-gcc}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$CC" -O3 -ffast-math -fPIC -std=c11 -Wall -Wextra -Werror \
    -c tilefan/compute/atoms_kernel.c -o "$work/atoms_kernel.o"
"$CC" -shared -nostdlib -Wl,-z,noexecstack -o "$work/kernel.so" "$work/atoms_kernel.o" -lgcc
if command -v objdump >/dev/null && objdump -T "$work/kernel.so" | grep -q GLIBC_; then
    echo "build_kernel: the kernel needs glibc symbols:" >&2
    objdump -T "$work/kernel.so" | grep GLIBC_ >&2
    exit 1
fi
mv "$work/kernel.so" "$OUT"
echo "built $OUT"

#!/bin/bash
# Builds native/selfcheck/kernel_selfcheck.cpp with the kernel sources and runs
# it: natively (x86 paths), and for aarch64 (NEON with and without dotprod)
# through a cross compiler and qemu-user when they are installed
# (apt-get install g++-aarch64-linux-gnu qemu-user). Exit status: 0 when
# every check that could run passed.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="native/selfcheck/kernel_selfcheck.cpp $(ls native/src/kernels/*.cpp) native/src/runtime/thread_pool.cpp"
# native/selfcheck/stub/napi.h stands in for node-addon-api (bindings/errors.h includes it).
FLAGS="-std=gnu++17 -O2 -Wall -Wextra -Wno-unused-parameter -Inative/selfcheck/stub -Inative/src -pthread"
OUT="${TMPDIR:-/tmp}/tokenstream-selfcheck"
mkdir -p "$OUT"

echo "== native ($(uname -m))"
g++ $FLAGS $SRC -o "$OUT/selfcheck-native"
"$OUT/selfcheck-native"

if command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null; then
  for march in armv8-a armv8.2-a+dotprod; do
    echo "== aarch64 -march=$march (qemu)"
    aarch64-linux-gnu-g++ $FLAGS -march=$march -static $SRC -o "$OUT/selfcheck-$march"
    qemu-aarch64 -cpu max "$OUT/selfcheck-$march"
  done
else
  echo "(aarch64 cross compiler or qemu-aarch64 not installed: NEON not checked)"
fi

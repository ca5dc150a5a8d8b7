#!/usr/bin/env bash
# Installs what is missing, builds everything and runs the whole test suite.
#   scripts/test.sh            release build in build/release
#   scripts/test.sh asan       address+undefined sanitizers in build/asan
#   scripts/test.sh tsan       thread sanitizer in build/tsan, with the
#                              instrumented Abseil of scripts/tsan-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"

scripts/install-deps.sh scripts/debian-packages.txt scripts/example-packages.txt \
  scripts/test-packages.txt
if [ "$preset" = tsan ]; then
  # ThreadSanitizer's dependencies in build/tsan-deps, among them an Abseil
  # built with it (cached: built once per Abseil version).
  scripts/install-deps.sh scripts/tsan-packages.txt
  scripts/tsan-deps.sh
fi
# The Node.js example's locked packages, the web checks' (tests/web), the
# deploy checks' (tests/deploy) and ONNX Runtime for bench/compare_engines.py
# (bench/ort), for their tests.
(cd examples/node && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/web && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error)
(cd bench/ort && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
cmake --preset "$preset"
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset" -j "$(nproc)"

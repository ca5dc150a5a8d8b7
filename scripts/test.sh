#!/usr/bin/env bash
# Installs what is missing, builds everything and runs the whole test suite.
#   scripts/test.sh            release build in build/release
#   scripts/test.sh asan       address+undefined sanitizers in build/asan
#   scripts/test.sh tsan       thread sanitizer in build/tsan
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"

scripts/install-deps.sh scripts/debian-packages.txt scripts/test-packages.txt
# The Node.js example's locked packages, for its test.
(cd examples/node && npm ci --no-audit --no-fund --loglevel=error)
cmake --preset "$preset"
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset" -j "$(nproc)"

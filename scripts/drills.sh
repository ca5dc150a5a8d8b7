#!/usr/bin/env bash
# Runs the operational drills (tests/drills) for longer than the suite does:
# reload under load, SIGTERM with calls in flight, a replica killed under
# round-robin, a memory soak; every call is checked.
#   scripts/drills.sh            60 s per drill, release build
#   scripts/drills.sh 300        300 s per drill
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"

scripts/install-deps.sh scripts/debian-packages.txt scripts/example-packages.txt \
  scripts/test-packages.txt
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target drill_tests seqserve
SEQSERVE_DRILL_SECONDS="$seconds" build/release/tests/drill_tests

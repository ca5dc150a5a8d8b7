#!/usr/bin/env bash
# Lints the API in proto/ with buf (rules in proto/buf.yaml), using the buf
# pinned in tools/buf/package-lock.json. Exits non-zero on any finding.
#   scripts/lint-proto.sh
# Needs Node.js and npm (scripts/example-packages.txt) and the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "buf $(scripts/buf.sh --version): linting proto/"
scripts/buf.sh lint proto
echo "proto/: no lint findings"

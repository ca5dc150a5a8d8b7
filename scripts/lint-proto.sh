#!/usr/bin/env bash
# Lints the API in proto/ with buf (rules in proto/buf.yaml), using the buf
# pinned in tools/buf/package-lock.json. Exits non-zero on any finding.
#   scripts/lint-proto.sh
# Needs Node.js and npm (scripts/test-packages.txt) and the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."

# npm ci empties node_modules first: one run at a time (ctest of two presets).
exec 9<tools/buf
flock 9
(cd tools/buf && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
buf=tools/buf/node_modules/.bin/buf
echo "buf $("$buf" --version): linting proto/"
"$buf" lint proto
echo "proto/: no lint findings"

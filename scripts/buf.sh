#!/usr/bin/env bash
# Runs the buf pinned in tools/buf/package-lock.json with the given
# arguments, installing it first when it is missing or another version.
#   scripts/buf.sh lint proto
#   scripts/buf.sh curl --protocol grpc --http2-prior-knowledge --list-methods http://127.0.0.1:8500
# Needs Node.js and npm (scripts/example-packages.txt) and the npm registry.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/tools/buf"
buf="$tools/node_modules/.bin/buf"
pinned="$(sed -n 's/.*"@bufbuild\/buf": *"\([^"]*\)".*/\1/p' "$tools/package.json")"

# npm ci empties node_modules first: the lock is held (fd 9 stays open
# across exec) until buf exits, so no run sees a half-installed buf.
exec 9<"$tools"
flock 9
if [ "$("$buf" --version 2>/dev/null || true)" != "$pinned" ]; then
  (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
exec "$buf" "$@"

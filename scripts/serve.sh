#!/usr/bin/env bash
# Installs what is missing, builds the release binaries and starts seqserve
# on the bundled sample models. Extra arguments go to seqserve.
#   scripts/serve.sh                      port 8500, models/
#   scripts/serve.sh --port=9000 --model_repository=/srv/models
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target seqserve seqclient seqmodel

bin=build/release
cat <<EOT

seqserve is starting on port 8500 with the models in models/ (Ctrl-C stops it).
Query it from another terminal:
  $bin/client/seqclient models
  $bin/client/seqclient classify --model species 4,0,1 2,1,0
  $bin/client/seqclient classify --model mammal --format json 4,0,1
  $bin/client/seqclient health

EOT
exec "$bin/server/seqserve" --port=8500 --model_repository=models "$@"

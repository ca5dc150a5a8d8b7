#!/usr/bin/env bash
# Installs what is missing, builds the release binaries and starts seqserve
# on the bundled sample models. Extra arguments go to seqserve.
#   scripts/serve.sh                      port 8500, models/
#   scripts/serve.sh --port=9000 --model_repository=/srv/models
set -euo pipefail
cd "$(dirname "$0")/.."

# The server's packages, and what the README's examples use (curl, the
# Python and Node.js clients' packages); the Python stubs and the Node.js
# packages of examples/ too.
scripts/install-deps.sh scripts/debian-packages.txt scripts/example-packages.txt
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target seqserve seqclient seqmodel python_stubs
(cd examples/node && npm ci --no-audit --no-fund --loglevel=error)

bin=build/release
# The banner names what seqserve will use: its defaults unless the extra
# arguments say otherwise (--port=N or --port N, likewise the repository).
port=8500
http_port=8501
repository=models
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --port=*) port="${args[$i]#--port=}" ;;
    --port) port="${args[$((i + 1))]:-$port}" ;;
    --http_port=*) http_port="${args[$i]#--http_port=}" ;;
    --http_port) http_port="${args[$((i + 1))]:-$http_port}" ;;
    --model_repository=*) repository="${args[$i]#--model_repository=}" ;;
    --model_repository) repository="${args[$((i + 1))]:-$repository}" ;;
  esac
done
target=""
if [ "$port" != 8500 ]; then target=" --target localhost:$port"; fi

cat <<EOT

seqserve is starting on port $port with the models in $repository (Ctrl-C stops it).
Query it from another terminal (the programs are in $bin/cmd):
  export PATH="$PWD/$bin/cmd:\$PATH"
  seqclient models$target
  seqclient classify$target --model species 4,0,1 2,1,0
  seqclient classify$target --model mammal --format json 4,0,1
  seqclient health$target
EOT
if [ "$http_port" != -1 ]; then
  cat <<EOT
Or over HTTP (REST and metrics on port $http_port):
  curl -s localhost:$http_port/v1/models/species:classify -d '{"features": [4, 0, 1]}'
  curl -s -X POST localhost:$http_port/v1/models/species:predict -d '{"instances": [[4, 0, 1]]}'   # TF Serving's REST API
  curl -s localhost:$http_port/metrics
EOT
fi
echo
exec "$bin/cmd/seqserve" --port=8500 --model_repository=models "$@"

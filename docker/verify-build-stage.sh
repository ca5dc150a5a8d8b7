#!/usr/bin/env bash
# Runs the Dockerfile's build stage on this machine, for hosts without a
# container engine: copies exactly what the stage COPYs into an empty
# directory and runs its cmake commands. Proves the COPY list and the flags
# build seqserve, seqclient and seqmodel from the packaged dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build_stage=$(sed -n '1,/^FROM scratch$/p' docker/Dockerfile | sed '$d')
mkdir -p "$work/src"
# "COPY a b ./" and "COPY dir dir" lines of the build stage.
grep -E '^COPY [^-]' <<<"$build_stage" | grep -v '/tmp/' | while read -r _ args; do
  read -ra parts <<<"$args"
  unset 'parts[${#parts[@]}-1]'
  for part in "${parts[@]}"; do cp -r "$part" "$work/src/"; done
done
cd "$work/src"
cmake -S . -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DSEQSERVE_BUILD_TESTS=OFF -DSEQSERVE_BUILD_BENCH=OFF -DSEQSERVE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$work/build" -j"$(nproc)" --target seqserve seqclient seqmodel >/dev/null
ls -l "$work/build/cmd/seqserve" "$work/build/cmd/seqclient" "$work/build/cmd/seqmodel"
echo "build stage OK"

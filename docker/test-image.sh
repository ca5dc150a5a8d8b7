#!/usr/bin/env bash
# Builds docker/Dockerfile and checks the image from outside, as a user runs it:
#   docker/test-image.sh
# - engine: docker when a daemon answers, else rootful podman (installed from
#   scripts/image-packages.txt), with docker/containers.conf and the vfs
#   storage driver on machines without systemd (restricted sandboxes);
# - base: debian:12-slim as present or pulled; when it cannot be pulled
#   (offline, air-gapped), a stand-in made with debootstrap --variant=minbase
#   from this machine's Debian mirror, tagged debian:12-slim;
# - checks: health SERVING, HTTP /readyz; Classify of the shipped samples; PyTorch's numbers
#   for the reference models in a mounted repository, one of them added while
#   serving; a non-root uid; the HEALTHCHECK; SIGTERM with calls in flight:
#   all answered, exit 0 within the grace period; all with a read-only root
#   and no capabilities, as deploy/kubernetes runs it;
# - prints the image size and the size of its own layers above the base.
# Needs root (podman) or a docker daemon. Uses build/release/cmd/seqclient
# when built, else the image's own seqclient. Safe to run again: it replaces
# its containers and removes them and its files on exit. Exits non-zero on
# the first failed check.
set -euo pipefail
cd "$(dirname "$0")/.."

image=${SEQSERVE_IMAGE:-seqserve:latest}
base=docker.io/library/debian:12-slim
prefix=seqserve-image-test
work=$(mktemp -d)
started=$(date +%s)

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "== $(( $(date +%s) - started ))s: $*"; }

# --- engine ----------------------------------------------------------------
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  engine=(docker)
else
  [ "$(id -u)" -eq 0 ] || fail "no docker daemon, and rootful podman needs root"
  scripts/install-deps.sh scripts/image-packages.txt
  engine=(podman)
  if [ ! -d /run/systemd/system ]; then
    export CONTAINERS_CONF="$PWD/docker/containers.conf"
    engine+=(--storage-driver vfs)
  fi
fi
step "engine: ${engine[*]}${CONTAINERS_CONF:+ with $CONTAINERS_CONF}"
engine() { "${engine[@]}" "$@"; }

remove_containers() {
  for name in "$prefix-samples" "$prefix-mounted"; do
    engine rm -f "$name" >/dev/null 2>&1 || true
  done
}
# Containers left by an interrupted run go first; ours go on any exit.
remove_containers
trap 'remove_containers; rm -rf "$work"' EXIT

# --- base image ------------------------------------------------------------
debian_mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  elif [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { print $2; exit }' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

build_base_stand_in() {
  local mirror rootfs="$work/rootfs"
  mirror=$(debian_mirror)
  step "no $base to pull: debootstrap --variant=minbase bookworm from $mirror"
  if ! command -v debootstrap >/dev/null; then
    scripts/install-deps.sh <(echo debootstrap)
  fi
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; fail "debootstrap failed"; }
  # As debian:12-slim: no package cache, package lists, documentation,
  # manual pages or translations, no host names from this machine, and the
  # Debian sources this machine uses (deb822, as in the real image).
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/etc/hostname "$rootfs"/etc/resolv.conf
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    rm -f "$rootfs/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
  fi
  tar -C "$rootfs" -c . | engine import --change 'CMD ["bash"]' - "$base" >/dev/null
  rm -rf "$rootfs"
}

if engine image inspect "$base" >/dev/null 2>&1; then
  step "base: $base present"
elif timeout 120 "${engine[@]}" pull "$base" >"$work/pull.log" 2>&1; then
  step "base: $base pulled"
else
  build_base_stand_in
fi

# --- build -----------------------------------------------------------------
build_flags=(-f docker/Dockerfile -t "$image")
if [ "${engine[0]}" = podman ]; then
  # Keep HEALTHCHECK (OCI images have none); never look for a newer base.
  build_flags+=(--format docker --pull=never)
fi
step "building $image"
previous=$(engine image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
build_start=$(date +%s)
engine build "${build_flags[@]}" . >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log"; fail "the image did not build"; }
step "built in $(( $(date +%s) - build_start ))s"
# The image this build replaced; the build stage's layers stay as its cache.
if [ -n "$previous" ] && [ "$previous" != "$(engine image inspect --format '{{.Id}}' "$image")" ]; then
  engine rmi "$previous" >/dev/null 2>&1 || true
fi

image_bytes=$(engine image inspect --format '{{.Size}}' "$image")
base_bytes=$(engine image inspect --format '{{.Size}}' "$base")
image_layers=$(engine image inspect --format '{{range .RootFS.Layers}}{{.}} {{end}}' "$image")
base_layers=$(engine image inspect --format '{{range .RootFS.Layers}}{{.}} {{end}}' "$base")
if [[ "$image_layers" == "$base_layers"* ]]; then
  own_bytes=$(( image_bytes - base_bytes ))
  on_base="above $base"
else
  own_bytes=$image_bytes  # FROM scratch: every layer is the image's own
  on_base="no base layers"
fi

# --- client ----------------------------------------------------------------
if [ -x build/release/cmd/seqclient ]; then
  seqclient() { build/release/cmd/seqclient "$@"; }
else
  seqclient() { engine run --rm -i --network host --entrypoint seqclient "$image" "$@"; }
fi

start() {  # NAME [RUN FLAGS...] -- [SEQSERVE FLAGS...]; prints the host port
  local name=$1
  shift
  local run_flags=()
  while [ "$1" != -- ]; do run_flags+=("$1"); shift; done
  shift
  # (podman without systemd reports on stderr that it cannot add a timer for
  # the health check; "healthcheck run" below runs it.)
  # Locked down as deploy/kubernetes runs it: read-only root, no capabilities.
  engine run -d --name "$name" -p 127.0.0.1::8500 -p 127.0.0.1::8501 --read-only --cap-drop=ALL \
    --security-opt=no-new-privileges "${run_flags[@]}" "$image" "$@" \
    >/dev/null 2>"$work/run.err" || { cat "$work/run.err" >&2; fail "$name did not start"; }
  local address
  address=$(engine port "$name" 8500/tcp | head -1)
  echo "${address##*:}"
}

wait_serving() {  # PORT NAME
  for _ in $(seq 1 100); do
    if seqclient --target="127.0.0.1:$1" --deadline_ms=1000 health >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  engine logs "$2" 2>&1 | tail -20
  fail "$2 did not report SERVING within 20 s"
}

# --- the image as shipped: samples, user, health check, stop --------------
step "run: the samples baked into the image"
port=$(start "$prefix-samples" -- --poll_seconds=5 --drain_seconds=5 --shutdown_grace_seconds=10)
wait_serving "$port" "$prefix-samples"
target=--target="127.0.0.1:$port"
[ "$(seqclient "$target" health)" = SERVING ] || fail "health is not SERVING"
http_address=$(engine port "$prefix-samples" 8501/tcp | head -1)
readyz=$(/usr/bin/python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).status)' "http://127.0.0.1:${http_address##*:}/readyz") ||
  fail "GET /readyz on the HTTP port failed"
[ "$readyz" = 200 ] || fail "GET /readyz answered $readyz"
step "gRPC health SERVING, HTTP /readyz 200"

# The README's three animals: (limbs, lays eggs, has hair).
species=$(seqclient "$target" classify --model species --format csv 4,0,1 2,1,0 0,1,0)
echo "$species"
predicted=$(tail -n +2 <<<"$species" | cut -d, -f3 | paste -sd' ')
[ "$predicted" = "mammal bird reptile" ] || fail "species predicted '$predicted'"
mammal=$(seqclient "$target" classify --model mammal --format csv 4,0,1 2,1,0)
echo "$mammal"
predicted=$(tail -n +2 <<<"$mammal" | cut -d, -f3 | paste -sd' ')
[ "$predicted" = "mammal not mammal" ] || fail "mammal predicted '$predicted'"

pid=$(engine inspect --format '{{.State.Pid}}' "$prefix-samples")
uids=$(awk '$1 == "Uid:" { print $2, $3, $4, $5 }' "/proc/$pid/status")
[ "$uids" = "10001 10001 10001 10001" ] || fail "seqserve runs with uids '$uids', not 10001"
step "seqserve (host pid $pid) runs as uid 10001"

if [ "${engine[0]}" = podman ]; then
  engine healthcheck run "$prefix-samples" || fail "the HEALTHCHECK command failed"
else
  for _ in $(seq 1 30); do
    [ "$(engine inspect --format '{{.State.Health.Status}}' "$prefix-samples")" = healthy ] && break
    sleep 1
  done
fi
health=$(engine inspect --format '{{.State.Health.Status}}' "$prefix-samples" 2>/dev/null ||
         engine inspect --format '{{.State.Healthcheck.Status}}' "$prefix-samples")
[ "$health" = healthy ] || fail "the HEALTHCHECK status is '$health'"
step "HEALTHCHECK: $health"

# SIGTERM one second into a three-second load: every call must be answered
# (the server drains, answering, until calls stop for 1 s or 5 s passed,
# then finishes what is in flight)
# and seqserve must exit 0 by itself, long before the 20 s stop timeout.
seqclient "$target" bench --model species --concurrency 4 --duration_seconds 3 \
  >"$work/bench.out" 2>"$work/bench.err" &
bench=$!
sleep 1
stop_start=$(date +%s%N)
engine stop -t 20 "$prefix-samples" >/dev/null 2>"$work/stop.err" ||
  { cat "$work/stop.err" >&2; fail "stop failed"; }
stop_ms=$(( ($(date +%s%N) - stop_start) / 1000000 ))
wait "$bench" || { cat "$work/bench.err"; fail "calls during the stop were not all answered"; }
cat "$work/bench.out"
exit_code=$(engine inspect --format '{{.State.ExitCode}}' "$prefix-samples")
[ "$exit_code" = 0 ] || fail "seqserve exited $exit_code after SIGTERM"
(( stop_ms < 20000 )) || fail "stop took $stop_ms ms: killed, not exited"
# The whole log first: grep -q stops reading at its match, and under
# pipefail the writer's SIGPIPE would then fail the pipeline.
engine logs "$prefix-samples" >"$work/samples.log" 2>&1
grep -q 'received: draining' "$work/samples.log" || fail "the log does not show the drain"
step "stop: exit 0 after $stop_ms ms (drain included), every call answered"
engine rm -f "$prefix-samples" >/dev/null 2>&1

# --- a mounted repository: PyTorch's numbers, a model added while serving --
step "run: a mounted repository with the reference models"
repository="$work/repository"
mkdir -p "$repository/species/1" "$work/staging/mammal/1"
cp tests/data/reference/species.onnx "$repository/species/1/model.onnx"
cp tests/data/reference/mammal.onnx "$work/staging/mammal/1/model.onnx"
chmod -R a+rX "$work"  # uid 10001 reads it through the mount
# With --sched_batch too: the policy needs no capability, so the locked-down
# container may set it.
port=$(start "$prefix-mounted" -v "$repository:/models:ro" -- --poll_seconds=1 --sched_batch)
wait_serving "$port" "$prefix-mounted"
target=--target="127.0.0.1:$port"
pid=$(engine inspect --format '{{.State.Pid}}' "$prefix-mounted")
for task in /proc/"$pid"/task/*; do
  # (A thread that ended since the listing is skipped.)
  policy=$(chrt -p "${task##*/}" 2>/dev/null) || continue
  [[ $policy == *SCHED_BATCH* ]] || fail "thread ${task##*/} is not SCHED_BATCH: $policy"
done
step "--sched_batch: every thread of seqserve runs under SCHED_BATCH"
if seqclient "$target" classify --model mammal 4,0,1 >/dev/null 2>&1; then
  fail "mammal is served before it was added"
fi
mv "$work/staging/mammal" "$repository/mammal"
added=$(date +%s)
until seqclient "$target" classify --model mammal 4,0,1 >/dev/null 2>&1; do
  (( $(date +%s) - added < 15 )) || fail "the added model was not served within 15 s"
  sleep 0.2
done
step "mammal added to the mounted repository: served after $(( $(date +%s) - added ))s"
seqclient "$target" models

for model in species mammal; do
  reference=tests/data/reference/$model.json
  inputs=$(/usr/bin/python3 -c 'import json, sys
for row in json.load(open(sys.argv[1]))["inputs"]: print(",".join(map(str, row)))' "$reference")
  head=$([ "$model" = species ] && echo softmax || echo sigmoid)
  for output in logits "$head"; do
    seqclient "$target" classify --model "$model" --output "$output" --format csv --input=- \
      <<<"$inputs" | /usr/bin/python3 tests/docker/check_scores.py "$reference" "$output" ||
      fail "$model $output differs from PyTorch's"
  done
done
engine stop -t 20 "$prefix-mounted" >/dev/null 2>"$work/stop.err" ||
  { cat "$work/stop.err" >&2; fail "stop failed"; }
exit_code=$(engine inspect --format '{{.State.ExitCode}}' "$prefix-mounted")
[ "$exit_code" = 0 ] || fail "seqserve exited $exit_code after SIGTERM"

# --- sizes -----------------------------------------------------------------
mb() { local tenths=$(( ($1 + 50000) / 100000 )); printf '%d.%d' $(( tenths / 10 )) $(( tenths % 10 )); }
echo "image $image: $(mb "$image_bytes") MB; own layers ($on_base): $(mb "$own_bytes") MB"
echo "test-image: all checks passed in $(( $(date +%s) - started ))s"

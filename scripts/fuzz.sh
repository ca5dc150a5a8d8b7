#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer (Clang) under address and
# undefined-behaviour sanitizers.
#   scripts/fuzz.sh TARGET SECONDS   fuzz one target for SECONDS
#   scripts/fuzz.sh all SECONDS      every target in turn, SECONDS each
# Targets: fuzz_onnx_loader, fuzz_text_loader, fuzz_model_config,
# fuzz_classify_request, fuzz_explain_request, fuzz_v2_request, fuzz_http_request (fuzz/README.md says what each one
# checks).
#
# Installs what is missing, builds the target(s) in build/fuzz, and runs
# libFuzzer on build/fuzz/corpus/TARGET, a copy of the seeds in
# fuzz/corpus/TARGET that keeps what earlier runs found. Exits non-zero when
# a target crashes, leaks, times out (10 s per input) or runs out of memory
# (2 GiB); the input that did it is in build/fuzz/crashes/TARGET/, and the
# script prints its path and the command that replays it. Full libFuzzer
# output: build/fuzz/logs/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(fuzz_onnx_loader fuzz_text_loader fuzz_model_config fuzz_classify_request fuzz_explain_request
             fuzz_v2_request fuzz_http_request)
usage() {
  echo "usage: $0 {all|${all_targets[*]// /|}} SECONDS" >&2
  exit 2
}
[ $# -eq 2 ] || usage
[[ "$2" =~ ^[1-9][0-9]*$ ]] || usage
seconds="$2"
if [ "$1" = all ]; then
  targets=("${all_targets[@]}")
elif [[ " ${all_targets[*]} " == *" $1 "* ]]; then
  targets=("$1")
else
  usage
fi

# The dictionary libFuzzer's byte mutations draw on, per target.
dictionary_of() {
  case "$1" in
    fuzz_onnx_loader) echo fuzz/onnx.dict ;;
    fuzz_text_loader) echo fuzz/text_model.dict ;;
    fuzz_model_config) echo fuzz/model_config.dict ;;
    fuzz_v2_request) echo fuzz/v2_request.dict ;;
    fuzz_http_request) echo fuzz/http_request.dict ;;
    *) echo "" ;;
  esac
}

scripts/install-deps.sh scripts/debian-packages.txt scripts/fuzz-packages.txt

# The project's libraries get coverage and sanitizer instrumentation through
# SEQSERVE_SANITIZE; fuzz/CMakeLists.txt links libFuzzer into the targets.
build=build/fuzz
CC=clang CXX=clang++ cmake -S . -B "$build" \
  -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS=-Wno-unknown-warning-option \
  -DSEQSERVE_SANITIZE=fuzzer-no-link,address,undefined \
  -DSEQSERVE_BUILD_FUZZERS=ON \
  -DSEQSERVE_BUILD_TESTS=OFF \
  -DSEQSERVE_BUILD_BENCH=OFF \
  -DSEQSERVE_BUILD_EXAMPLES=OFF
cmake --build "$build" --target "${targets[@]}" -j "$(nproc)"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

failed=()
summary=()
for target in "${targets[@]}"; do
  corpus="$build/corpus/$target"
  crashes="$build/crashes/$target"
  log="$build/logs/$target.log"
  mkdir -p "$corpus" "$crashes" "$(dirname "$log")"
  for seed in fuzz/corpus/"$target"/*; do
    [ -e "$corpus/$(basename "$seed")" ] || cp "$seed" "$corpus/"
  done
  args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10
        -artifact_prefix="$crashes/" -print_final_stats=1)
  dictionary="$(dictionary_of "$target")"
  if [ -n "$dictionary" ]; then args+=(-dict="$dictionary"); fi
  # The HTTP server frees a connection on its own threads just after the
  # exchange, so libFuzzer's leak check after each input would see every
  # input as a possible leak and scan the heap each time: 45 inputs a
  # second with it, 578 without (one run each). LeakSanitizer's check at
  # exit still runs.
  if [ "$target" = fuzz_http_request ]; then args+=(-detect_leaks=0); fi

  echo "== $target: ${seconds} s on $corpus ($(ls "$corpus" | wc -l) inputs)"
  set +e
  "$build/fuzz/$target" "${args[@]}" "$corpus" > "$log" 2>&1
  status=$?
  set -e

  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)"
  executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  grep -E 'INITED|DONE|^stat::' "$log" || true
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    echo "!! $target failed (libFuzzer exit $status); the end of $log:"
    tail -n 60 "$log"
    written="$(sed -n 's/.*Test unit written to //p' "$log")"
    for input in $written; do
      echo "!! input that fails: $input"
      echo "!! replay: $build/fuzz/$target $input"
    done
    summary+=("$target  FAILED (exit $status)  executions ${executions:-?}  ${done_line:-}")
  else
    summary+=("$target  ok  executions ${executions:-?}  ${done_line#*DONE }")
  fi
done

echo "== fuzzing summary (${seconds} s per target)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (inputs in $build/crashes/)" >&2
  exit 1
fi

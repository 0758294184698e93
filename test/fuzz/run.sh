#!/usr/bin/env bash
# Issue #8: bounded fuzzing of the PCM decoder/resampler (libFuzzer, native) and of the message
# parser (a property-based fuzz in node). Exits non-zero on any crash, sanitizer report or
# violated invariant; the failing input is kept and its path printed.
#
#   test/fuzz/run.sh                       # 60 s of pcm_fuzz, 200000 messages
#   PCM_FUZZ_SECONDS=600 MESSAGE_FUZZ_ITERATIONS=2000000 test/fuzz/run.sh
#   test/fuzz/run.sh pcm | message         # one of the two
#   FUZZ_DIR=/tmp/f test/fuzz/run.sh       # keep the build, corpus and artifacts there
#   <FUZZ_DIR>/pcm_fuzz <crash-file>       # replay one input (prints the failing invariant)
#
# Needs: clang with libFuzzer and the sanitizer runtimes (Debian 12: apt-get install clang-14
# libclang-rt-14-dev, or `clang` + `libclang-rt-dev`), node and npm ci done (tsx, node-addon-api,
# node-api-headers).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
WHAT=${1:-all}
PCM_FUZZ_SECONDS=${PCM_FUZZ_SECONDS:-60}
MESSAGE_FUZZ_ITERATIONS=${MESSAGE_FUZZ_ITERATIONS:-200000}

if [ -n "${FUZZ_DIR:-}" ]; then
  WORK=$FUZZ_DIR
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d /tmp/speech-fuzz.XXXXXX)
fi
failed=0

run_pcm() {
  local cxx=${CLANGXX:-}
  if [ -z "$cxx" ]; then
    for c in clang++ $(ls /usr/bin/clang++-* 2>/dev/null | sort -V -r); do
      if command -v "$c" >/dev/null; then cxx=$(command -v "$c"); break; fi
    done
  fi
  [ -n "$cxx" ] || { echo "no clang++ found: apt-get install clang-14 libclang-rt-14-dev" >&2; return 2; }

  echo "== building pcm_fuzz with $cxx ($("$cxx" --version | head -1))"
  local t0=$(date +%s)
  local flags=(-std=c++17 -g -O2 -fno-omit-frame-pointer
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
    -D_GLIBCXX_SANITIZE_VECTOR  # std::vector reads past size() are reported (container-overflow)
    -I"$ROOT/native")
  local objs=()
  for src in test/fuzz/pcm_fuzz.cc native/pcm.cc native/resampler.cc native/stream_state.cc; do
    local obj="$WORK/$(basename "$src" .cc).o"
    "$cxx" "${flags[@]}" -c "$src" -o "$obj" &
    objs+=("$obj")
  done
  wait_all || { echo "pcm_fuzz: compile failed" >&2; return 1; }
  "$cxx" "${flags[@]}" "${objs[@]}" -o "$WORK/pcm_fuzz"
  local t1=$(date +%s)
  echo "built in $((t1 - t0)) s"

  rm -rf "$WORK/seeds"
  node --import tsx test/fuzz/pcm_seeds.ts "$WORK/seeds"
  mkdir -p "$WORK/corpus" "$WORK/artifacts"
  echo "== pcm_fuzz for ${PCM_FUZZ_SECONDS} s"
  local status=0
  # -max_len: room for the longest seeds and then some. -timeout: one input takes milliseconds.
  ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
  "$WORK/pcm_fuzz" -max_total_time="$PCM_FUZZ_SECONDS" -max_len=32768 -timeout=20 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$WORK/artifacts/" ${PCM_FUZZ_ARGS:-} \
    "$WORK/corpus" "$WORK/seeds" >"$WORK/pcm_fuzz.log" 2>&1 || status=$?
  local t2=$(date +%s)
  grep -E '^#[0-9]+ +DONE|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|cov: ' "$WORK/pcm_fuzz.log" | tail -5
  local artifacts
  artifacts=$(find "$WORK/artifacts" -type f | sort)
  if [ "$status" -ne 0 ] || [ -n "$artifacts" ]; then
    grep -v '^#[0-9]' "$WORK/pcm_fuzz.log" | tail -60
    echo "pcm_fuzz FAILED (exit $status) after $((t2 - t1)) s; inputs: ${artifacts:-none}; log: $WORK/pcm_fuzz.log" >&2
    return 1
  fi
  echo "pcm_fuzz clean: $((t2 - t1)) s, corpus $(ls "$WORK/corpus" | wc -l) inputs"
}

wait_all() {
  local rc=0
  for job in $(jobs -p); do wait "$job" || rc=1; done
  return $rc
}

run_message() {
  echo "== message parser fuzz, $MESSAGE_FUZZ_ITERATIONS messages"
  local t0=$(date +%s)
  node --import tsx test/fuzz/message_fuzz.ts --iterations "$MESSAGE_FUZZ_ITERATIONS" \
    --out "$WORK/message-failure.json" || { echo "message fuzz FAILED; input in $WORK/message-failure.json" >&2; return 1; }
  echo "message fuzz clean: $(($(date +%s) - t0)) s"
}

case "$WHAT" in
  pcm) run_pcm || failed=1 ;;
  message) run_message || failed=1 ;;
  all) run_pcm || failed=1; run_message || failed=1 ;;
  *) echo "usage: $0 [all|pcm|message]" >&2; exit 2 ;;
esac

if [ "$failed" -ne 0 ]; then
  echo "fuzzing found problems; kept $WORK" >&2
  exit 1
fi
[ -n "${FUZZ_DIR:-}" ] || rm -rf "$WORK"
echo "fuzzing clean"

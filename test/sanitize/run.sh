#!/usr/bin/env bash
# Issue #8: the native addon under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Builds the addon with -DSPEECH_SANITIZE=ON (see the SPEECH_SANITIZE block in CMakeLists.txt) in a
# scratch copy of the project, so the normal build/Release/ is never touched, then runs the
# native-heavy unit tests there under node with the GCC sanitizer runtimes preloaded. The tests
# load the addon through src/native/binding.ts, i.e. <project root>/build/Release/, and the
# project root is where src/ is: in the copy, that is the sanitized build.
#
# Exits non-zero if the build fails, a test fails, or any sanitizer report is written.
#
#   test/sanitize/run.sh                 # all native-heavy unit tests
#   test/sanitize/run.sh test/unit/resampler.test.ts   # a subset
#   KEEP=1 test/sanitize/run.sh          # keep the scratch copy (printed) for a re-run / debugging
#   SANITIZE_DIR=/tmp/x test/sanitize/run.sh   # reuse a scratch dir: incremental rebuild
#
# Needs only what the normal build needs (g++, cmake, node, npm ci done): GCC's libasan and
# libubsan come with g++ on Debian (libgcc-12-dev: libasan8, libubsan1).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

TESTS=("$@")
if [ ${#TESTS[@]} -eq 0 ]; then
  TESTS=(test/unit/audio-stream.test.ts test/unit/pcm-formats.test.ts test/unit/resampler.test.ts
         test/unit/executor.test.ts test/unit/vad.test.ts)
fi

[ -d node_modules ] || { echo "run npm ci first" >&2; exit 2; }
CXX_BIN=${CXX:-g++}
LIBASAN=$("$CXX_BIN" -print-file-name=libasan.so)
LIBUBSAN=$("$CXX_BIN" -print-file-name=libubsan.so)
for lib in "$LIBASAN" "$LIBUBSAN"; do
  [ -f "$lib" ] || { echo "sanitizer runtime not found: $lib (install g++)" >&2; exit 2; }
done

start=$(date +%s)
if [ -n "${SANITIZE_DIR:-}" ]; then
  WORK=$SANITIZE_DIR
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d /tmp/speech-sanitize.XXXXXX)
fi
if [ -z "${KEEP:-}" ] && [ -z "${SANITIZE_DIR:-}" ]; then
  trap 'rm -rf "$WORK"' EXIT
else
  echo "scratch copy: $WORK"
fi

# The copy: sources and tests copied (so PROJECT_ROOT resolves to the copy), the large read-only
# parts symlinked. cp -a keeps timestamps, so a reused SANITIZE_DIR rebuilds only what changed.
for f in CMakeLists.txt package.json tsconfig.json README.md native src test; do
  rm -rf "${WORK:?}/$f"
  cp -a "$ROOT/$f" "$WORK/"
done
for f in node_modules models; do
  [ -e "$WORK/$f" ] || ln -s "$ROOT/$f" "$WORK/$f"
done

echo "== building the sanitized addon in $WORK/build"
# -g for file:line in reports; CMAKE_CXX_FLAGS_RELEASE (-O3 -DNDEBUG) still applies, so this is
# the optimisation level that ships. _GLIBCXX_SANITIZE_VECTOR makes libstdc++ annotate std::vector
# for ASan, so a read between size() and capacity() is a container-overflow report rather than
# silently reading stale floats (the resampler's history buffers rely on sized slack).
(cd "$WORK" && npx cmake-js compile --parallel "${JOBS:-2}" --log-level warn \
  --CDSPEECH_SANITIZE=ON "--CDCMAKE_CXX_FLAGS=-g -D_GLIBCXX_SANITIZE_VECTOR" >"$WORK/build.log" 2>&1) || {
  tail -50 "$WORK/build.log"; echo "sanitized build failed" >&2; exit 1; }
ADDON="$WORK/build/Release/speech_native.node"
syms=$(nm -D "$ADDON")
if ! grep -q __asan_init <<<"$syms" || ! grep -q __ubsan_handle <<<"$syms"; then
  echo "$ADDON is not instrumented (SPEECH_SANITIZE block missing from CMakeLists.txt?)" >&2
  exit 1
fi
built=$(date +%s)
echo "built in $((built - start)) s"

LOGS="$WORK/sanitizer-logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"
# Node is not instrumented: the runtimes must be the first libraries loaded (LD_PRELOAD).
# detect_leaks=0: node (and V8) leak by design at exit. Reports also go to log_path, so one is
# caught whichever process (the test runner runs each file in a child) it happened in.
# Node installs its own SIGSEGV handler for WebAssembly; allow it.
export LD_PRELOAD="$LIBASAN $LIBUBSAN"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1:exitcode=86:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:allow_user_segv_handler=1:log_path=$LOGS/asan"
# file:line in stacks when an llvm-symbolizer is around (optional; GCC's runtime prints function
# names without it).
for s in llvm-symbolizer $(ls /usr/bin/llvm-symbolizer-* 2>/dev/null | sort -V -r); do
  if command -v "$s" >/dev/null; then export ASAN_SYMBOLIZER_PATH=$(command -v "$s"); break; fi
done
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87:log_path=$LOGS/ubsan"

echo "== running ${#TESTS[@]} test file(s) under ASan+UBSan"
status=0
(cd "$WORK" && node --import tsx --test --test-concurrency=1 --test-reporter=spec "${TESTS[@]}") || status=$?
unset LD_PRELOAD
end=$(date +%s)

reports=$(find "$LOGS" -type f | sort)
if [ -n "$reports" ]; then
  for r in $reports; do echo "---- $r"; cat "$r"; done
  echo "SANITIZER REPORTS: $(echo "$reports" | wc -l) (tests exit status $status)" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "tests failed under the sanitizers (exit $status), no sanitizer report (KEEP=1 keeps the copy)" >&2
  exit "$status"
fi
echo "clean: no ASan/UBSan report; build $((built - start)) s, tests $((end - built)) s, total $((end - start)) s"

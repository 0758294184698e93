#!/usr/bin/env bash
# C++ lint of native/, run by `npm run lint`: clang-format (style: /.clang-format) must leave every
# file unchanged, and clang-tidy (checks: /.clang-tidy) must find nothing. Version 14 by default,
# as .ci/run installs on Debian (another clang-format version formats slightly differently).
# Fails, never skips, when a tool or the compile flags are missing.
#
#   bash native/lint.sh            # check
#   FIX=1 bash native/lint.sh      # reformat in place instead of checking the style
set -euo pipefail
cd "$(dirname "$0")/.."

CLANG_FORMAT=${CLANG_FORMAT:-clang-format-14}
CLANG_TIDY=${CLANG_TIDY:-clang-tidy-14}
for tool in "$CLANG_FORMAT" "$CLANG_TIDY"; do
  if ! command -v "$tool" >/dev/null; then
    echo "native lint: $tool not found. Install it (Debian: apt-get install clang-format-14 clang-tidy-14," \
         "as .ci/run does) or point CLANG_FORMAT / CLANG_TIDY at one." >&2
    exit 1
  fi
done

mapfile -t sources < <(find native -name '*.cc' | sort)
mapfile -t headers < <(find native -name '*.h' | sort)

if [ -n "${FIX:-}" ]; then
  "$CLANG_FORMAT" -i "${sources[@]}" "${headers[@]}"
else
  "$CLANG_FORMAT" --dry-run --Werror "${sources[@]}" "${headers[@]}" \
    || { echo "native lint: clang-format would change the files above (FIX=1 bash native/lint.sh)" >&2; exit 1; }
fi

# clang-tidy needs each file's compile flags, which the addon's build writes (CMakeLists.txt).
if [ ! -f build/compile_commands.json ]; then
  echo "native lint: build/compile_commands.json is missing: run npm run build:native first" >&2
  exit 1
fi
# One file per process, on every core; headers are checked through the files that include them.
# "N warnings generated" counts the system headers' suppressed warnings: noise.
printf '%s\n' "${sources[@]}" \
  | xargs -P "$(nproc)" -n 1 "$CLANG_TIDY" -p build --quiet 2>&1 \
  | sed -E '/^[0-9]+ warnings? generated\.$/d' \
  || { echo "native lint: clang-tidy found problems (above)" >&2; exit 1; }

#!/bin/sh
# Runs the GGUF reader fuzzer for a while: tests/fuzz/run_fuzz.sh <build-dir> [seconds=60]
# <build-dir> is a clang build with -DPI_FUZZ=ON, or a build of tests/fuzz on its own (see CMakeLists.txt). The
# committed seeds stay untouched: new inputs go to a temporary corpus; crashes are saved under
# <build-dir>/fuzz-artifacts/. Exits non-zero when the fuzzer finds a crash, a leak or a timeout.
set -eu
build=${1:?usage: run_fuzz.sh <build-dir> [seconds]}
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)

cmake --build "$build" --target pi_gguf_fuzz -j2
if [ -x "$build/tests/fuzz/pi_gguf_fuzz" ]; then
    bin="$build/tests/fuzz/pi_gguf_fuzz"
else
    bin="$build/pi_gguf_fuzz"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$build/fuzz-artifacts"
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -dict="$here/gguf.dict" -artifact_prefix="$build/fuzz-artifacts/" -print_final_stats=1 \
    "$work" "$here/corpus/gguf"

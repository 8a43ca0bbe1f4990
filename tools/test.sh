#!/usr/bin/env bash
# The whole test suite, as CI runs it (after tools/setup.sh --no-run):
#   1. unit, ABI, install and reference tests on the normal build (ctest -L unit)
#   2. the unit suite again under AddressSanitizer + UndefinedBehaviorSanitizer
#   3. the unit suite under ThreadSanitizer
#   4. the GGUF fuzzer, briefly (clang + libFuzzer)
# usage: tools/test.sh [quick]   (quick: step 1 only)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${PI_BUILD_DIR:-build}
jobs=${PI_JOBS:-2}
py=$PWD/.venv/bin/python
[[ -x $py ]] || { echo "run tools/setup.sh first"; exit 1; }
common=(-DPython3_EXECUTABLE="$py" -DPI_WERROR=ON)

echo "== [1/4] unit, ABI and reference tests"
cmake -S . -B "$build" "${common[@]}" >/dev/null
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" -L unit --output-on-failure -j "$jobs"
[[ "${1:-}" == quick ]] && exit 0

# Sanitizer builds skip the Python-driven tests (they exercise numpy, not our C++), the samples and the CUDA module
# (no GPU in CI: its host code only runs under conformance_cuda, which skips).
san_args=(-DPI_BUILD_SAMPLES=OFF -DCMAKE_BUILD_TYPE=Debug -DPI_CUDA=OFF)  # nvcc code is not sanitized here
echo "== [2/4] unit tests under ASan + UBSan"
cmake -S . -B "$build-asan" "${common[@]}" "${san_args[@]}" -DPI_SANITIZE=address,undefined >/dev/null
cmake --build "$build-asan" -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$build-asan" -L unit -LE 'python|abi' --output-on-failure -j "$jobs"

echo "== [3/4] unit tests under TSan"
cmake -S . -B "$build-tsan" "${common[@]}" "${san_args[@]}" -DPI_SANITIZE=thread >/dev/null
cmake --build "$build-tsan" -j "$jobs"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir "$build-tsan" -L unit -LE 'python|abi' --output-on-failure -j "$jobs"

echo "== [4/4] GGUF fuzzer"
CC=clang CXX=clang++ cmake -S . -B "$build-fuzz" -DPI_FUZZ=ON -DPI_BUILD_SAMPLES=OFF -DPI_BUILD_TESTS=ON \
    -DPython3_EXECUTABLE="$py" >/dev/null
cmake --build "$build-fuzz" -j "$jobs" --target pi_gguf_fuzz
tests/fuzz/run_fuzz.sh "$build-fuzz" "${PI_FUZZ_SECONDS:-60}"
echo "== all test stages passed"

# Sourced by the GPU benchmark scripts: builds the library, the CUDA module and the given targets in /tmp/b on the
# lent GPU machine, which lacks oneDNN, Catch2 and libxxhash (libxxhash comes from build-cuda-debs/*.deb, carried),
# and writes bench-7b F16 to /tmp/m once (gguf from .whl/, carried). Needs OUT and T; usage: gpu_build TARGETS...
gpu_build() {
    mkdir -p "$OUT" /tmp/xx /tmp/py /tmp/m
    for f in build-cuda-debs/*.deb; do dpkg -x "$f" /tmp/xx; done
    export LD_LIBRARY_PATH=/tmp/xx/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
    local t0=$(date +%s)
    cmake -S . -B /tmp/b -DCMAKE_BUILD_TYPE=Release -DPI_ONEDNN=OFF -DPI_CUDA=ON -DPI_CUDA_ARCHS=90 -DPI_BUILD_TESTS=ON \
      "-DCMAKE_CXX_FLAGS=-include cstdint" -DPI_XXHASH_INCLUDE_DIR=/tmp/xx/usr/include \
      -DPI_XXHASH_LIBRARY=/tmp/xx/usr/lib/x86_64-linux-gnu/libxxhash.so > "$OUT/cmake.log" 2>&1 || {
        tail -30 "$OUT/cmake.log"; return 1; }
    cmake --build /tmp/b -j"$T" --target powerinfer powerinfer-cuda "$@" > "$OUT/build.log" 2>&1 || {
        grep -E "error" "$OUT/build.log" | head -30; return 1; }
    echo "built in $(( $(date +%s) - t0 )) s"
}

gpu_write_bench_7b() {
    [ -s /tmp/m/bench-7b-f16.gguf ] && return 0
    python3 -m pip install -q --no-deps --target /tmp/py .whl/gguf-*.whl > "$OUT/pip.log" 2>&1
    local t0=$(date +%s)
    PYTHONPATH=/tmp/py timeout 420 bash bench/make_bench_7b.sh f16 /tmp/m/bench-7b-f16.gguf > "$OUT/make.log" 2>&1 || {
        tail -5 "$OUT/make.log"; return 1; }
    echo "bench-7b written in $(( $(date +%s) - t0 )) s"
}

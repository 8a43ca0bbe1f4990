# Sourced by the GPU benchmark scripts: builds the library, the CUDA module and the given targets in /tmp/b on the
# lent GPU machine, which lacks oneDNN, Catch2 and libxxhash (libxxhash comes from build-cuda-debs/*.deb, carried),
# and writes bench-7b F16 to /tmp/m once (gguf from .whl/, carried). Needs OUT and T; usage: gpu_build TARGETS...
# B_DIR (default /tmp/b), EXTRA_CXX_FLAGS (e.g. a compile-time knob such as -DPI_SPARSE_MIN_CHUNK_BYTES=...) and
# EXTRA_CUDA_FLAGS (the CUDA module's, e.g. -DPI_CUDA_STREAM_LOADS=0) give a second build for an A/B in the same call.
gpu_build() {
    local b=${B_DIR:-/tmp/b}
    mkdir -p "$OUT" /tmp/xx /tmp/py /tmp/m
    for f in build-cuda-debs/*.deb; do dpkg -x "$f" /tmp/xx; done
    export LD_LIBRARY_PATH=/tmp/xx/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
    local t0=$(date +%s)
    cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release -DPI_ONEDNN=OFF -DPI_CUDA=ON -DPI_CUDA_ARCHS=90 -DPI_BUILD_TESTS=ON \
      "-DCMAKE_CXX_FLAGS=-include cstdint ${EXTRA_CXX_FLAGS:-}" "-DCMAKE_CUDA_FLAGS=${EXTRA_CUDA_FLAGS:-}" \
      -DPI_XXHASH_INCLUDE_DIR=/tmp/xx/usr/include \
      -DPI_XXHASH_LIBRARY=/tmp/xx/usr/lib/x86_64-linux-gnu/libxxhash.so > "$OUT/cmake.log" 2>&1 || {
        tail -30 "$OUT/cmake.log"; return 1; }
    cmake --build "$b" -j"$T" --target powerinfer powerinfer-cuda "$@" > "$OUT/build.log" 2>&1 || {
        grep -E "error" "$OUT/build.log" | head -30; return 1; }
    echo "built in $(( $(date +%s) - t0 )) s"
}

# gpu_start_model_writes sparse|dense...: installs gguf (from .whl/, carried) and starts writing the named bench-7b
# F16 files that /tmp/m lacks in the background (logs in $OUT/make-*.log); the caller `wait`s for them.
gpu_start_model_writes() {
    mkdir -p "$OUT" /tmp/m /tmp/py
    python3 -m pip install -q --no-deps --target /tmp/py .whl/gguf-*.whl > "$OUT/pip.log" 2>&1
    local which
    for which in "$@"; do
        case $which in
            sparse) [ -s /tmp/m/bench-7b-f16.gguf ] || PYTHONPATH=/tmp/py bash bench/make_bench_7b.sh f16 \
                        /tmp/m/bench-7b-f16.gguf > "$OUT/make-sparse.log" 2>&1 & ;;
            dense) [ -s /tmp/m/bench-7b-dense-f16.gguf ] || PYTHONPATH=/tmp/py bash bench/make_bench_7b.sh f16 \
                       /tmp/m/bench-7b-dense-f16.gguf --dense > "$OUT/make-dense.log" 2>&1 & ;;
        esac
    done
}

gpu_write_bench_7b() {
    [ -s /tmp/m/bench-7b-f16.gguf ] && return 0
    python3 -m pip install -q --no-deps --target /tmp/py .whl/gguf-*.whl > "$OUT/pip.log" 2>&1
    local t0=$(date +%s)
    PYTHONPATH=/tmp/py timeout 420 bash bench/make_bench_7b.sh f16 /tmp/m/bench-7b-f16.gguf > "$OUT/make.log" 2>&1 || {
        tail -5 "$OUT/make.log"; return 1; }
    echo "bench-7b written in $(( $(date +%s) - t0 )) s"
}

# End-to-end accuracy helpers of the GPU scripts (tests/reference/engine_run.c against the built library).
# gpu_acc_setup: builds /tmp/b/run. gpu_layers MODEL: the model's layer count. gpu_acc_cpu MODEL PROMPT STEPS SPARSE:
# the CPU backend's run (tokens on stdout, logits in /tmp/cpu.f32). gpu_acc_compare LABEL CPU_TOKENS MODEL PROMPT
# STEPS SPARSE PLAN [VAR=VALUE...]: the same run on $GPU_BACKEND (default cuda) with the forced plan and the given
# environment; prints "acc LABEL rel_err=<max |logit difference| / max |cpu logit|> tokens=same|DIFF" or FAILED.
gpu_acc_setup() {
    gcc -std=c99 -O2 -Iinclude tests/reference/engine_run.c -L/tmp/b/lib -lpowerinfer -Wl,-rpath,/tmp/b/lib -o /tmp/b/run
}
gpu_layers() {
    PI_TEST_BACKEND=${GPU_BACKEND:-cuda} PI_TEST_PLAN=x /tmp/b/run "$1" 1 1 /tmp/x.f32 2>&1 |
        sed -n 's/.*model of \([0-9]*\) layers.*/\1/p'
}
gpu_acc_cpu() {
    PI_TEST_SPARSE=$4 PI_TEST_BACKEND=cpu /tmp/b/run "$1" "$2" "$3" /tmp/cpu.f32 2>/tmp/err
}
gpu_acc_compare() {
    local label=$1 cpu=$2 f=$3 prompt=$4 steps=$5 sparse=$6 plan=$7 out err
    shift 7
    out=$(env "$@" PI_TEST_PLAN=$plan PI_TEST_SPARSE=$sparse PI_TEST_BACKEND=${GPU_BACKEND:-cuda} timeout 60 \
          /tmp/b/run "$f" "$prompt" "$steps" /tmp/gpu.f32 2>/tmp/err) || {
        echo "acc $label FAILED $(head -c 300 /tmp/err)"; return; }
    err=$(python3 -c "
import array
a=array.array('f'); a.frombytes(open('/tmp/cpu.f32','rb').read())
b=array.array('f'); b.frombytes(open('/tmp/gpu.f32','rb').read())
print('%.2e' % (max(abs(x-y) for x,y in zip(a,b))/max(abs(x) for x in a)))")
    echo "acc $label rel_err=$err tokens=$([ "$cpu" = "$out" ] && echo same || echo DIFF)"
}

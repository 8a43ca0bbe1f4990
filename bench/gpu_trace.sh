#!/usr/bin/env bash
# A CUPTI trace of GPU decode steps on the lent machine (torch.profiler; no Nsight there): builds the library and
# the CUDA module, writes the dense bench-7b F16 file (and the sparse one with SPARSE=1), then runs
# bench/gpu_trace.py on them: per-step device busy/idle time, kernels by time, idle gaps, one step in order.
# usage: bench/gpu_trace.sh [THREADS]    results: $OUT (default ./gpu-bench-out)
set -u
OUT=${OUT:-$PWD/gpu-bench-out}
T=${1:-16}
source "$(dirname "$0")/gpu_build.sh"
gpu_start_model_writes dense ${SPARSE:+sparse}
gpu_build || exit 1
gcc -std=c99 -O2 -shared -fPIC -Iinclude bench/gpu_trace_shim.c -L${B_DIR:-/tmp/b}/lib -lpowerinfer \
  -Wl,-rpath,${B_DIR:-/tmp/b}/lib -o /tmp/trace_shim.so || exit 1
wait
sync
export PI_BACKEND_PATH=${B_DIR:-/tmp/b}/lib
for v in ${TRACE_ENVS:--}; do
  echo "== dense, all on the GPU ($v)"
  env $([ "$v" = - ] || echo "$v") timeout 240 python3 bench/gpu_trace.py /tmp/trace_shim.so /tmp/m/bench-7b-dense-f16.gguf \
    --threads "$T" --steps ${STEPS:-16} 2>&1 | tee "$OUT/trace-dense-$v.txt" | grep -v "^\s*$"
done
if [ -n "${SPARSE:-}" ]; then
  echo "== sparse, all on the GPU"
  timeout 240 python3 bench/gpu_trace.py /tmp/trace_shim.so /tmp/m/bench-7b-f16.gguf --threads "$T" --sparse \
    --steps ${STEPS:-16} 2>&1 | tee "$OUT/trace-sparse.txt" | grep -v "^\s*$"
  echo "== sparse, budget 8 GiB"
  timeout 240 python3 bench/gpu_trace.py /tmp/trace_shim.so /tmp/m/bench-7b-f16.gguf --threads "$T" --sparse --vram 8 \
    --steps ${STEPS:-16} --show 20 2>&1 | tee "$OUT/trace-hybrid.txt" | grep -v "^\s*$"
fi

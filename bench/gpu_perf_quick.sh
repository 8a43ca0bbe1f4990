#!/usr/bin/env bash
# A shorter bench/gpu_bench.sh for the GPU-performance work (issue 6): builds the library, the CUDA module, the
# bench and the conformance program, runs conformance_cuda, writes bench-7b F16 once (kept in /tmp/m while the
# machine stays warm), and runs only hybrid-8g, gpu-all and prefill-512 (the latter with each 16-bit GEMM mode of
# backends/cuda/matmul.cu: split (default), single, f32 = the old widening path).
#   usage: bench/gpu_perf_quick.sh [THREADS]      results: $OUT (default ./gpu-bench-out)
set -u
OUT=${OUT:-$PWD/gpu-bench-out}
T=${1:-16}
source "$(dirname "$0")/gpu_build.sh"
gpu_build powerinfer-bench pi_conformance || exit 1
PI_BACKEND_PATH=/tmp/b/lib /tmp/b/tests/conformance/pi_conformance cuda > "$OUT/conformance.txt" 2>&1; echo "conformance_cuda rc=$?"
grep -E "FAIL|matmul(_t)? .*n=(20|24|40)" "$OUT/conformance.txt" | head -40; tail -2 "$OUT/conformance.txt"
# End-to-end accuracy of prompts > 16 tokens (the cuBLAS paths) on the tiny models of build/models (carried):
# backend cuda vs cpu, everything on the GPU and alternate split:37/cpu layers, sparse on and off.
gpu_acc_setup || exit 1
P=$(python3 -c "print(','.join(str(3 + (i * 37) % 200) for i in range(40)))")
for m in ${ACC_MODELS-llama-f16 llama-bf16 llama-q8_0 relu-llama-f16 relu-llama-bf16 prosparse-bf16 bamboo-f16 falcon-f16 opt-f16}; do
  f=build/models/$m.gguf; [ -f $f ] || continue
  n=$(gpu_layers $f)
  for sparse in on off; do
    cpu=$(gpu_acc_cpu $f $P 16 $sparse) || continue
    for plan in $(python3 -c "print(','.join(['gpu']*$n+['out']), ','.join(['split:37' if i%2==0 else 'cpu' for i in range($n)]))"); do
      gpu_acc_compare "$m sparse=$sparse plan=${plan:0:12}" "$cpu" $f $P 16 $sparse $plan
    done
  done
done
gpu_write_bench_7b || exit 1
B="/tmp/b/bin/powerinfer-bench -m /tmp/m/bench-7b-f16.gguf -t $T -c 512"
run() {  # name, args...
  local name=$1; shift
  timeout 120 $B "$@" --json > "$OUT/$name.json" 2> "$OUT/$name.err"
  echo "$name rc=$? $(cut -c1-600 "$OUT/$name.json")"
}
PI_CUDA_GEMM16=split run prefill-512 --backend cuda --vram-budget 60 -p 512 -n 0 -r ${R:-2} --mode dense --no-bandwidth
[ -n "${PREFILL_ONLY:-}" ] && { PI_CUDA_GEMM16=single run prefill-512-single --backend cuda --vram-budget 60 -p 512 -n 0 -r ${R:-2} --mode dense --no-bandwidth; exit 0; }
run gpu-all --backend cuda --vram-budget 60 -p 32 -n 64 -r 2 --mode both
run hybrid-8g --backend cuda --vram-budget 8 -p 32 -n 64 -r 2 --mode sparse
PI_CUDA_GEMM16=single run prefill-512-single --backend cuda --vram-budget 60 -p 512 -n 0 -r 2 --mode dense --no-bandwidth
PI_CUDA_GEMM16=f32 run prefill-512-f32 --backend cuda --vram-budget 60 -p 512 -n 0 -r 2 --mode dense --no-bandwidth

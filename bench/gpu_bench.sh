#!/usr/bin/env bash
# The GPU benchmarks of DESIGN §8 on the lent GPU machine (no network, no oneDNN/Catch2/libxxhash there): builds the
# library, the CUDA module and powerinfer-bench, writes bench-7b F16, and runs hybrid / all-GPU / CPU-only decode,
# prefill 512 and a VRAM budget sweep. Results (JSON lines and logs) go to $OUT (default ./gpu-bench-out).
#   needs: build-cuda-debs/libxxhash*.deb (apt-get download libxxhash0 libxxhash-dev) and .whl/gguf-*.whl
#   usage: bench/gpu_bench.sh [THREADS]
set -u
OUT=${OUT:-$PWD/gpu-bench-out}
T=${1:-16}
source "$(dirname "$0")/gpu_build.sh"
gpu_build powerinfer-bench || exit 1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
gpu_write_bench_7b || exit 1
B="/tmp/b/bin/powerinfer-bench -m /tmp/m/bench-7b-f16.gguf -t $T -c 512"
run() {  # name, args...
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$OUT/vram-$name.txt" 2>/dev/null &
  local smi=$!
  timeout 240 $B "$@" --json > "$OUT/$name.json" 2> "$OUT/$name.err"
  echo "$name rc=$? $(cut -c1-400 "$OUT/$name.json")"
  kill $smi 2>/dev/null
  echo "  peak VRAM used (MiB): $(sort -n "$OUT/vram-$name.txt" | tail -1)"
}
run hybrid-8g    --backend cuda --vram-budget 8 -p 32 -n 64 -r 2 --mode sparse
run gpu-all      --backend cuda --vram-budget 60 -p 32 -n 64 -r 2 --mode both
run prefill-512  --backend cuda --vram-budget 60 -p 512 -n 0 -r 2 --mode dense --no-bandwidth
run cpu-only     --backend cpu -p 32 -n 32 -r 1 --mode both
for g in 2 4 12 16; do run sweep-$g --backend cuda --vram-budget $g -p 16 -n 32 -r 1 --mode sparse --no-bandwidth; done

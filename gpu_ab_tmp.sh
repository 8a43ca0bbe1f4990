#!/usr/bin/env bash
# throw-away: hybrid A/B of the CPU prefetch hint (t0 default vs t1) on the GPU machine
set -u
T=8
source bench/gpu_build.sh
mkdir -p "$OUT"
log() { echo "$(date +%T) $*" | tee -a "$OUT/progress.txt"; }
log start
gpu_start_model_writes sparse
gpu_build powerinfer-bench >> "$OUT/progress.txt" 2>&1 || { log build-a-failed; exit 1; }
log built-a
B_DIR=/tmp/b2 EXTRA_CXX_FLAGS=-DPI_CPU_PREFETCH_LOCALITY=2 gpu_build powerinfer-bench >> "$OUT/progress.txt" 2>&1 || { log build-b-failed; exit 1; }
log built-b
wait
log model-written "$(ls -la /tmp/m)"
M=/tmp/m/bench-7b-f16.gguf
run() {  # name tree timeout args...
  local name=$1 tree=$2 to=$3; shift 3
  log "run $name"
  timeout $to $tree/bin/powerinfer-bench -m $M -t 16 -c 512 "$@" > "$OUT/$name.txt" 2> "$OUT/$name.err"
  log "$name rc=$? $(grep -E 'decode|bandwidth' "$OUT/$name.txt" | tr '\n' '|')"
}
run smoke-a /tmp/b 150 --backend cuda --vram-budget 8 -p 8 -n 8 -r 1 --mode sparse
run hyb-a1 /tmp/b 150 --backend cuda --vram-budget 8 -p 32 -n 64 -r 2 --mode sparse
run hyb-b1 /tmp/b2 150 --backend cuda --vram-budget 8 -p 32 -n 64 -r 2 --mode sparse
run hyb-a2 /tmp/b 150 --backend cuda --vram-budget 8 -p 32 -n 64 -r 2 --mode sparse
run hyb-b2 /tmp/b2 150 --backend cuda --vram-budget 8 -p 32 -n 64 -r 2 --mode sparse
log done

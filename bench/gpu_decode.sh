#!/usr/bin/env bash
# The GPU decode measurements of issue 6 in one call of the lent machine (each call starts bare): builds the library
# and the CUDA module while both bench-7b F16 files (sparse layout and dense) are written, profiles activations on the
# GPU (powerinfer-cli --profile-out over a generated text, as a deployment would), then measures
#   hybrid-8g   sparse file, VRAM budget 8 GiB, the planner fed the profile
#   gpu-dense   dense file, everything on the GPU
#   prefill-512 dense file, everything on the GPU
# plus a run with PI_CUDA_PROFILE=1 PI_HYBRID_PROFILE=1 (per-operation GPU time and host waits: the "where the time
# goes" tables); PROFILES=1 profiles the all-GPU runs too, AB=1 adds pipelining-off and graphs-on runs, FINAL=1 the
# budget sweep and the CPU-only run, KERNELS=1 the kernel bench under each of KERNEL_ENVS, AB_ENVS the runs of AB_RUNS
# again under each setting. ACC_ONLY=1 stops after the end-to-end accuracy runs (no model files), whose prompt is
# ACC_PROMPT tokens (default 12) and generation ACC_STEPS (default 64), over the models ACC_DIR/ACC_GLOB.gguf
# (default all): a prompt of 150 and 140 steps takes the device attention across its 128-position chunks. usage: bench/gpu_decode.sh [THREADS]    results: $OUT
set -u
OUT=${OUT:-$PWD/gpu-bench-out}
T=${1:-16}
source "$(dirname "$0")/gpu_build.sh"
t0=$(date +%s)
[ -n "${ACC_ONLY:-}" ] || gpu_start_model_writes sparse dense
# $OUT's files as one archive (the lent machine returns a bounded number of files).
pack_results() { (cd "$OUT" && tar czf /tmp/gpu-results.tgz . && find . -mindepth 1 -delete && mv /tmp/gpu-results.tgz .); }
gpu_build powerinfer-bench powerinfer-cli pi_conformance pi_kernel_bench || exit 1
if [ -z "${ACC_ONLY:-}" ]; then
  PI_BACKEND_PATH=/tmp/b/lib /tmp/b/tests/conformance/pi_conformance cuda > "$OUT/conformance.txt" 2>&1; echo "conformance_cuda rc=$?"
  grep -E "FAIL" "$OUT/conformance.txt" | head -20; tail -1 "$OUT/conformance.txt"
fi
# KERNELS=1: the decode kernels' times under each of KERNEL_ENVS (settings of matmul.cu: PI_CUDA_GLU,
# PI_CUDA_SPLITK; "-" the defaults).
if [ -n "${KERNELS:-}" ]; then
  for v in ${KERNEL_ENVS:--}; do
    env $([ "$v" = - ] || echo "$v") PI_BACKEND_PATH=/tmp/b/lib timeout 60 /tmp/b/tests/conformance/pi_kernel_bench cuda 100 \
      > "$OUT/kernels-$v.txt" 2>&1
    echo "== kernels $v"; grep -E "F16|attention|predict" "$OUT/kernels-$v.txt" | head -16
  done
fi
# Accuracy of the pipelined split step (every layer split, so that the hybrid executor pipelines) on tiny sparse
# models from ACC_DIR: cuda vs cpu greedy tokens and logits, pipelining on and off.
ACC_DIR=${ACC_DIR:-build/models}
gpu_acc_setup || exit 1
P=$(python3 -c "print(','.join(str(3 + (i * 37) % 200) for i in range(${ACC_PROMPT:-12})))")
for f in $ACC_DIR/${ACC_GLOB:-*}.gguf; do
  [ -f "$f" ] || continue
  n=$(gpu_layers $f)
  split=$(python3 -c "print(','.join(['split:37']*$n+['out']))"); gpu=$(python3 -c "print(','.join(['gpu']*$n+['out']))")
  # A split layer without hot neurons, then all-GPU layers: the GPU's sparse FFN kernel is first launched in a
  # pipelined step behind a wait_value (the lazy-loading hang of docs/HYBRID.md, "Pipelined decode").
  mixed=$(python3 -c "print(','.join(['split:0']+['gpu']*($n-1)+['out']))")
  for sparse in on off; do
    # A dense file (no predictors) refuses sparse=on: that pair is skipped, not counted.
    cpu=$(gpu_acc_cpu $f $P ${ACC_STEPS:-64} $sparse) || {
      echo "skip $f sparse=$sparse: the CPU reference run refused ($(head -c 160 /tmp/err | tr '\n' ' '))"; continue; }
    # split layers pipeline (PI_HYBRID_PIPELINE) only in sparse steps; all-GPU steps are recorded (PI_CUDA_GRAPH)
    for variant in "split PI_HYBRID_PIPELINE=1" "split PI_HYBRID_PIPELINE=0" "gpu PI_CUDA_GRAPH=1" "gpu PI_CUDA_GRAPH=0" \
                   "mixed PI_HYBRID_PIPELINE=1"; do
      set -- $variant; plan=$([ $1 = split ] && echo $split || { [ $1 = mixed ] && echo $mixed || echo $gpu; })
      gpu_acc_compare "$(basename $f) sparse=$sparse $variant" "$cpu" $f $P ${ACC_STEPS:-64} $sparse $plan $2
    done
  done
done > "$OUT/accuracy.txt"
echo "accuracy: $(grep -c 'tokens=same' "$OUT/accuracy.txt") runs with the CPU's tokens of $(grep -c '^acc' "$OUT/accuracy.txt");" \
  "largest rel_err $(grep -o 'rel_err=[0-9.e+-]*' "$OUT/accuracy.txt" | cut -d= -f2 | sort -g | tail -1)"
grep -E "DIFF|FAILED|^skip" "$OUT/accuracy.txt" | head
if [ -n "${ACC_ONLY:-}" ]; then
  pack_results
  exit 0
fi
wait
sync  # the written files' dirty pages would otherwise be flushed during the first measured run
echo "models written, $(( $(date +%s) - t0 )) s after the start"; ls -la /tmp/m
S=/tmp/m/bench-7b-f16.gguf D=/tmp/m/bench-7b-dense-f16.gguf
timeout 120 /tmp/b/bin/powerinfer-cli -m $S -t $T --backend cuda --vram-budget 60 -n 160 --seed 1 --temp 0.8 \
  -p "The history of the city begins with a small settlement on the river" --profile-out /tmp/m/profile.gguf \
  > "$OUT/profile.log" 2>&1; echo "profile rc=$? $(grep -a -E 'tok/s' "$OUT/profile.log" | tail -2)"
B="/tmp/b/bin/powerinfer-bench -t $T -c 512 --json --backend cuda"
run() {  # name, args...   (peak device memory in use while it runs, from nvidia-smi, incl. the CUDA context)
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$OUT/vram-$name.txt" 2>/dev/null &
  local smi=$!
  timeout 150 $B "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
  echo "$name rc=$? $(cut -c1-700 "$OUT/$name.json")"; grep -a -A40 "PI_CUDA_PROFILE\|PI_HYBRID_PROFILE" "$OUT/$name.err" | grep -v "copy_to_device.*[0-9] *$" | head -${LINES_SHOWN:-30}
  kill $smi 2>/dev/null; echo "  peak VRAM used (MiB): $(sort -n "$OUT/vram-$name.txt" | tail -1)"
}
run hybrid-8g -m $S --vram-budget 8 --profile /tmp/m/profile.gguf -p 32 -n 64 -r 3 --mode sparse
[ -n "${AB:-}" ] && PI_HYBRID_PIPELINE=0 run hybrid-8g-nopipe -m $S --vram-budget 8 --profile /tmp/m/profile.gguf -p 32 -n 64 -r 3 --mode sparse --no-bandwidth
PI_CUDA_PROFILE=1 PI_HYBRID_PROFILE=1 run hybrid-8g-prof -m $S --vram-budget 8 --profile /tmp/m/profile.gguf -p 32 -n 64 -r 1 --mode sparse --no-bandwidth
run gpu-dense -m $D --vram-budget 60 -p 32 -n 64 -r 3 --mode dense --no-bandwidth
[ -n "${AB:-}" ] && PI_CUDA_GRAPH=1 run gpu-dense-graph -m $D --vram-budget 60 -p 32 -n 64 -r 3 --mode dense --no-bandwidth
run gpu-sparse -m $S --vram-budget 60 -p 32 -n 64 -r 3 --mode sparse --no-bandwidth
[ -n "${PROFILES:-}" ] && PI_CUDA_PROFILE=1 run gpu-dense-prof -m $D --vram-budget 60 -p 32 -n 64 -r 1 --mode dense --no-bandwidth
run prefill-512 -m $D --vram-budget 60 -p 512 -n 0 -r 3 --mode dense --no-bandwidth
[ -n "${PROFILES:-}" ] && PI_CUDA_PROFILE=1 LINES_SHOWN=24 run prefill-512-prof -m $D --vram-budget 60 -p 512 -n 0 -r 1 --mode dense --no-bandwidth
# AB_ENVS="VAR=VALUE ...": the runs named in AB_RUNS (default "hybrid dense prefill") again under each setting
# (switches of README's measurement list, e.g. PI_FUSED_NORM=0), for A/B tables.
for v in ${AB_ENVS:-}; do
  (export "$v"
   case " ${AB_RUNS:-hybrid dense prefill} " in *" hybrid "*)
     run "hybrid-8g-$v" -m $S --vram-budget 8 --profile /tmp/m/profile.gguf -p 32 -n 64 -r 3 --mode sparse --no-bandwidth;; esac
   case " ${AB_RUNS:-hybrid dense prefill} " in *" dense "*)
     run "gpu-dense-$v" -m $D --vram-budget 60 -p 32 -n 64 -r 3 --mode dense --no-bandwidth;; esac
   case " ${AB_RUNS:-hybrid dense prefill} " in *" prefill "*)
     run "prefill-512-$v" -m $D --vram-budget 60 -p 512 -n 0 -r 3 --mode dense --no-bandwidth;; esac)
done
if [ -n "${FINAL:-}" ]; then  # the budget sweep (the profile given to the planner) and the CPU-only run
  for g in 2 4 12 16; do run sweep-$g -m $S --vram-budget $g --profile /tmp/m/profile.gguf -p 32 -n 64 -r 2 --mode sparse --no-bandwidth; done
  B="/tmp/b/bin/powerinfer-bench -t $T -c 512 --json --backend cpu" run cpu-only -m $S -p 32 -n 64 -r 2 --mode sparse
fi
echo "cost cache (the planner's parameters measured on this machine):"; cat ${XDG_CACHE_HOME:-$HOME/.cache}/powerinfer/cost-*.txt
[ -n "${EXTRA:-}" ] && eval "$EXTRA"
echo "total $(( $(date +%s) - t0 )) s"
# The lent machine returns only a few files: everything goes back as one archive.
pack_results

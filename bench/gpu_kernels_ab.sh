#!/usr/bin/env bash
# Kernel-level A/B of the CUDA module on the lent machine, without model files (a minute, not the five of
# bench/gpu_decode.sh): builds the tree in /tmp/b and, for each "NAME=FLAGS" of VARIANTS (CUDA compile flags, e.g.
# "plain=-DPI_CUDA_STREAM_LOADS=0"), a second build in /tmp/b-NAME; runs pi_conformance cuda on the tree's build and
# pi_kernel_bench on every build under each setting of KERNEL_ENVS ("-" = the defaults), alternating builds per round
# (ROUNDS, default 2), so that drift of the machine shows as spread and not as a difference.
#   usage: OUT=... VARIANTS="..." KERNEL_ENVS="- PI_CUDA_SPLITK=0" bench/gpu_kernels_ab.sh [THREADS]
set -u
OUT=${OUT:-$PWD/gpu-bench-out}
T=${1:-16}
source "$(dirname "$0")/gpu_build.sh"
gpu_build pi_conformance pi_kernel_bench || exit 1
builds="/tmp/b"
for v in ${VARIANTS:-}; do
  name=${v%%=*}; flags=${v#*=}
  B_DIR=/tmp/b-$name EXTRA_CUDA_FLAGS="$flags" gpu_build pi_kernel_bench || exit 1
  builds="$builds /tmp/b-$name"
done
PI_BACKEND_PATH=/tmp/b/lib /tmp/b/tests/conformance/pi_conformance cuda > "$OUT/conformance.txt" 2>&1
echo "conformance_cuda rc=$? $(tail -1 "$OUT/conformance.txt")"; grep FAIL "$OUT/conformance.txt" | head
for round in $(seq 1 "${ROUNDS:-2}"); do
  for b in $builds; do
    for e in ${KERNEL_ENVS:--}; do
      f="$OUT/kernels-$(basename $b)-$(echo "$e" | tr -c 'A-Za-z0-9_\n-' _)-$round.txt"  # names the lent machine returns
      env $([ "$e" = - ] || echo "$e") PI_BACKEND_PATH=$b/lib timeout 120 $b/tests/conformance/pi_kernel_bench cuda 100 > "$f" 2>&1
      echo "== $(basename $b) $e round $round"; grep -E "${SHOW:-F16|dense decode}" "$f" | grep -v -E "Q8_0|Q4_0"
    done
  done
done
(cd "$OUT" && tar czf /tmp/gpu-results.tgz . && find . -mindepth 1 -delete && mv /tmp/gpu-results.tgz .)

#!/usr/bin/env bash
# Writes bench-7b (DESIGN.md 8): LLaMA-7B shapes in the relu-llama PowerInfer layout with planted sparsity.
#   bench/make_bench_7b.sh f16|q4_0 OUT.gguf [--dense] [--planted-out P.npy] [--act-freq]
# F16 is about 13.5 GB (Q4_0 about 3.9 GB), streamed tensor by tensor (peak memory about 2 GB).
# --dense writes the same weights without predictors (ffn_down layout) for dense comparisons.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,5p' "$0" >&2
    exit 2
fi
type=$1
out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} PYTHONDONTWRITEBYTECODE=1
mkdir -p "$(dirname "$out")"
exec python3 "$here/../tools/make_test_model.py" bench-7b --type "$type" --out "$out" "$@"

// Internal: the blocked prefill product over the matvec kernels, used when oneDNN is absent or disabled.
#pragma once

#include <cstddef>
#include <vector>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/q8_activation.h"
#include "backends/cpu/thread_pool.h"
#include "backends/cpu/weight_type.h"

namespace pi::cpu::detail {

// y[t * ldy + o] = W[o] . x[t * ldx ...] for t < m, o < W.n_rows, with the matvec kernels of `isa` (f32 dots for
// float weights, Q8Activation-rounded int8 dots for Q8_0/Q4_0). Tiles of rows small enough for L2 are passed over
// by every token before the next tile, so W streams from memory once; each thread takes a contiguous range of
// tiles. `xq` is scratch for the quantized tokens (grown as needed).
void gemm_fallback(const WeightMatrix &w, const float *x, size_t m, size_t ldx, float *y, size_t ldy, ThreadPool *pool,
                   IsaLevel isa, std::vector<Q8Activation> &xq);

}  // namespace pi::cpu::detail

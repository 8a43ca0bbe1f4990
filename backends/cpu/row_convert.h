// Whole-row conversions: weights of any type to binary32 (exact for every supported type) and binary32 to bf16.
// The prefill GEMM uses them to feed oneDNN, which multiplies only f32 and bf16; tests use them as the dequantized
// reference.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/weight_type.h"

namespace pi::cpu {

// out[(r - r0) * ld + c] = W[r][c] for r in [r0, r1), c < W.n_cols (ld >= n_cols). Exact: fp16, bf16, d * q and
// d * (q - 8) are all representable in binary32.
void dequantize_rows(const WeightMatrix &w, size_t r0, size_t r1, float *out, size_t ld,
                     IsaLevel isa = active_isa_level());

// out[i] = fp32_to_bf16(x[i]) (round-to-nearest-even, subnormals kept, NaN stays NaN): the same bits on every level.
void convert_f32_to_bf16(const float *x, size_t n, uint16_t *out, IsaLevel isa = active_isa_level());

// out[i] = fp32_to_fp16(x[i]) (round-to-nearest-even, overflow to inf, subnormals kept; F16C where the level has
// it): the same bits on every level.
void convert_f32_to_f16(const float *x, size_t n, uint16_t *out, IsaLevel isa = active_isa_level());

}  // namespace pi::cpu

// Reading rows of a weight tensor as floats, whatever its type (F32, F16, BF16, Q8_0, Q4_0).
#pragma once

#include <cstdint>

#include "model/model_weights.h"

namespace pi {

// Writes the `row`-th row (cols() floats) of `w` to out.
void dequantize_row(const WeightView &w, uint64_t row, float *out);

// y[r] = dot(row r of w, x) for every row; x has cols() floats, y rows() floats. Scalar, f32 accumulation of
// dequantized weights (the readable baseline; the CPU backend's kernels are the fast path).
void matvec_reference(const WeightView &w, const float *x, float *y);

}  // namespace pi

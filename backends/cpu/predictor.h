// The activation predictor of one token on the CPU (DESIGN §5): which FFN neurons fire.
//
//   z = relu(fc1 . h)   (fc1: width x n_embd)
//   s = fc2 . z         (fc2: n_ff x width)
//   active = { i : s[i] >= threshold }, ascending
//
// Both products run through matvec, so for Q8_0/Q4_0 weights the inputs are rounded by Q8Activation exactly like
// every other matvec: h for fc1, z for fc2 (each only when that matrix is quantized). Every s[i] depends only on
// the weights, h and the ISA level (not on the pool size). A NaN score is never active; threshold = -inf makes every
// other neuron active. Memory traffic: fc1 and all of fc2 once (2 KB of fc2 per neuron at width 1024, F16).
//
// Transposed fc2 (fc2_t: width x n_ff, float types): s = sum over j of z[j] * fc2_t[j] through axpy_rows, which
// skips the rows of hidden units with z[j] == 0 -- ReLU zeroes about half of them (bench-7b: 49.7 %), so fc2 costs
// about half its bytes. Each s[i] then receives its terms in ascending j (axpy_rows' order: the same bits for every
// thread count and ISA level), a different rounding from the row dot's four accumulators; tests compare both with
// the reference within the float tolerance. Quantized fc2 keeps the row dots (its 8-bit rounding of z is per block
// along the row, DESIGN §8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/cpu_features.h"
#include "backends/cpu/q8_activation.h"
#include "backends/cpu/thread_pool.h"
#include "backends/cpu/weight_type.h"

namespace pi::cpu {

// Reusable buffers of predict (no allocation per call once grown). One per caller thread.
class PredictorScratch {
public:
    AlignedBuffer<float> hidden;       // z = relu(fc1 . h)
    AlignedBuffer<float> scores;       // s, when the caller does not want it
    AlignedBuffer<uint32_t> selected;  // the active neurons, before they are copied out
    Q8Activation h_q8;                 // h rounded, for quantized fc1
    Q8Activation z_q8;                 // z rounded, for quantized fc2
    size_t fc2_rows_read = 0;          // last call: rows of fc2_t read (hidden units with z != 0), or width (row dots)
};

// Computes s, clears `active` and appends the neurons with s[i] >= threshold in ascending order; writes s to
// scores_or_null[0 .. fc2.n_rows) when given. h holds fc1.n_cols values. Bad shapes, a missing h or a NaN threshold
// throw pi::Error(PI_ERR_INVALID_ARGUMENT) before any work (active untouched). fc2_t, when given, is fc2 transposed
// (same float type) and replaces it in the product (see above).
void predict(const WeightMatrix &fc1, const WeightMatrix &fc2, const float *h, float threshold,
             std::vector<uint32_t> &active, float *scores_or_null, ThreadPool *pool, IsaLevel isa,
             PredictorScratch &scratch, const WeightMatrix *fc2_t = nullptr);

}  // namespace pi::cpu

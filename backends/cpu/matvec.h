// Matrix-vector products for decode: the dense and sparse FFN, attention projections, the output layer.
//
// Three forms over a WeightMatrix W (any of F32/F16/BF16/Q8_0/Q4_0, rows in ggml layout):
//   matvec       y[i] = W[r0 + i] . x                       all rows of a range (dense)
//   matvec_rows  y[i] = W[rows[i]] . x                      a list of rows (sparse gate/up: the active neurons)
//   axpy_rows    y[c] += sum_i a[i] * Wt[rows[i]][c]         the sparse down projection, Wt = down transposed (one
//                                                           row of n_embd per neuron); entries with a[i] == 0
//                                                           (either sign) are skipped and their rows never read
// Float weights take x in binary32; Q8_0/Q4_0 weights take x quantized by Q8Activation (the engine's activation
// rounding) and compute per block an exact integer dot times d_w * d_x, as ggml does.
//
// Determinism and summation order:
// - matvec / matvec_rows: each output is computed by one thread with a fixed operation sequence that depends only on
//   the weight type, n_cols and the ISA level (see the kernels_<isa>_dot.cpp headers): results do not depend on
//   the thread count, the range or list the row is in, or its position in it.
// - axpy_rows: the columns are split across threads, never the neurons; each y[c] receives its terms in list order,
//   y[c] = y[c] + (a[i] * w) with the product rounded first (for Q8_0/Q4_0: (a[i] * d) * q). So the result is
//   bit-identical for every thread count and every ISA level. No partial sums, no reduction pass.
// - Index lists may be unsorted and may repeat an index (a repeated row is simply used again: twice in y for
//   matvec_rows, its term added twice for axpy_rows); sorted lists read memory in order and are faster. An index
//   >= the row count is rejected (PI_ERR_INVALID_ARGUMENT) before any work.
// Bad shapes or missing inputs throw pi::Error(PI_ERR_INVALID_ARGUMENT); a level the CPU lacks, PI_ERR_UNSUPPORTED.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/q8_activation.h"
#include "backends/cpu/thread_pool.h"
#include "backends/cpu/weight_type.h"

namespace pi::cpu {

// The vector x of a product, prepared for any weight type: f32 for F32/F16/BF16 weights, q8 (x quantized) for
// Q8_0/Q4_0 weights. Only the one the weight type needs must be set.
struct MatvecInput {
    const float *f32 = nullptr;
    const Q8Activation *q8 = nullptr;
    size_t n = 0;  // length of x (= W's n_cols)
};

// y[i] = W[r0 + i] . x for i < r1 - r0. pool == nullptr runs on the calling thread.
void matvec(const WeightMatrix &w, const MatvecInput &x, size_t r0, size_t r1, float *y, ThreadPool *pool = nullptr,
            IsaLevel isa = active_isa_level());

// Several products in one dispatch: y_j[i] = W_j[i] . x_j for every row of every job (e.g. the query, key and value
// projections of one token). Each row is computed as matvec computes it: the results are identical. At most 8 jobs.
struct MatvecJob {
    const WeightMatrix *w = nullptr;
    MatvecInput x;
    float *y = nullptr;
};
void matvec_batch(const MatvecJob *jobs, size_t n_jobs, ThreadPool *pool = nullptr, IsaLevel isa = active_isa_level());

// y[i] = W[rows[i]] . x for i < n_rows.
void matvec_rows(const WeightMatrix &w, const MatvecInput &x, const uint32_t *rows, size_t n_rows, float *y,
                 ThreadPool *pool = nullptr, IsaLevel isa = active_isa_level());

// y[c] += sum over i < n of a[i] * Wt[rows[i]][c], for c < Wt.n_cols; rows == nullptr means rows[i] = i. Entries with
// a[i] == 0 are skipped (so a row holding inf or NaN does not turn a zero coefficient into NaN).
void axpy_rows(const WeightMatrix &wt, const float *a, const uint32_t *rows, size_t n, float *y,
               ThreadPool *pool = nullptr, IsaLevel isa = active_isa_level());

}  // namespace pi::cpu

// The one-token products of a decode step with the scratch they need, taking x in binary32 whatever the weight type:
// for Q8_0/Q4_0 weights x is rounded by Q8Activation first (once per call). Used by the CPU executor's decode path and
// by the CPU backend table. One object per thread of control (a session, a backend context): not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/cpu/matvec.h"
#include "backends/cpu/predictor.h"
#include "backends/cpu/sparse_ffn.h"

namespace pi::cpu {

// out[i] = a(gate[i], up[i]) for i < n (gate unused, may be null, for Relu). Scalar: O(n_ff) per token.
void apply_activation(FfnActivation activation, const float *gate, const float *up, size_t n, float *out);

class TokenOps {
public:
    explicit TokenOps(IsaLevel isa) : isa_(isa) {}

    IsaLevel isa() const { return isa_; }

    // y[i] = W[r0 + i] . x
    void matvec(const WeightMatrix &w, const float *x, size_t r0, size_t r1, float *y, ThreadPool *pool);
    // y_j = W_j . x for j < n (whole matrices, one x) in one dispatch (matvec_batch); n <= 8.
    void matvec_shared_input(const WeightMatrix *const *w, float *const *y, size_t n, const float *x,
                             ThreadPool *pool);

    // The active neurons of the predictor (fc2 . relu(fc1 . h) >= threshold), ascending; scores optional; fc2_t:
    // fc2 transposed or nullptr (predictor.h). The returned list lives until the next call.
    const std::vector<uint32_t> &predict(const WeightMatrix &fc1, const WeightMatrix &fc2, const float *h,
                                         float threshold, float *scores, ThreadPool *pool,
                                         const WeightMatrix *fc2_t = nullptr);
    // Rows of fc2_t the last predict() read (hidden units with z != 0), or fc2's width when it ran the row dots.
    size_t last_fc2_rows_read() const { return predictor_scratch_.fc2_rows_read; }
    // The list of the last predict().
    const std::vector<uint32_t> &active() const { return active_; }

    // y += the fused sparse FFN over rows[0..n) (see sparse_ffn.h).
    void sparse_ffn(const SparseFfnWeights &w, const float *x, const uint32_t *rows, size_t n, float *y,
                    ThreadPool *pool);

    // The rows the last sparse_ffn / activations_rows call read (gate, up, down).
    const SparseFfnScratch::RowsRead &last_rows_read() const { return sparse_scratch_.last_read; }

    // a[j] = the activation of neuron rows[j] (gate/up half only, for the dense ffn_down layout).
    void activations_rows(const SparseFfnWeights &w, const float *x, const uint32_t *rows, size_t n, float *a,
                          ThreadPool *pool);

private:
    MatvecInput input(const WeightMatrix &w, const float *x);

    IsaLevel isa_;
    Q8Activation q8_;
    PredictorScratch predictor_scratch_;
    SparseFfnScratch sparse_scratch_;
    std::vector<uint32_t> active_;
};

}  // namespace pi::cpu

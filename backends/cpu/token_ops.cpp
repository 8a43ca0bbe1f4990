#include "backends/cpu/token_ops.h"

#include <cmath>

#include "common/error.h"

namespace pi::cpu {

void apply_activation(FfnActivation activation, const float *gate, const float *up, size_t n, float *out) {
    switch (activation) {
        case FfnActivation::Silu:
            for (size_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
            break;
        case FfnActivation::Reglu:
            for (size_t i = 0; i < n; ++i) out[i] = (gate[i] > 0.0f ? gate[i] : 0.0f) * up[i];
            break;
        case FfnActivation::Drelu:
            for (size_t i = 0; i < n; ++i) out[i] = (gate[i] > 0.0f ? gate[i] : 0.0f) * (up[i] > 0.0f ? up[i] : 0.0f);
            break;
        case FfnActivation::Relu:
            for (size_t i = 0; i < n; ++i) out[i] = up[i] > 0.0f ? up[i] : 0.0f;
            break;
    }
}

MatvecInput TokenOps::input(const WeightMatrix &w, const float *x) {
    MatvecInput in;
    in.n = w.n_cols;
    if (weight_type_is_quantized(w.type)) {
        q8_.quantize(x, w.n_cols, isa_);
        in.q8 = &q8_;
    } else {
        in.f32 = x;
    }
    return in;
}

void TokenOps::matvec(const WeightMatrix &w, const float *x, size_t r0, size_t r1, float *y, ThreadPool *pool) {
    cpu::matvec(w, input(w, x), r0, r1, y, pool, isa_);
}

void TokenOps::matvec_shared_input(const WeightMatrix *const *w, float *const *y, size_t n, const float *x,
                                   ThreadPool *pool) {
    MatvecJob jobs[8];
    if (n > 8) fail(PI_ERR_INVALID_ARGUMENT, "matvec_shared_input: at most 8 products");
    bool quantized = false;
    for (size_t j = 0; j < n; ++j) quantized = quantized || weight_type_is_quantized(w[j]->type);
    if (quantized && n > 0) q8_.quantize(x, w[0]->n_cols, isa_);  // once for every quantized matrix
    for (size_t j = 0; j < n; ++j) {
        jobs[j].w = w[j];
        jobs[j].x.n = w[j]->n_cols;
        jobs[j].x.f32 = x;
        jobs[j].x.q8 = quantized ? &q8_ : nullptr;
        jobs[j].y = y[j];
    }
    cpu::matvec_batch(jobs, n, pool, isa_);
}

const std::vector<uint32_t> &TokenOps::predict(const WeightMatrix &fc1, const WeightMatrix &fc2, const float *h,
                                               float threshold, float *scores, ThreadPool *pool,
                                               const WeightMatrix *fc2_t) {
    cpu::predict(fc1, fc2, h, threshold, active_, scores, pool, isa_, predictor_scratch_, fc2_t);
    return active_;
}

void TokenOps::sparse_ffn(const SparseFfnWeights &w, const float *x, const uint32_t *rows, size_t n, float *y,
                          ThreadPool *pool) {
    cpu::sparse_ffn(w, input(w.up, x), rows, n, y, pool, isa_, sparse_scratch_);
}

void TokenOps::activations_rows(const SparseFfnWeights &w, const float *x, const uint32_t *rows, size_t n, float *a,
                                ThreadPool *pool) {
    cpu::ffn_activations_rows(w, input(w.up, x), rows, n, a, pool, isa_, sparse_scratch_);
}

}  // namespace pi::cpu

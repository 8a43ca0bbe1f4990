#include "backends/cpu/predictor.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/matvec.h"
#include "common/error.h"

namespace pi::cpu {

void predict(const WeightMatrix &fc1, const WeightMatrix &fc2, const float *h, float threshold,
             std::vector<uint32_t> &active, float *scores_or_null, ThreadPool *pool, IsaLevel isa,
             PredictorScratch &scratch, const WeightMatrix *fc2_t) {
    check_weight_matrix(fc1, "predict (fc1)");
    check_weight_matrix(fc2, "predict (fc2)");
    if (fc2.n_cols != fc1.n_rows) {
        fail(PI_ERR_INVALID_ARGUMENT, "predict: fc2 rows hold " + std::to_string(fc2.n_cols) + " values, fc1 gives " +
                                          std::to_string(fc1.n_rows));
    }
    if (!h && fc1.n_cols > 0) fail(PI_ERR_INVALID_ARGUMENT, "predict: h is missing");
    if (std::isnan(threshold)) fail(PI_ERR_INVALID_ARGUMENT, "predict: the threshold is NaN");
    if (fc2_t) {
        check_weight_matrix(*fc2_t, "predict (fc2_t)");
        if (fc2_t->type != fc2.type || weight_type_is_quantized(fc2_t->type) || fc2_t->n_rows != fc2.n_cols ||
            fc2_t->n_cols != fc2.n_rows) {
            fail(PI_ERR_INVALID_ARGUMENT, "predict: fc2_t is not fc2 transposed (" + std::to_string(fc2_t->n_rows) +
                                              " x " + std::to_string(fc2_t->n_cols) + " " +
                                              weight_type_name(fc2_t->type) + ")");
        }
    }
    if (fc2.n_rows > UINT32_MAX) fail(PI_ERR_INVALID_ARGUMENT, "predict: too many neurons for 32-bit indices");
    (void)detail::kernels(isa);  // PI_ERR_UNSUPPORTED before any work

    const size_t width = fc1.n_rows, n_ff = fc2.n_rows;
    scratch.hidden.reserve(width);
    float *z = scratch.hidden.data();
    float *s = scores_or_null;
    if (!s) {
        scratch.scores.reserve(n_ff);
        s = scratch.scores.data();
    }

    MatvecInput in1;
    in1.f32 = h;
    in1.n = fc1.n_cols;
    if (weight_type_is_quantized(fc1.type)) {
        scratch.h_q8.quantize(h, fc1.n_cols, isa);
        in1.q8 = &scratch.h_q8;
    }
    matvec(fc1, in1, 0, width, z, pool, isa);
    // NaN stays NaN (so a broken input does not look like a quiet neuron): only values below 0 become 0.
    for (size_t i = 0; i < width; ++i) z[i] = z[i] < 0.0f ? 0.0f : z[i];

    if (fc2_t) {
        std::fill(s, s + n_ff, 0.0f);
        axpy_rows(*fc2_t, z, nullptr, width, s, pool, isa);  // skips the rows of z[j] == 0
        scratch.fc2_rows_read = 0;
        for (size_t j = 0; j < width; ++j) scratch.fc2_rows_read += z[j] != 0.0f;
    } else {
        MatvecInput in2;
        in2.f32 = z;
        in2.n = width;
        if (weight_type_is_quantized(fc2.type)) {
            scratch.z_q8.quantize(z, width, isa);
            in2.q8 = &scratch.z_q8;
        }
        matvec(fc2, in2, 0, n_ff, s, pool, isa);
        scratch.fc2_rows_read = width;
    }

    scratch.selected.reserve(n_ff);
    uint32_t *selected = scratch.selected.data();
    const size_t count = detail::kernels(isa).select_at_least(s, n_ff, threshold, selected);
    active.assign(selected, selected + count);
}

}  // namespace pi::cpu

#include "backends/cpu/predictor.h"

#include <cmath>
#include <string>

#include "backends/cpu/isa_kernels.h"
#include "backends/cpu/matvec.h"
#include "common/error.h"

namespace pi::cpu {

void predict(const WeightMatrix &fc1, const WeightMatrix &fc2, const float *h, float threshold,
             std::vector<uint32_t> &active, float *scores_or_null, ThreadPool *pool, IsaLevel isa,
             PredictorScratch &scratch) {
    check_weight_matrix(fc1, "predict (fc1)");
    check_weight_matrix(fc2, "predict (fc2)");
    if (fc2.n_cols != fc1.n_rows) {
        fail(PI_ERR_INVALID_ARGUMENT, "predict: fc2 rows hold " + std::to_string(fc2.n_cols) + " values, fc1 gives " +
                                          std::to_string(fc1.n_rows));
    }
    if (!h && fc1.n_cols > 0) fail(PI_ERR_INVALID_ARGUMENT, "predict: h is missing");
    if (std::isnan(threshold)) fail(PI_ERR_INVALID_ARGUMENT, "predict: the threshold is NaN");
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

    MatvecInput in2;
    in2.f32 = z;
    in2.n = width;
    if (weight_type_is_quantized(fc2.type)) {
        scratch.z_q8.quantize(z, width, isa);
        in2.q8 = &scratch.z_q8;
    }
    matvec(fc2, in2, 0, n_ff, s, pool, isa);

    active.clear();
    for (size_t i = 0; i < n_ff; ++i) {
        if (s[i] >= threshold) active.push_back(static_cast<uint32_t>(i));
    }
}

}  // namespace pi::cpu

#include "backends/cpu/layer_math.h"

#include <algorithm>
#include <cmath>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu {

void rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps) {
    double ss = 0.0;  // double: the sum of squares of thousands of values must not lose the small ones
    for (uint32_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
    const float scale = 1.0f / std::sqrt(float(ss / n) + eps);
    for (uint32_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void layernorm(float *out, const float *x, const float *w, const float *b, uint32_t n, float eps) {
    double mean = 0.0, var = 0.0;
    for (uint32_t i = 0; i < n; ++i) mean += x[i];
    mean /= n;
    for (uint32_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    const float scale = 1.0f / std::sqrt(float(var) + eps);
    for (uint32_t i = 0; i < n; ++i) out[i] = float(x[i] - mean) * scale * w[i] + b[i];
}

void rope(float *head, uint32_t rope_dim, uint32_t pos, float base, RopeStyle style) {
    const uint32_t half = rope_dim / 2;
    for (uint32_t i = 0; i < half; ++i) {
        const float theta = float(pos) * std::pow(base, -2.0f * float(i) / float(rope_dim));
        const float c = std::cos(theta), s = std::sin(theta);
        float &a = style == RopeStyle::Normal ? head[2 * i] : head[i];
        float &b = style == RopeStyle::Normal ? head[2 * i + 1] : head[i + half];
        const float a0 = a, b0 = b;
        a = a0 * c - b0 * s;
        b = a0 * s + b0 * c;
    }
}

void attend_head(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset, uint32_t head_dim,
                 const float *q, uint32_t n_pos, float scale, float *scores, float *out, IsaLevel isa) {
    detail::kernels(isa).attend_head(keys, values, f16, row_stride, offset, head_dim, q, n_pos, scale, scores, out);
}

}  // namespace pi::cpu

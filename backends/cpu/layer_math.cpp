#include "backends/cpu/layer_math.h"

#include <algorithm>
#include <cmath>

#include "backends/cpu/numeric.h"

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

namespace {
inline float element(const void *rows, bool f16, size_t i) {
    return f16 ? fp16_to_fp32(static_cast<const uint16_t *>(rows)[i]) : static_cast<const float *>(rows)[i];
}
}  // namespace

void attend_head(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset, uint32_t head_dim,
                 const float *q, uint32_t n_pos, float scale, float *scores, float *out) {
    float max_score = -INFINITY;
    for (uint32_t p = 0; p < n_pos; ++p) {
        const size_t row = p * row_stride + offset;
        float s = 0.0f;
        for (uint32_t i = 0; i < head_dim; ++i) s += q[i] * element(keys, f16, row + i);
        scores[p] = s * scale;
        max_score = std::max(max_score, scores[p]);
    }
    float sum = 0.0f;
    for (uint32_t p = 0; p < n_pos; ++p) sum += (scores[p] = std::exp(scores[p] - max_score));
    std::fill(out, out + head_dim, 0.0f);
    for (uint32_t p = 0; p < n_pos; ++p) {
        const size_t row = p * row_stride + offset;
        const float weight = scores[p] / sum;
        for (uint32_t i = 0; i < head_dim; ++i) out[i] += weight * element(values, f16, row + i);
    }
}

}  // namespace pi::cpu

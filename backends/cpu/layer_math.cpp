#include "backends/cpu/layer_math.h"

#include <algorithm>
#include <cmath>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu {

void rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps) {
    // double: the sum of squares of thousands of values must not lose the small ones. Four independent partial sums
    // (combined in a fixed order) let the compiler use vector registers; one serial chain would run on the main
    // thread of every decode step, twice a layer, while the workers wait.
    double s4[4] = {0.0, 0.0, 0.0, 0.0};
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        for (uint32_t j = 0; j < 4; ++j) s4[j] += double(x[i + j]) * x[i + j];
    }
    for (; i < n; ++i) s4[i % 4] += double(x[i]) * x[i];
    const double ss = (s4[0] + s4[1]) + (s4[2] + s4[3]);
    const float scale = 1.0f / std::sqrt(float(ss / n) + eps);
    for (i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
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

namespace {

// The angle of pair i: theta_i = pos * base^(-2i / rope_dim). One definition for rope() and RopeAngles, so that both
// round the same way.
inline void rope_cos_sin(uint32_t i, uint32_t rope_dim, uint32_t pos, float base, float &c, float &s) {
    const float theta = float(pos) * std::pow(base, -2.0f * float(i) / float(rope_dim));
    c = std::cos(theta);
    s = std::sin(theta);
}

}  // namespace

void rope(float *head, uint32_t rope_dim, uint32_t pos, float base, RopeStyle style) {
    const uint32_t half = rope_dim / 2;
    for (uint32_t i = 0; i < half; ++i) {
        float c, s;
        rope_cos_sin(i, rope_dim, pos, base, c, s);
        float &a = style == RopeStyle::Normal ? head[2 * i] : head[i];
        float &b = style == RopeStyle::Normal ? head[2 * i + 1] : head[i + half];
        const float a0 = a, b0 = b;
        a = a0 * c - b0 * s;
        b = a0 * s + b0 * c;
    }
}

void RopeAngles::set(uint32_t pos, uint32_t rope_dim, float base) {
    if (valid_ && pos == pos_ && rope_dim == rope_dim_ && base == base_) return;
    const uint32_t half = rope_dim / 2;
    cos_.resize(half);
    sin_.resize(half);
    for (uint32_t i = 0; i < half; ++i) rope_cos_sin(i, rope_dim, pos, base, cos_[i], sin_[i]);
    valid_ = true;
    pos_ = pos;
    rope_dim_ = rope_dim;
    base_ = base;
}

// Plain loops over contiguous arrays (the pair loop de-interleaves), which the compiler vectorizes; each value is the
// same two products and one sum or difference as in rope() (no fused multiply-add: the baseline build has none).
void rope_rotate(float *head, const RopeAngles &angles, RopeStyle style) {
    const uint32_t half = angles.rope_dim() / 2;
    const float *cs = angles.cos(), *sn = angles.sin();
    if (style == RopeStyle::Neox) {
        float *a = head, *b = head + half;
        for (uint32_t i = 0; i < half; ++i) {
            const float a0 = a[i], b0 = b[i];
            a[i] = a0 * cs[i] - b0 * sn[i];
            b[i] = a0 * sn[i] + b0 * cs[i];
        }
        return;
    }
    for (uint32_t i = 0; i < half; ++i) {
        const float a0 = head[2 * i], b0 = head[2 * i + 1];
        head[2 * i] = a0 * cs[i] - b0 * sn[i];
        head[2 * i + 1] = a0 * sn[i] + b0 * cs[i];
    }
}

void attend_head(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset, uint32_t head_dim,
                 const float *q, uint32_t n_pos, float scale, float *scores, float *out, IsaLevel isa) {
    attend_heads_part(keys, values, f16, row_stride, offset, head_dim, 1, 0, 1, q, n_pos, scale, scores, out, nullptr,
                      isa);
}

void attend_heads(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset, uint32_t head_dim,
                  uint32_t group, uint32_t h0, uint32_t h1, const float *q, uint32_t n_pos, float scale, float *scores,
                  float *out, IsaLevel isa) {
    attend_heads_part(keys, values, f16, row_stride, offset, head_dim, group, h0, h1, q, n_pos, scale, scores, out,
                      nullptr, isa);
}

void attend_heads_part(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset,
                       uint32_t head_dim, uint32_t group, uint32_t h0, uint32_t h1, const float *q, uint32_t n_pos,
                       float scale, float *scores, float *out, float *stats, IsaLevel isa) {
    detail::kernels(isa).attend_heads(keys, values, f16, row_stride, offset, head_dim, group, h0, h1, q, n_pos, scale,
                                      scores, out, stats);
}

void merge_attention_parts(const float *outs, const float *stats, size_t n_parts, uint32_t n_heads, uint32_t head_dim,
                           float *out) {
    for (uint32_t h = 0; h < n_heads; ++h) {
        float m = -INFINITY;
        for (size_t t = 0; t < n_parts; ++t) m = std::fmax(m, stats[(t * n_heads + h) * 2]);
        float total = 0.0f;
        float *o = out + size_t(h) * head_dim;
        std::fill(o, o + head_dim, 0.0f);
        for (size_t t = 0; t < n_parts; ++t) {
            // Part t's output is its weights' average; times its share of the whole softmax's mass.
            const float w = stats[(t * n_heads + h) * 2 + 1] * std::exp(stats[(t * n_heads + h) * 2] - m);
            const float *ot = outs + t * size_t(n_heads) * head_dim + size_t(h) * head_dim;
            for (uint32_t i = 0; i < head_dim; ++i) o[i] += w * ot[i];
            total += w;
        }
        const float inv = 1.0f / total;
        for (uint32_t i = 0; i < head_dim; ++i) o[i] *= inv;
    }
}

}  // namespace pi::cpu

// The scalar attention of one query head (layer_math.h attend_head), and of a range of heads one after another: dot
// products, softmax and weighted sum in position order, elements read as the cache stores them (F16 through
// fp16_to_fp32).
#include <algorithm>
#include <cmath>

#include "backends/cpu/isa_kernels.h"

namespace pi::cpu::detail::scalar {

namespace {
inline float element(const void *rows, bool f16, size_t i) {
    return f16 ? fp16_to_fp32(static_cast<const uint16_t *>(rows)[i]) : static_cast<const float *>(rows)[i];
}

void attend_head(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset, uint32_t head_dim,
                 const float *q, uint32_t n_pos, float scale, float *scores, float *out, float *stats) {
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
    if (stats) stats[0] = max_score, stats[1] = sum;
    std::fill(out, out + head_dim, 0.0f);
    for (uint32_t p = 0; p < n_pos; ++p) {
        const size_t row = p * row_stride + offset;
        const float weight = scores[p] / sum;
        for (uint32_t i = 0; i < head_dim; ++i) out[i] += weight * element(values, f16, row + i);
    }
}

}  // namespace

void attend_heads(const void *keys, const void *values, bool f16, size_t row_stride, size_t offset, uint32_t head_dim,
                  uint32_t group, uint32_t h0, uint32_t h1, const float *q, uint32_t n_pos, float scale,
                  float *scores, float *out, float *stats) {
    for (uint32_t h = h0; h < h1; ++h) {
        attend_head(keys, values, f16, row_stride, offset + size_t(h / group) * head_dim, head_dim,
                    q + size_t(h) * head_dim, n_pos, scale, scores, out + size_t(h) * head_dim,
                    stats ? stats + 2 * size_t(h - h0) : nullptr);
    }
}

}  // namespace pi::cpu::detail::scalar

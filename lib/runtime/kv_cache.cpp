#include "runtime/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "common/error.h"

namespace pi {

KvCache::KvCache(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim, KvType type)
    : n_layer_(n_layer), n_ctx_(n_ctx), kv_dim_(kv_dim), type_(type) {
    const size_t bytes = size_t(n_layer) * n_ctx * kv_dim * element_bytes();
    try {
        keys_.resize(bytes);
        values_.resize(bytes);
    } catch (const std::bad_alloc &) {
        fail(PI_ERR_OUT_OF_MEMORY, "cannot allocate the KV cache: 2 x " + std::to_string(bytes) + " bytes for " +
                                       std::to_string(n_ctx) + " positions");
    }
}

void KvCache::store(uint32_t layer, uint32_t pos, const float *k, const float *v) {
    uint8_t *kr = keys_.data() + offset(layer, pos);
    uint8_t *vr = values_.data() + offset(layer, pos);
    if (type_ == KvType::F32) {
        std::memcpy(kr, k, kv_dim_ * sizeof(float));
        std::memcpy(vr, v, kv_dim_ * sizeof(float));
        return;
    }
    auto *kh = reinterpret_cast<uint16_t *>(kr);
    auto *vh = reinterpret_cast<uint16_t *>(vr);
    for (uint32_t i = 0; i < kv_dim_; ++i) {
        kh[i] = cpu::fp32_to_fp16(k[i]);
        vh[i] = cpu::fp32_to_fp16(v[i]);
    }
}

void KvCache::attend(uint32_t layer, uint32_t kv_head, uint32_t head_dim, const float *q, uint32_t n_pos,
                     float scale, float *scores, float *out) const {
    const uint32_t base = kv_head * head_dim;
    float max_score = -INFINITY;
    for (uint32_t p = 0; p < n_pos; ++p) {
        const void *k = key_row(layer, p);
        float s = 0.0f;
        for (uint32_t i = 0; i < head_dim; ++i) s += q[i] * load(k, base + i);
        scores[p] = s * scale;
        max_score = std::max(max_score, scores[p]);
    }
    float sum = 0.0f;
    for (uint32_t p = 0; p < n_pos; ++p) sum += (scores[p] = std::exp(scores[p] - max_score));
    std::fill(out, out + head_dim, 0.0f);
    for (uint32_t p = 0; p < n_pos; ++p) {
        const void *v = value_row(layer, p);
        const float weight = scores[p] / sum;
        for (uint32_t i = 0; i < head_dim; ++i) out[i] += weight * load(v, base + i);
    }
}

size_t KvCache::state_bytes(uint32_t n) const { return 2 * size_t(n_layer_) * n * kv_dim_ * element_bytes(); }

void KvCache::save(uint32_t n, uint8_t *out) const {
    const size_t block = size_t(n) * kv_dim_ * element_bytes();
    for (uint32_t l = 0; l < n_layer_; ++l) {
        std::memcpy(out, key_row(l, 0), block);
        out += block;
        std::memcpy(out, value_row(l, 0), block);
        out += block;
    }
}

void KvCache::restore(uint32_t n, const uint8_t *in) {
    const size_t block = size_t(n) * kv_dim_ * element_bytes();
    for (uint32_t l = 0; l < n_layer_; ++l) {
        std::memcpy(keys_.data() + offset(l, 0), in, block);
        in += block;
        std::memcpy(values_.data() + offset(l, 0), in, block);
        in += block;
    }
}

}  // namespace pi

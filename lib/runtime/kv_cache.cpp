#include "runtime/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "backends/cpu/layer_math.h"
#include "backends/cpu/row_convert.h"
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
    // The ISA level's converter (F16C vcvtps2ph where the CPU has it): the same bits as cpu::fp32_to_fp16.
    cpu::convert_f32_to_f16(k, kv_dim_, reinterpret_cast<uint16_t *>(kr), isa_);
    cpu::convert_f32_to_f16(v, kv_dim_, reinterpret_cast<uint16_t *>(vr), isa_);
}

void KvCache::attend(uint32_t layer, uint32_t kv_head, uint32_t head_dim, const float *q, uint32_t n_pos,
                     float scale, float *scores, float *out, cpu::IsaLevel isa) const {
    cpu::attend_head(key_row(layer, 0), value_row(layer, 0), type_ == KvType::F16, kv_dim_, size_t(kv_head) * head_dim,
                     head_dim, q, n_pos, scale, scores, out, isa);
}

void KvCache::attend_heads(uint32_t layer, uint32_t group, uint32_t head_dim, uint32_t h0, uint32_t h1, const float *q,
                           uint32_t n_pos, float scale, float *scores, float *out, cpu::IsaLevel isa) const {
    attend_heads_part(layer, group, head_dim, h0, h1, q, 0, n_pos, scale, scores, out, nullptr, isa);
}

void KvCache::attend_heads_part(uint32_t layer, uint32_t group, uint32_t head_dim, uint32_t h0, uint32_t h1,
                                const float *q, uint32_t p0, uint32_t n_pos, float scale, float *scores, float *out,
                                float *stats, cpu::IsaLevel isa) const {
    cpu::attend_heads_part(key_row(layer, p0), value_row(layer, p0), type_ == KvType::F16, kv_dim_, 0, head_dim, group,
                           h0, h1, q, n_pos, scale, scores, out, stats, isa);
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

// The key/value cache of one session: for every layer and position, the n_head_kv * head_dim keys and values,
// stored as F16 (default) or F32. Layout [layer][position][kv head][head_dim], so the rows of one layer are
// contiguous in position order: attention streams them, and saving the first n positions copies one block a layer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/numeric.h"

namespace pi {

enum class KvType : int32_t { F16 = 0, F32 = 1 };

class KvCache {
public:
    // Throws PI_ERR_OUT_OF_MEMORY when the cache cannot be allocated.
    KvCache(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim, KvType type);

    KvType type() const { return type_; }
    uint32_t n_ctx() const { return n_ctx_; }
    uint32_t kv_dim() const { return kv_dim_; }
    size_t element_bytes() const { return type_ == KvType::F16 ? 2 : 4; }

    // Stores the key and value vectors (kv_dim floats each) of `layer` at `pos`, rounding to the cache type.
    void store(uint32_t layer, uint32_t pos, const float *k, const float *v);

    // Raw rows: kv_dim elements of the cache type (uint16_t F16 bits or float).
    const void *key_row(uint32_t layer, uint32_t pos) const { return row(keys_, layer, pos); }
    const void *value_row(uint32_t layer, uint32_t pos) const { return row(values_, layer, pos); }

    // Reads element i of a row as float.
    float load(const void *row, uint32_t i) const {
        return type_ == KvType::F16 ? cpu::fp16_to_fp32(static_cast<const uint16_t *>(row)[i])
                                    : static_cast<const float *>(row)[i];
    }

    // Causal attention of one query head over positions [0, n_pos) of `layer`, against key/value head `kv_head`
    // (head_dim values at kv_head * head_dim of each row, read as the cache rounded them):
    // out = softmax(scale * q . K^T) . V, accumulated in position order. `scores` is n_pos floats of scratch.
    // isa: the kernel level (cpu::attend_head); the readable executor asks for Scalar.
    void attend(uint32_t layer, uint32_t kv_head, uint32_t head_dim, const float *q, uint32_t n_pos, float scale,
                float *scores, float *out, cpu::IsaLevel isa = cpu::active_isa_level()) const;

    // attend() for query heads [h0, h1) of one token, `group` query heads to a key/value head: q and out hold the
    // token's heads from head 0 on (head h at h * head_dim); `scores` is (h1 - h0) * n_pos floats of scratch. Each
    // head gets attend()'s bits; the AVX-512 kernel reads each cache row once for all the heads.
    void attend_heads(uint32_t layer, uint32_t group, uint32_t head_dim, uint32_t h0, uint32_t h1, const float *q,
                      uint32_t n_pos, float scale, float *scores, float *out,
                      cpu::IsaLevel isa = cpu::active_isa_level()) const;

    // attend_heads over positions [p0, p0 + n_pos) only, with each head's softmax state in stats (a part of a context
    // split over threads: cpu::attend_heads_part, merged by cpu::merge_attention_parts).
    void attend_heads_part(uint32_t layer, uint32_t group, uint32_t head_dim, uint32_t h0, uint32_t h1, const float *q,
                           uint32_t p0, uint32_t n_pos, float scale, float *scores, float *out, float *stats,
                           cpu::IsaLevel isa) const;

    // The bytes of the first n positions of every layer (keys then values), for session state save/restore.
    size_t state_bytes(uint32_t n) const;
    void save(uint32_t n, uint8_t *out) const;
    void restore(uint32_t n, const uint8_t *in);

private:
    size_t offset(uint32_t layer, uint32_t pos) const { return (size_t(layer) * n_ctx_ + pos) * kv_dim_ * element_bytes(); }
    const void *row(const std::vector<uint8_t> &buf, uint32_t layer, uint32_t pos) const {
        return buf.data() + offset(layer, pos);
    }

    uint32_t n_layer_, n_ctx_, kv_dim_;
    KvType type_;
    cpu::IsaLevel isa_ = cpu::active_isa_level();  // of store()'s F16 conversion
    std::vector<uint8_t> keys_, values_;
};

}  // namespace pi

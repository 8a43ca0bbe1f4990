// The session state format (docs/SESSION_STATE.md): a versioned, checksummed binary snapshot of a session that
// pi_session_state_save writes and pi_session_state_load reads back. This file knows the byte layout and checks
// everything a state says about itself; whether it fits a particular session (same model, KV type, n_ctx) is the
// session's question.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/kv_cache.h"
#include "runtime/sampler.h"

namespace pi {

constexpr char kSessionStateMagic[8] = {'P', 'I', 'S', 'T', 'A', 'T', 'E', '\0'};
constexpr uint32_t kSessionStateVersion = 1;
// Restoring the sampler replays its draws (Sampler::set_rng_position), so a state may not ask for more than this
// many: about 10 s of replay, and more sampled tokens than a session produces in a year at 100 tokens/s.
constexpr uint64_t kMaxSessionStateDraws = uint64_t(1) << 32;

// XXH64 (the published xxHash 64-bit algorithm) of n bytes: the state's checksum and the fingerprint's weights hash.
uint64_t xxhash64(const void *data, size_t n, uint64_t seed);

// What identifies a model to a state: the shape that the KV rows and logits depend on, and a hash of sampled
// tensor bytes, so that another model of the same shape (another fine-tune) is refused too.
struct ModelFingerprint {
    std::string arch;
    uint32_t n_layer = 0;
    uint32_t n_embd = 0;
    uint32_t n_head_kv = 0;
    uint32_t head_dim = 0;
    uint32_t n_vocab = 0;
    uint64_t weights_hash = 0;

    // Hashes every tensor's name, type, shape and three windows of its bytes (start, middle, end; 1 KiB each):
    // O(number of tensors), a few pages per tensor, not the whole file.
    static ModelFingerprint of(const Model &model);

    // "" when equal, else which field differs and both values ("n_layer is 3 in the state, 2 in this model").
    std::string difference_from(const ModelFingerprint &model) const;

    uint32_t kv_dim() const { return n_head_kv * head_dim; }
};

// A state without its KV rows, which are copied straight between the cache and the caller's buffer.
struct SessionState {
    ModelFingerprint model;
    KvType kv_type = KvType::F16;
    std::vector<Token> tokens;
    bool has_logits = false;
    std::vector<float> logits;  // n_vocab floats when has_logits, else empty
    Sampler::RngPosition rng;
    // decode_state: the KV rows inside the decoded buffer. encode_state: only kv_bytes is read.
    const uint8_t *kv = nullptr;
    size_t kv_bytes = 0;
};

// 2 * n_layer * n_past * kv_dim * element size; PI_ERR_FORMAT when that overflows size_t.
size_t kv_state_bytes(const ModelFingerprint &model, KvType type, uint64_t n_past);

size_t encoded_state_size(const SessionState &state);

// Writes encoded_state_size(state) bytes at out; write_kv is handed the place of the kv_bytes bytes of KV rows
// (layout of KvCache::save) and must fill it. The checksum is computed after it returns.
void encode_state(const SessionState &state, const std::function<void(uint8_t *)> &write_kv, uint8_t *out);

// Parses and checks a state: magic, version, size, checksum, then every field (bounds, counts, consistency, tokens
// below n_vocab, finite logits and KV values, the draw limit). Throws PI_ERR_FORMAT naming what is wrong; never
// reads outside [data, data + size). The result's kv points into data.
SessionState decode_state(const uint8_t *data, size_t size);

}  // namespace pi

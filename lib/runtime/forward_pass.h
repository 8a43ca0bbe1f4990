// What a session needs from an executor: run tokens through the model at given positions, keeping its own KV
// cache, and produce the last token's logits.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>

#include "backends/cpu/layer_math.h"
#include "model/model.h"
#include "runtime/kv_cache.h"
#include "sparse/activation_stats.h"

namespace pi {

struct SessionOptions;

class ForwardPass {
public:
    virtual ~ForwardPass() = default;
    // Runs tokens[0..n) at positions start_pos.. and writes the last token's logits (n_vocab floats). Positions
    // from start_pos on are overwritten in the KV cache. When *cancel becomes true (another thread), the pass stops
    // at the next layer boundary and throws PI_ERR_CANCELLED.
    virtual void run(const Token *tokens, size_t n, size_t start_pos, float *logits,
                     const std::atomic<bool> &cancel) = 0;

    // The session's KV cache (for state save/restore).
    virtual KvCache &kv_cache() = 0;

    // The predictors' statistics, or nullptr when this executor keeps none (models without predictors).
    virtual ActivationStats *activation_stats() { return nullptr; }
};

// The rotation style of the CPU's rope() for a model's RoPE mode (None: not called).
inline cpu::RopeStyle rope_style(RopeMode mode) {
    return mode == RopeMode::Neox ? cpu::RopeStyle::Neox : cpu::RopeStyle::Normal;
}

// What a session's executor does with the predictors, from the session options and the model (both executors use
// it). Throws PI_ERR_INVALID_ARGUMENT when sparse execution or profiling is asked of a model without predictors.
struct SparseSettings {
    bool sparse = false;    // decode tokens compute only the predicted-active neurons
    bool profile = false;   // count per-neuron activity (the predictors also run for prompt tokens)
    float threshold = 0.0f;
    bool keeps_stats() const { return sparse || profile; }
};
SparseSettings sparse_settings(const Model &model, const SessionOptions &options);

// The executor for this model and session, or nullptr when this build has none for the model's architecture.
std::unique_ptr<ForwardPass> make_forward_pass(const Model &model, const SessionOptions &options);

}  // namespace pi

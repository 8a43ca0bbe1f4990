// A conversation with a model: the tokens in its context, the executor state (KV cache), the latest logits and
// the sampler. Used by one thread at a time (cancel() excepted); many sessions may share one Model.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "model/model.h"
#include "runtime/forward_pass.h"
#include "runtime/sampler.h"
#include "runtime/session_state.h"

namespace pi {

// pi_sparse_mode.
enum class SparseMode : int32_t { Auto = 0, Off = 1, On = 2 };

struct SessionOptions {
    uint32_t n_ctx = 0;  // 0: min(n_ctx_train, kDefaultMaxCtx)
    uint32_t n_batch = 512;
    int32_t n_threads = 0;  // 0: the model's
    KvType kv_type = KvType::F16;
    SparseMode sparse = SparseMode::Auto;
    float sparse_threshold = std::numeric_limits<float>::quiet_NaN();  // NaN: the model's
    bool profile_activations = false;
    SamplingParams sampling;
};

class Session {
public:
    static constexpr uint32_t kDefaultMaxCtx = 2048;
    static constexpr uint32_t kMaxCtx = 1u << 20;

    // Throws PI_ERR_INVALID_ARGUMENT for bad options, PI_ERR_OUT_OF_MEMORY when the state cannot be allocated.
    Session(const Model &model, const SessionOptions &options);

    // Appends tokens and runs them; all or nothing: on failure (PI_ERR_CANCELLED included) the context, the logits
    // and the sampler are unchanged. Clears a pending cancel request first.
    void eval(const Token *tokens, size_t n);
    // Samples from the current logits, appends the token, runs it, returns it. All or nothing like eval.
    Token step();
    // Keeps the first n_keep tokens (PI_ERR_INVALID_ARGUMENT when n_keep > n_past); the logits become unavailable.
    void truncate(size_t n_keep);
    // Thread-safe: makes the eval or step running on another thread fail with PI_ERR_CANCELLED at its next layer
    // boundary. The request is cleared when an eval or step begins, so one made while none runs has no effect.
    void cancel() { cancel_.store(true); }

    // Session state (session_state.h). load_state checks everything before it changes anything: PI_ERR_FORMAT,
    // PI_ERR_INVALID_ARGUMENT (another model or kv_type), PI_ERR_CONTEXT_FULL (n_past > n_ctx).
    size_t state_size() const;
    void save_state(uint8_t *out) const;  // writes state_size() bytes
    void load_state(const uint8_t *data, size_t size);

    bool has_logits() const { return has_logits_; }
    const std::vector<float> &logits() const { return logits_; }
    size_t n_past() const { return tokens_.size(); }
    uint32_t n_ctx() const { return options_.n_ctx; }
    KvType kv_type() const { return options_.kv_type; }
    const std::vector<Token> &tokens() const { return tokens_; }
    void reset();

    const Model &model() const { return model_; }
    // The predictors' statistics (sparsity, per-neuron counts), or nullptr when the executor keeps none (dense model).
    ActivationStats *activation_stats() const { return forward().activation_stats(); }

private:
    void check_room(size_t n) const;
    ForwardPass &forward() const;
    void run(const Token *tokens, size_t n);  // the all-or-nothing body of eval and step
    SessionState describe() const;             // the state without its KV rows
    const ModelFingerprint &fingerprint() const;

    const Model &model_;
    SessionOptions options_;
    std::unique_ptr<ForwardPass> forward_;
    std::atomic<bool> cancel_{false};
    Sampler sampler_;
    std::vector<Token> tokens_;  // capacity n_ctx from the start, so appending never allocates
    std::vector<float> logits_;
    std::vector<float> pending_logits_;  // a run writes here; swapped with logits_ when it succeeds
    bool has_logits_ = false;
    mutable std::optional<ModelFingerprint> fingerprint_;  // computed on the first state save or load
};

}  // namespace pi

// A conversation with a model: the tokens in its context, the executor state (KV cache), the latest logits and
// the sampler. Used by one thread at a time; many sessions may share one Model.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/model.h"
#include "runtime/forward_pass.h"
#include "runtime/sampler.h"

namespace pi {

struct SessionOptions {
    uint32_t n_ctx = 0;  // 0: min(n_ctx_train, kDefaultMaxCtx)
    uint32_t n_batch = 512;
    int32_t n_threads = 0;  // 0: the model's
    KvType kv_type = KvType::F16;
    SamplingParams sampling;
};

class Session {
public:
    static constexpr uint32_t kDefaultMaxCtx = 2048;
    static constexpr uint32_t kMaxCtx = 1u << 20;

    // Throws PI_ERR_INVALID_ARGUMENT for bad options, PI_ERR_OUT_OF_MEMORY when the state cannot be allocated.
    Session(const Model &model, const SessionOptions &options);

    // Appends tokens and runs them; all or nothing: on failure the context is unchanged.
    void eval(const Token *tokens, size_t n);
    // Samples from the current logits, appends the token, runs it, returns it.
    Token step();

    bool has_logits() const { return has_logits_; }
    const std::vector<float> &logits() const { return logits_; }
    size_t n_past() const { return tokens_.size(); }
    uint32_t n_ctx() const { return options_.n_ctx; }
    const std::vector<Token> &tokens() const { return tokens_; }
    void reset();

    const Model &model() const { return model_; }

private:
    void check_room(size_t n) const;
    ForwardPass &forward();

    const Model &model_;
    SessionOptions options_;
    std::unique_ptr<ForwardPass> forward_;
    std::atomic<bool> cancel_{false};
    Sampler sampler_;
    std::vector<Token> tokens_;
    std::vector<float> logits_;
    bool has_logits_ = false;
};

}  // namespace pi

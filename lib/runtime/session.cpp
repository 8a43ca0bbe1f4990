#include "runtime/session.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace pi {

Session::Session(const Model &model, const SessionOptions &options)
    : model_(model), options_(options), sampler_(options.sampling) {
    const HParams &hp = model.hparams();
    if (options_.n_ctx == 0) options_.n_ctx = std::min(hp.n_ctx_train, kDefaultMaxCtx);
    if (options_.n_ctx > kMaxCtx) {
        fail(PI_ERR_INVALID_ARGUMENT, "pi_session_create: n_ctx " + std::to_string(options_.n_ctx) +
                                          " exceeds the maximum " + std::to_string(kMaxCtx));
    }
    if (options_.n_batch == 0) fail(PI_ERR_INVALID_ARGUMENT, "pi_session_create: n_batch must be >= 1");
    if (options_.n_threads < 0) fail(PI_ERR_INVALID_ARGUMENT, "pi_session_create: n_threads must be >= 0");
    if (options_.n_threads == 0) options_.n_threads = model.n_threads();
    options_.sampling.validate("pi_session_create");
    tokens_.reserve(options_.n_ctx);
    logits_.assign(hp.n_vocab, 0.0f);
    forward_ = make_forward_pass(model, options_);
}

void Session::check_room(size_t n) const {
    if (n > options_.n_ctx - tokens_.size()) {
        fail(PI_ERR_CONTEXT_FULL, "context full: " + std::to_string(tokens_.size()) + " tokens in a context of " +
                                      std::to_string(options_.n_ctx) + ", cannot add " + std::to_string(n));
    }
}

ForwardPass &Session::forward() {
    if (!forward_) {
        fail(PI_ERR_UNSUPPORTED, "the forward pass for architecture '" + model_.hparams().arch_name +
                                     "' is not available in this build");
    }
    return *forward_;
}

void Session::eval(const Token *tokens, size_t n) {
    check_room(n);
    const size_t n_vocab = model_.hparams().n_vocab;
    for (size_t i = 0; i < n; ++i) {
        if (tokens[i] < 0 || static_cast<size_t>(tokens[i]) >= n_vocab) {
            fail(PI_ERR_INVALID_ARGUMENT, "pi_session_eval: token " + std::to_string(i) + " = " +
                                              std::to_string(tokens[i]) + " is outside [0, " +
                                              std::to_string(n_vocab) + ")");
        }
    }
    ForwardPass &fp = forward();
    // Batches of n_batch tokens; on failure the context is rolled back to where it was (the executor's cache
    // beyond n_past is simply overwritten by the next call).
    const size_t start = tokens_.size();
    try {
        for (size_t done = 0; done < n; done += options_.n_batch) {
            const size_t count = std::min<size_t>(options_.n_batch, n - done);
            fp.run(tokens + done, count, start + done, logits_.data(), cancel_);
            tokens_.insert(tokens_.end(), tokens + done, tokens + done + count);
        }
    } catch (...) {
        tokens_.resize(start);
        has_logits_ = false;
        throw;
    }
    has_logits_ = true;
}

Token Session::step() {
    if (!has_logits_) fail(PI_ERR_INVALID_ARGUMENT, "pi_session_step: no logits yet: evaluate a prompt first");
    check_room(1);
    const Token next = sampler_.sample(logits_.data(), logits_.size(), tokens_);
    eval(&next, 1);
    return next;
}

void Session::reset() {
    tokens_.clear();
    has_logits_ = false;
    sampler_.reseed();
}

}  // namespace pi

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
    if (options_.kv_type != KvType::F16 && options_.kv_type != KvType::F32) {
        fail(PI_ERR_INVALID_ARGUMENT, "pi_session_create: kv_type " +
                                          std::to_string(static_cast<int32_t>(options_.kv_type)) +
                                          " is not a pi_kv_type (PI_KV_F16 = 0, PI_KV_F32 = 1)");
    }
    if (options_.n_threads == 0) options_.n_threads = model.n_threads();
    options_.sampling.validate("pi_session_create");
    tokens_.reserve(options_.n_ctx);
    logits_.assign(hp.n_vocab, 0.0f);
    pending_logits_.assign(hp.n_vocab, 0.0f);
    forward_ = make_forward_pass(model, options_);
}

void Session::check_room(size_t n) const {
    if (n > options_.n_ctx - tokens_.size()) {
        fail(PI_ERR_CONTEXT_FULL, "context full: " + std::to_string(tokens_.size()) + " tokens in a context of " +
                                      std::to_string(options_.n_ctx) + ", cannot add " + std::to_string(n));
    }
}

ForwardPass &Session::forward() const {
    if (!forward_) {
        fail(PI_ERR_UNSUPPORTED, "the forward pass for architecture '" + model_.hparams().arch_name +
                                     "' is not available in this build");
    }
    return *forward_;
}

void Session::eval(const Token *tokens, size_t n) {
    cancel_.store(false);
    run(tokens, n);
}

void Session::run(const Token *tokens, size_t n) {
    if (n == 0) fail(PI_ERR_INVALID_ARGUMENT, "pi_session_eval: n is 0: nothing to evaluate");
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
    // Batches of n_batch tokens. Until the last one succeeds nothing visible changes: the executor writes only
    // cache positions >= n_past (overwritten by the next run anyway) and the logits go to pending_logits_.
    const size_t start = tokens_.size();
    for (size_t done = 0; done < n; done += options_.n_batch) {
        const size_t count = std::min<size_t>(options_.n_batch, n - done);
        fp.run(tokens + done, count, start + done, pending_logits_.data(), cancel_);
    }
    // Commit; nothing here throws (tokens_ has capacity n_ctx).
    tokens_.insert(tokens_.end(), tokens, tokens + n);
    logits_.swap(pending_logits_);
    has_logits_ = true;
}

Token Session::step() {
    cancel_.store(false);
    if (!has_logits_) fail(PI_ERR_INVALID_ARGUMENT, "pi_session_step: no logits yet: evaluate a prompt first");
    check_room(1);
    const Sampler::RngPosition before = sampler_.rng_position();
    const Token next = sampler_.sample(logits_.data(), logits_.size(), tokens_);
    try {
        run(&next, 1);
    } catch (...) {
        sampler_.set_rng_position(before);  // the draw is undone too: a retried step samples the same token
        throw;
    }
    return next;
}

void Session::truncate(size_t n_keep) {
    if (n_keep > tokens_.size()) {
        fail(PI_ERR_INVALID_ARGUMENT, "pi_session_truncate: n_keep " + std::to_string(n_keep) +
                                          " exceeds the tokens in the context (n_past " +
                                          std::to_string(tokens_.size()) + ")");
    }
    tokens_.resize(n_keep);
    has_logits_ = false;
}

void Session::reset() {
    tokens_.clear();
    has_logits_ = false;
    sampler_.reseed();
}

// ---- state ------------------------------------------------------------------------------------------------------

const ModelFingerprint &Session::fingerprint() const {
    if (!fingerprint_) fingerprint_ = ModelFingerprint::of(model_);
    return *fingerprint_;
}

SessionState Session::describe() const {
    SessionState s;
    s.model = fingerprint();
    s.kv_type = options_.kv_type;
    s.tokens = tokens_;
    s.has_logits = has_logits_;
    if (has_logits_) s.logits = logits_;
    s.rng = sampler_.rng_position();
    s.kv_bytes = kv_state_bytes(s.model, s.kv_type, tokens_.size());
    const size_t cache_bytes = forward().kv_cache().state_bytes(static_cast<uint32_t>(tokens_.size()));
    if (cache_bytes != s.kv_bytes) {
        fail(PI_ERR_INTERNAL, "session state: the KV cache holds " + std::to_string(cache_bytes) +
                                  " bytes for the context, the model's shape says " + std::to_string(s.kv_bytes));
    }
    return s;
}

size_t Session::state_size() const { return encoded_state_size(describe()); }

void Session::save_state(uint8_t *out) const {
    const SessionState s = describe();
    const uint32_t n = static_cast<uint32_t>(tokens_.size());
    const KvCache &cache = forward().kv_cache();
    encode_state(s, [&](uint8_t *kv) { cache.save(n, kv); }, out);
}

void Session::load_state(const uint8_t *data, size_t size) {
    SessionState s = decode_state(data, size);
    const std::string mismatch = s.model.difference_from(fingerprint());
    if (!mismatch.empty()) {
        fail(PI_ERR_INVALID_ARGUMENT, "pi_session_state_load: the state was saved from another model: " + mismatch);
    }
    if (s.kv_type != options_.kv_type) {
        auto name = [](KvType t) { return t == KvType::F16 ? "PI_KV_F16" : "PI_KV_F32"; };
        fail(PI_ERR_INVALID_ARGUMENT, std::string("pi_session_state_load: kv_type is ") + name(s.kv_type) +
                                          " in the state, " + name(options_.kv_type) + " in this session");
    }
    if (s.tokens.size() > options_.n_ctx) {
        fail(PI_ERR_CONTEXT_FULL, "pi_session_state_load: the state holds " + std::to_string(s.tokens.size()) +
                                      " tokens, more than this session's n_ctx " + std::to_string(options_.n_ctx));
    }
    KvCache &cache = forward().kv_cache();
    const uint32_t n = static_cast<uint32_t>(s.tokens.size());
    if (cache.state_bytes(n) != s.kv_bytes) {
        fail(PI_ERR_INTERNAL, "pi_session_state_load: the KV cache's row size disagrees with the model's shape");
    }
    // Commit; nothing below throws (tokens_ has capacity n_ctx, logits_ has n_vocab floats).
    cache.restore(n, s.kv);
    tokens_.assign(s.tokens.begin(), s.tokens.end());
    if (s.has_logits) std::copy(s.logits.begin(), s.logits.end(), logits_.begin());
    has_logits_ = s.has_logits;
    sampler_.set_rng_position(s.rng);
}

}  // namespace pi

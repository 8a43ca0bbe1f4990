// pi_session_* entry points.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

#include "api/guard.h"
#include "api/handles.h"
#include "api/struct_io.h"
#include "sparse/profile_file.h"

using pi::api::guarded;
using pi::api::require;

namespace {

// The size of the first published pi_session_params (0.1.0): everything up to repeat_last_n. Fields appended since
// (kv_type, ...) keep their defaults for callers whose struct_size ends before them.
constexpr size_t kSessionParamsV1Size = offsetof(pi_session_params, kv_type);
static_assert(kSessionParamsV1Size == 48, "the published prefix of pi_session_params must never change");

pi_session_params default_session_params() {
    pi_session_params p;
    std::memset(&p, 0, sizeof p);
    const pi::SessionOptions o;
    p.struct_size = sizeof p;
    p.n_ctx = o.n_ctx;
    p.n_batch = o.n_batch;
    p.n_threads = o.n_threads;
    p.seed = o.sampling.seed;
    p.temperature = o.sampling.temperature;
    p.top_k = o.sampling.top_k;
    p.top_p = o.sampling.top_p;
    p.min_p = o.sampling.min_p;
    p.repeat_penalty = o.sampling.repeat_penalty;
    p.repeat_last_n = o.sampling.repeat_last_n;
    p.kv_type = static_cast<int32_t>(o.kv_type);
    p.sparse = static_cast<int32_t>(o.sparse);
    p.sparse_threshold = o.sparse_threshold;
    p.profile_activations = o.profile_activations ? 1 : 0;
    return p;
}

}  // namespace

extern "C" {

PI_API void pi_session_params_init_sized(pi_session_params *params, size_t size) {
    const pi_session_params defaults = default_session_params();
    pi::api::init_versioned(params, size, &defaults, sizeof defaults);
}

// 0.1.0's pi_session_params ended with kv_type at offset 48; with its 8-byte alignment it was 56 bytes (the last 4
// padding, where `sparse` now lies: writing them cannot hurt a 0.1.0 caller).
PI_API void(pi_session_params_init)(pi_session_params *params) {
    static_assert(offsetof(pi_session_params, kv_type) == 48 && alignof(pi_session_params) == 8,
                  "the 0.1.0 layout of pi_session_params");
    pi_session_params_init_sized(params, 56);
}

PI_API pi_status pi_session_create(pi_model *model, const pi_session_params *params, pi_session **out) {
    return guarded([&] {
        require(model != nullptr, "pi_session_create", "model is NULL");
        require(out != nullptr, "pi_session_create", "out is NULL");
        const pi_session_params p = pi::api::read_params(params, default_session_params(), kSessionParamsV1Size,
                                                         "pi_session_create", "pi_session_params");
        pi::SessionOptions o;
        o.n_ctx = p.n_ctx;
        o.n_batch = p.n_batch;
        o.n_threads = p.n_threads;
        o.sampling.seed = p.seed;
        o.sampling.temperature = p.temperature;
        o.sampling.top_k = p.top_k;
        o.sampling.top_p = p.top_p;
        o.sampling.min_p = p.min_p;
        o.sampling.repeat_penalty = p.repeat_penalty;
        o.sampling.repeat_last_n = p.repeat_last_n;
        if (p.kv_type != PI_KV_F16 && p.kv_type != PI_KV_F32) {
            pi::fail(PI_ERR_INVALID_ARGUMENT, "pi_session_create: kv_type " + std::to_string(p.kv_type) +
                                                  " is not a pi_kv_type (PI_KV_F16 = 0, PI_KV_F32 = 1)");
        }
        o.kv_type = p.kv_type == PI_KV_F32 ? pi::KvType::F32 : pi::KvType::F16;
        if (p.sparse != PI_SPARSE_AUTO && p.sparse != PI_SPARSE_OFF && p.sparse != PI_SPARSE_ON) {
            pi::fail(PI_ERR_INVALID_ARGUMENT, "pi_session_create: sparse " + std::to_string(p.sparse) +
                                                  " is not a pi_sparse_mode (AUTO = 0, OFF = 1, ON = 2)");
        }
        o.sparse = static_cast<pi::SparseMode>(p.sparse);
        o.sparse_threshold = p.sparse_threshold;
        o.profile_activations = p.profile_activations != 0;
        auto handle = std::make_unique<pi_session>();
        handle->session = std::make_unique<pi::Session>(*model->model, o);
        *out = handle.release();
    });
}

PI_API void pi_session_free(pi_session *session) { delete session; }

PI_API pi_status pi_session_eval(pi_session *session, const pi_token *tokens, size_t n) {
    return guarded([&] {
        require(session != nullptr, "pi_session_eval", "session is NULL");
        require(tokens != nullptr, "pi_session_eval", "tokens is NULL");
        require(n > 0, "pi_session_eval", "n is 0: nothing to evaluate");
        session->session->eval(tokens, n);
    });
}

PI_API pi_status pi_session_step(pi_session *session, pi_token *out) {
    return guarded([&] {
        require(session != nullptr, "pi_session_step", "session is NULL");
        require(out != nullptr, "pi_session_step", "out is NULL");
        *out = session->session->step();
    });
}

PI_API pi_status pi_session_logits(pi_session *session, const float **out, size_t *n_vocab) {
    return guarded([&] {
        require(session != nullptr, "pi_session_logits", "session is NULL");
        require(out != nullptr, "pi_session_logits", "out is NULL");
        require(n_vocab != nullptr, "pi_session_logits", "n_vocab is NULL");
        const pi::Session &s = *session->session;
        if (!s.has_logits()) pi::fail(PI_ERR_INVALID_ARGUMENT, "pi_session_logits: no logits yet: evaluate tokens first");
        *out = s.logits().data();
        *n_vocab = s.logits().size();
    });
}

PI_API pi_status pi_session_reset(pi_session *session) {
    return guarded([&] {
        require(session != nullptr, "pi_session_reset", "session is NULL");
        session->session->reset();
    });
}

PI_API size_t pi_session_n_past(const pi_session *session) { return session ? session->session->n_past() : 0; }

PI_API pi_status pi_session_truncate(pi_session *session, size_t n_keep) {
    return guarded([&] {
        require(session != nullptr, "pi_session_truncate", "session is NULL");
        session->session->truncate(n_keep);
    });
}

// Runs concurrently with an eval or step on another thread: it touches nothing but the session's atomic flag.
PI_API pi_status pi_session_cancel(pi_session *session) {
    return guarded([&] {
        require(session != nullptr, "pi_session_cancel", "session is NULL");
        session->session->cancel();
    });
}

PI_API pi_status pi_session_state_size(const pi_session *session, size_t *out) {
    return guarded([&] {
        require(session != nullptr, "pi_session_state_size", "session is NULL");
        require(out != nullptr, "pi_session_state_size", "out is NULL");
        *out = session->session->state_size();
    });
}

PI_API pi_status pi_session_state_save(const pi_session *session, void *buf, size_t capacity, size_t *n_out) {
    return guarded([&] {
        require(session != nullptr, "pi_session_state_save", "session is NULL");
        require(n_out != nullptr, "pi_session_state_save", "n_out is NULL");
        require(buf != nullptr || capacity == 0, "pi_session_state_save", "buf is NULL but capacity is not 0");
        const size_t needed = session->session->state_size();
        if (capacity < needed) {
            *n_out = needed;
            pi::fail(PI_ERR_BUFFER_TOO_SMALL, "pi_session_state_save: the state needs " + std::to_string(needed) +
                                                  " bytes, the buffer holds " + std::to_string(capacity));
        }
        session->session->save_state(static_cast<uint8_t *>(buf));
        *n_out = needed;
    });
}

PI_API pi_status pi_session_state_load(pi_session *session, const void *buf, size_t size) {
    return guarded([&] {
        require(session != nullptr, "pi_session_state_load", "session is NULL");
        require(buf != nullptr, "pi_session_state_load", "buf is NULL");
        session->session->load_state(static_cast<const uint8_t *>(buf), size);
    });
}

}  // extern "C"

namespace {
const pi::ActivationStats &stats_of(const pi_session *session, const char *fn, bool need_profile) {
    require(session != nullptr, fn, "session is NULL");
    const pi::ActivationStats *stats = session->session->activation_stats();
    if (!stats) pi::fail(PI_ERR_INVALID_ARGUMENT, std::string(fn) + ": the model has no activation predictors");
    if (need_profile && !stats->profiling()) {
        pi::fail(PI_ERR_INVALID_ARGUMENT, std::string(fn) + ": the session was created without profile_activations");
    }
    return *stats;
}

// One float per layer into out[0 .. n_layer) (the buffer rule of pi_session_sparsity); returns the statistics.
const pi::ActivationStats &per_layer(const pi_session *session, const char *fn, float *out, size_t capacity,
                                     size_t *n_layer, double (pi::ActivationStats::*value)(uint32_t) const) {
    require(n_layer != nullptr, fn, "n_layer is NULL");
    const pi::ActivationStats &stats = stats_of(session, fn, false);
    const size_t n = stats.n_layer();
    if (capacity < n) {
        *n_layer = n;
        pi::fail(PI_ERR_BUFFER_TOO_SMALL,
                 std::string(fn) + ": " + std::to_string(n) + " layers, capacity " + std::to_string(capacity));
    }
    require(out != nullptr, fn, "out is NULL");
    for (uint32_t l = 0; l < n; ++l) out[l] = static_cast<float>((stats.*value)(l));
    *n_layer = n;
    return stats;
}
}  // namespace

extern "C" {

PI_API pi_status pi_session_sparsity(const pi_session *session, float *out, size_t capacity, size_t *n_layer,
                                     uint64_t *n_tokens) {
    return guarded([&] {
        const pi::ActivationStats &stats = per_layer(session, "pi_session_sparsity", out, capacity, n_layer,
                                                     &pi::ActivationStats::mean_active_fraction);
        if (n_tokens) *n_tokens = stats.n_layer() ? stats.tokens(0) : 0;
    });
}

PI_API pi_status pi_session_ffn_rows_read(const pi_session *session, float *out, size_t capacity, size_t *n_layer) {
    return guarded([&] {
        per_layer(session, "pi_session_ffn_rows_read", out, capacity, n_layer, &pi::ActivationStats::mean_ffn_rows_read);
    });
}

PI_API pi_status pi_session_predictor_read(const pi_session *session, float *out, size_t capacity, size_t *n_layer) {
    return guarded([&] {
        per_layer(session, "pi_session_predictor_read", out, capacity, n_layer,
                  &pi::ActivationStats::mean_predictor_read);
    });
}

PI_API pi_status pi_session_activation_counts(const pi_session *session, uint32_t layer, uint64_t *counts,
                                              size_t capacity, size_t *n_out, uint64_t *n_tokens) {
    return guarded([&] {
        require(n_out != nullptr, "pi_session_activation_counts", "n_out is NULL");
        const pi::ActivationStats &stats = stats_of(session, "pi_session_activation_counts", true);
        if (layer >= stats.n_layer()) {
            pi::fail(PI_ERR_INVALID_ARGUMENT, "pi_session_activation_counts: layer " + std::to_string(layer) +
                                                  " >= n_layer " + std::to_string(stats.n_layer()));
        }
        const std::vector<uint64_t> &c = stats.counts(layer);
        if (capacity < c.size()) {
            *n_out = c.size();
            pi::fail(PI_ERR_BUFFER_TOO_SMALL, "pi_session_activation_counts: the layer has " + std::to_string(c.size()) +
                                                  " neurons, capacity " + std::to_string(capacity));
        }
        require(counts != nullptr, "pi_session_activation_counts", "counts is NULL");
        std::copy(c.begin(), c.end(), counts);
        *n_out = c.size();
        if (n_tokens) *n_tokens = stats.tokens(layer);
    });
}

PI_API pi_status pi_session_save_profile(const pi_session *session, const char *path) {
    return guarded([&] {
        const pi::ActivationStats &stats = stats_of(session, "pi_session_save_profile", true);
        require(path != nullptr && path[0] != '\0', "pi_session_save_profile", "path is NULL or empty");
        pi::save_activation_profile(path, session->session->model().hparams().arch_name, stats);
    });
}

PI_API pi_status pi_session_reset_stats(pi_session *session) {
    return guarded([&] {
        require(session != nullptr, "pi_session_reset_stats", "session is NULL");
        if (pi::ActivationStats *stats = session->session->activation_stats()) stats->reset();
    });
}

}  // extern "C"

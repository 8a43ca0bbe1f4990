// pi_session_* entry points.
#include <cstring>

#include "api/guard.h"
#include "api/handles.h"
#include "api/struct_io.h"

using pi::api::guarded;
using pi::api::require;

namespace {

constexpr size_t kSessionParamsV1Size = sizeof(pi_session_params);

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
    return p;
}

}  // namespace

extern "C" {

PI_API void pi_session_params_init(pi_session_params *params) {
    if (params) *params = default_session_params();
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

}  // extern "C"

/* A few entry points over the public C API, so that a Python process (bench/gpu_trace.py) can drive decode steps
 * under torch.profiler, whose CUPTI tracing then sees every kernel and copy the CUDA module issues.
 * trace_load(MODEL, THREADS, VRAM_GIB, SPARSE) -> 0 on success; trace_prompt(N) evaluates N tokens; trace_steps(N)
 * runs N greedy decode steps; trace_renew() replaces the session by a fresh one; trace_free(). Errors go to stderr with the library's message. */
#include <stdio.h>
#include <stdint.h>

#include "powerinfer/powerinfer.h"

static pi_model *model;
static pi_session *session;
static pi_session_params session_params;

static int fail(const char *what, pi_status st) {
    fprintf(stderr, "%s: %s (%s)\n", what, pi_last_error(), pi_status_string(st));
    return 1;
}

int trace_load(const char *path, int threads, int vram_gib, int sparse) {
    pi_model_params mp;
    pi_session_params sp;
    pi_status st;
    pi_model_params_init(&mp);
    mp.backend = "cuda";
    mp.vram_budget = (uint64_t)vram_gib << 30;
    if ((st = pi_model_load(path, &mp, &model)) != PI_OK) return fail("load", st);
    pi_session_params_init(&sp);
    sp.n_ctx = 512;
    sp.n_threads = threads;
    sp.temperature = 0.0f;
    sp.repeat_penalty = 1.0f;
    sp.sparse = sparse ? PI_SPARSE_ON : PI_SPARSE_OFF;
    session_params = sp;
    if ((st = pi_session_create(model, &sp, &session)) != PI_OK) return fail("session", st);
    return 0;
}

/* A fresh session with the same settings (as each counted run of powerinfer-bench makes). */
int trace_renew(void) {
    pi_status st;
    pi_session_free(session);
    session = NULL;
    if ((st = pi_session_create(model, &session_params, &session)) != PI_OK) return fail("session", st);
    return 0;
}

int trace_prompt(int n) {
    pi_token tokens[512];
    pi_status st;
    int i;
    if (n > 512) n = 512;
    for (i = 0; i < n; ++i) tokens[i] = 3 + (i * 37) % 1000;
    if ((st = pi_session_eval(session, tokens, (size_t)n)) != PI_OK) return fail("eval", st);
    return 0;
}

int trace_steps(int n) {
    pi_status st;
    int i;
    for (i = 0; i < n; ++i) {
        pi_token t;
        if ((st = pi_session_step(session, &t)) != PI_OK) return fail("step", st);
    }
    return 0;
}

void trace_free(void) {
    pi_session_free(session);
    pi_model_free(model);
    session = NULL;
    model = NULL;
}

/* Runs the engine the way the reference tests need: evaluate a prompt, save the last token's logits, then generate
 * greedily. Uses only the public C API.
 * usage: pi_engine_run MODEL TOKENS(comma-separated) N_GREEDY LOGITS_OUT
 * Environment: PI_TEST_KV=f32 selects the F32 KV cache (default F16); PI_TEST_SPARSE=off|on|auto the session's
 * sparse mode (default auto); PI_TEST_THRESHOLD=<float or -inf> the predictor threshold (default: the model's);
 * PI_TEST_COUNTS=<file> turns activation profiling on and writes, after the run, every layer's per-neuron counts
 * (uint64, layer after layer) to that file; PI_TEST_PROFILE=<file> turns profiling on too, makes TOKENS a
 * ';'-separated list of prompts, each evaluated in a fresh context (pi_session_reset keeps the statistics), and
 * writes the profile with pi_session_save_profile before generating from the last prompt.
 * PI_TEST_BACKEND=<name> sets pi_model_params.backend (e.g. cpu-device, cuda); PI_TEST_VRAM_MIB=<n> the VRAM budget
 * in MiB (default PI_VRAM_BUDGET_AUTO); PI_TEST_PLAN (read by the library) forces a placement (docs/HYBRID.md).
 * prints the greedy tokens, space-separated, on stdout; writes n_vocab float32 logits (little-endian) to LOGITS_OUT. */
#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "powerinfer/powerinfer.h"

static int fail(const char *what, pi_status st) {
    fprintf(stderr, "%s: %s (%s)\n", what, pi_last_error(), pi_status_string(st));
    return 1;
}

/* Evaluates each ';'-separated prompt of `list` in a fresh context. The session's n_ctx must hold the longest. */
static int eval_earlier(pi_session *session, char *list, const pi_session_params *sp) {
    static pi_token tokens[4096];
    char *save_outer = NULL, *seq;
    for (seq = strtok_r(list, ";", &save_outer); seq; seq = strtok_r(NULL, ";", &save_outer)) {
        char *save_inner = NULL, *tok;
        size_t n = 0;
        pi_status st;
        for (tok = strtok_r(seq, ",", &save_inner); tok && n < 4096; tok = strtok_r(NULL, ",", &save_inner)) {
            tokens[n++] = atoi(tok);
        }
        if (n > sp->n_ctx) {
            fprintf(stderr, "a profiling prompt is longer than the last prompt's context\n");
            return 1;
        }
        if ((st = pi_session_eval(session, tokens, n)) != PI_OK) return fail("eval (profile)", st);
        if ((st = pi_session_reset(session)) != PI_OK) return fail("reset", st);
    }
    return 0;
}

static int write_counts(const pi_model *model, const pi_session *session, const char *path) {
    pi_model_info info;
    uint64_t *counts;
    uint32_t layer;
    size_t n = 0;
    pi_status st;
    FILE *out;
    int rc = 0;

    pi_model_info_init(&info);
    if ((st = pi_model_get_info(model, &info)) != PI_OK) return fail("info", st);
    counts = (uint64_t *)malloc(sizeof(uint64_t) * info.n_ff);
    out = fopen(path, "wb");
    if (!counts || !out) {
        fprintf(stderr, "cannot write %s\n", path);
        rc = 1;
    }
    for (layer = 0; rc == 0 && layer < info.n_layer; ++layer) {
        if ((st = pi_session_activation_counts(session, layer, counts, info.n_ff, &n, NULL)) != PI_OK) {
            rc = fail("activation counts", st);
        } else if (fwrite(counts, sizeof(uint64_t), n, out) != n) {
            rc = 1;
        }
    }
    if (out) fclose(out);
    free(counts);
    return rc;
}

int main(int argc, char **argv) {
    pi_model *model = NULL;
    pi_session *session = NULL;
    pi_session_params sp;
    pi_model_params mp;
    pi_token prompt[4096];
    size_t n_prompt = 0, n_vocab = 0;
    const float *logits = NULL;
    pi_status st;
    char *text, *tok, *earlier = NULL;
    int n_greedy, i, rc = 0;
    FILE *out;

    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL TOKENS N_GREEDY LOGITS_OUT\n", argv[0]);
        return 2;
    }
    text = argv[2];
    {  /* the last ';'-separated prompt is the one generated from; earlier ones only feed the profile */
        char *last = strrchr(text, ';');
        if (last) {
            earlier = text;
            *last = '\0';
            text = last + 1;
        }
    }
    for (tok = strtok(text, ","); tok && n_prompt < 4096; tok = strtok(NULL, ",")) prompt[n_prompt++] = atoi(tok);
    n_greedy = atoi(argv[3]);

    pi_model_params_init(&mp);
    if (getenv("PI_TEST_BACKEND")) mp.backend = getenv("PI_TEST_BACKEND");
    if (getenv("PI_TEST_VRAM_MIB")) mp.vram_budget = (uint64_t)strtoull(getenv("PI_TEST_VRAM_MIB"), NULL, 10) << 20;
    if ((st = pi_model_load(argv[1], &mp, &model)) != PI_OK) return fail("load", st);
    pi_session_params_init(&sp);
    sp.temperature = 0.0f;
    sp.repeat_penalty = 1.0f;
    sp.n_ctx = (uint32_t)(n_prompt + (size_t)n_greedy + 1);
    if (getenv("PI_TEST_KV") && strcmp(getenv("PI_TEST_KV"), "f32") == 0) sp.kv_type = PI_KV_F32;
    if (getenv("PI_TEST_SPARSE")) {
        const char *mode = getenv("PI_TEST_SPARSE");
        sp.sparse = strcmp(mode, "off") == 0 ? PI_SPARSE_OFF : strcmp(mode, "on") == 0 ? PI_SPARSE_ON : PI_SPARSE_AUTO;
    }
    if (getenv("PI_TEST_THRESHOLD")) sp.sparse_threshold = (float)strtod(getenv("PI_TEST_THRESHOLD"), NULL);
    if (getenv("PI_TEST_COUNTS") || getenv("PI_TEST_PROFILE")) sp.profile_activations = 1;
    if ((st = pi_session_create(model, &sp, &session)) != PI_OK) {
        rc = fail("session", st);
        goto done;
    }
    if (earlier && eval_earlier(session, earlier, &sp) != 0) {
        rc = 1;
        goto done;
    }
    if (getenv("PI_TEST_PROFILE") && (st = pi_session_save_profile(session, getenv("PI_TEST_PROFILE"))) != PI_OK) {
        rc = fail("save profile", st);
        goto done;
    }
    if ((st = pi_session_eval(session, prompt, n_prompt)) != PI_OK) {
        rc = fail("eval", st);
        goto done;
    }
    if ((st = pi_session_logits(session, &logits, &n_vocab)) != PI_OK) {
        rc = fail("logits", st);
        goto done;
    }
    out = fopen(argv[4], "wb");
    if (!out || fwrite(logits, sizeof(float), n_vocab, out) != n_vocab) {
        fprintf(stderr, "cannot write %s\n", argv[4]);
        rc = 1;
        if (out) fclose(out);
        goto done;
    }
    fclose(out);
    for (i = 0; i < n_greedy; ++i) {
        pi_token t;
        if ((st = pi_session_step(session, &t)) != PI_OK) {
            rc = fail("step", st);
            goto done;
        }
        printf("%s%d", i ? " " : "", (int)t);
    }
    printf("\n");
    if (getenv("PI_TEST_COUNTS") && write_counts(model, session, getenv("PI_TEST_COUNTS")) != 0) rc = 1;
done:
    pi_session_free(session);
    pi_model_free(model);
    return rc;
}

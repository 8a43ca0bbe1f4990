/* Runs the engine the way the reference tests need: evaluate a prompt, save the last token's logits, then generate
 * greedily. Uses only the public C API.
 * usage: pi_engine_run MODEL TOKENS(comma-separated) N_GREEDY LOGITS_OUT
 * PI_TEST_KV=f32 in the environment selects the F32 KV cache (default F16).
 * prints the greedy tokens, space-separated, on stdout; writes n_vocab float32 logits (little-endian) to LOGITS_OUT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "powerinfer/powerinfer.h"

static int fail(const char *what, pi_status st) {
    fprintf(stderr, "%s: %s (%s)\n", what, pi_last_error(), pi_status_string(st));
    return 1;
}

int main(int argc, char **argv) {
    pi_model *model = NULL;
    pi_session *session = NULL;
    pi_session_params sp;
    pi_token prompt[4096];
    size_t n_prompt = 0, n_vocab = 0;
    const float *logits = NULL;
    pi_status st;
    char *text, *tok;
    int n_greedy, i, rc = 0;
    FILE *out;

    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL TOKENS N_GREEDY LOGITS_OUT\n", argv[0]);
        return 2;
    }
    text = argv[2];
    for (tok = strtok(text, ","); tok && n_prompt < 4096; tok = strtok(NULL, ",")) prompt[n_prompt++] = atoi(tok);
    n_greedy = atoi(argv[3]);

    if ((st = pi_model_load(argv[1], NULL, &model)) != PI_OK) return fail("load", st);
    pi_session_params_init(&sp);
    sp.temperature = 0.0f;
    sp.repeat_penalty = 1.0f;
    sp.n_ctx = (uint32_t)(n_prompt + (size_t)n_greedy + 1);
    if (getenv("PI_TEST_KV") && strcmp(getenv("PI_TEST_KV"), "f32") == 0) sp.kv_type = PI_KV_F32;
    if ((st = pi_session_create(model, &sp, &session)) != PI_OK) {
        rc = fail("session", st);
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
done:
    pi_session_free(session);
    pi_model_free(model);
    return rc;
}

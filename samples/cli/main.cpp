// powerinfer-cli: load a model, stream a generation, report speed.
#include <chrono>
#include <cstdio>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "cli_args.h"
#include "plan_table.h"
#include "powerinfer/powerinfer.h"

namespace {

using Clock = std::chrono::steady_clock;

int fail_with(const char *what, pi_status status) {
    std::fprintf(stderr, "\nerror: %s: %s (%s)\n", what, pi_last_error(), pi_status_string(status));
    return 1;
}

bool file_exists(const std::string &path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0;
}

// The model to run when -m is not given: the one the build wrote, else the installed copy.
std::string default_model_path() {
    if (file_exists(PI_DEFAULT_MODEL_BUILD_PATH)) return PI_DEFAULT_MODEL_BUILD_PATH;
    return PI_DEFAULT_MODEL_INSTALL_PATH;
}

// Load progress as a bar on stderr (the generated text owns stdout).
int progress_bar(float fraction, void *user_data) {
    int &last = *static_cast<int *>(user_data);
    const int width = 40, filled = static_cast<int>(fraction * width + 0.5f);
    if (filled == last) return 0;
    last = filled;
    std::fprintf(stderr, "\rloading [%.*s%*s] %3d%%", filled, "========================================",
                 width - filled, "", static_cast<int>(fraction * 100 + 0.5f));
    if (fraction >= 1.0f) std::fprintf(stderr, "\n");
    std::fflush(stderr);
    return 0;
}

void print_info(const pi_model *model, const std::string &path) {
    pi_model_info info;
    pi_model_info_init(&info);
    if (pi_model_get_info(model, &info) != PI_OK) return;
    std::fprintf(stderr,
                 "model: %s (%s%s%s)\n  arch %s, %u layers, n_embd %u, n_ff %u, heads %u/%u, vocab %u, ctx %u\n"
                 "  %.1f M parameters, %.1f MiB, FFN %s, %s\n",
                 path.c_str(), info.name, info.name[0] ? ", " : "", info.arch, info.arch, info.n_layer, info.n_embd,
                 info.n_ff, info.n_head, info.n_head_kv, info.n_vocab, info.n_ctx_train, info.n_params / 1e6,
                 info.file_bytes / 1048576.0, info.ffn_activation,
                 info.is_sparse ? "sparse (activation predictors)" : "dense");
}

// The measured sparsity: per layer, the mean fraction of FFN neurons the predictors selected.
void print_sparsity(const pi_session *session) {
    size_t n_layer = 0;
    uint64_t n_tokens = 0;
    std::vector<float> fraction;
    pi_status st = pi_session_sparsity(session, nullptr, 0, &n_layer, &n_tokens);
    if (st == PI_ERR_BUFFER_TOO_SMALL) {
        fraction.resize(n_layer);
        st = pi_session_sparsity(session, fraction.data(), fraction.size(), &n_layer, &n_tokens);
    }
    if (st != PI_OK) {
        std::fprintf(stderr, "sparsity: not available (%s)\n", pi_last_error());
        return;
    }
    std::vector<float> read(n_layer), predictor(n_layer);
    if (pi_session_ffn_rows_read(session, read.data(), read.size(), &n_layer) != PI_OK ||
        pi_session_predictor_read(session, predictor.data(), predictor.size(), &n_layer) != PI_OK) {
        std::fprintf(stderr, "rows read: not available (%s)\n", pi_last_error());
        return;
    }
    double mean = 0.0, mean_read = 0.0, mean_predictor = 0.0;
    std::fprintf(stderr,
                 "sparsity over %llu tokens: per layer, FFN neurons predicted active, FFN rows read and predictor "
                 "bytes read (the CPU's sparse steps)\n",
                 (unsigned long long)n_tokens);
    for (size_t l = 0; l < n_layer; ++l) {
        std::fprintf(stderr, "  layer %3zu  %6.2f%%  %6.2f%%  %6.2f%%\n", l, 100.0 * fraction[l], 100.0 * read[l],
                     100.0 * predictor[l]);
        mean += fraction[l];
        mean_read += read[l];
        mean_predictor += predictor[l];
    }
    const double layers = n_layer ? double(n_layer) : 1.0;
    std::fprintf(stderr, "  mean       %6.2f%%  %6.2f%%  %6.2f%%\n", 100.0 * mean / layers, 100.0 * mean_read / layers,
                 100.0 * mean_predictor / layers);
}

}  // namespace

int main(int argc, char **argv) {
    CliArgs args;
    std::string error;
    if (!parse_cli_args(argc, argv, args, error)) {
        std::fprintf(stderr, "error: %s\n", error.c_str());
        return 2;
    }
    if (args.show_help) {
        print_cli_usage(argv[0]);
        return 0;
    }
    if (args.model.empty()) args.model = default_model_path();
    if (args.plan) return run_plan(args.model, args.model_params);  // plans from the file alone: nothing loaded

    int last_fill = -1;
    args.model_params.progress = progress_bar;
    args.model_params.progress_user_data = &last_fill;
    pi_model *model = nullptr;
    pi_status st = pi_model_load(args.model.c_str(), &args.model_params, &model);
    if (st != PI_OK) return fail_with("cannot load the model", st);
    print_info(model, args.model);
    if (args.info_only) {
        pi_model_free(model);
        return 0;
    }

    int rc = 0;
    pi_session *session = nullptr;
    pi_detokenizer *detok = nullptr;
    std::vector<pi_token> prompt(args.prompt.size() + 2);
    size_t n_prompt = 0;
    do {
        if ((st = pi_session_create(model, &args.session_params, &session)) != PI_OK) {
            rc = fail_with("cannot create a session", st);
            break;
        }
        if ((st = pi_tokenize(model, args.prompt.data(), args.prompt.size(), 1, prompt.data(), prompt.size(),
                              &n_prompt)) != PI_OK) {
            rc = fail_with("cannot tokenize the prompt", st);
            break;
        }
        if ((st = pi_detokenizer_create(model, &detok)) != PI_OK) {
            rc = fail_with("cannot create a detokenizer", st);
            break;
        }
        std::printf("%s", args.prompt.c_str());
        std::fflush(stdout);

        const auto t0 = Clock::now();
        if ((st = pi_session_eval(session, prompt.data(), n_prompt)) != PI_OK) {
            rc = fail_with("cannot evaluate the prompt", st);
            break;
        }
        const auto t1 = Clock::now();
        int32_t generated = 0;
        char text[256];
        for (; generated < args.n_predict; ++generated) {
            pi_token token = 0;
            st = pi_session_step(session, &token);
            if (st == PI_ERR_CONTEXT_FULL) {
                std::fprintf(stderr, "\n[context full after %zu tokens]\n", pi_session_n_past(session));
                break;
            }
            if (st != PI_OK) {
                rc = fail_with("generation failed", st);
                break;
            }
            if (token == pi_token_eos(model)) break;
            size_t n_text = 0;
            if (pi_detokenizer_push(detok, token, text, sizeof text, &n_text) == PI_OK && n_text) {
                std::fwrite(text, 1, n_text, stdout);
                std::fflush(stdout);
            }
        }
        const auto t2 = Clock::now();
        const double prompt_s = std::chrono::duration<double>(t1 - t0).count();
        const double gen_s = std::chrono::duration<double>(t2 - t1).count();
        std::printf("\n");
        std::fflush(stdout);  // the statistics go to stderr: keep them after the text
        std::fprintf(stderr, "prompt: %zu tokens in %.3f s (%.2f tokens/s)\ngeneration: %d tokens in %.3f s (%.2f tokens/s)\n",
                     n_prompt, prompt_s, prompt_s > 0 ? n_prompt / prompt_s : 0.0, generated, gen_s,
                     gen_s > 0 ? generated / gen_s : 0.0);
        if (args.stats) print_sparsity(session);
        if (!args.profile_out.empty()) {
            if ((st = pi_session_save_profile(session, args.profile_out.c_str())) != PI_OK) {
                rc = fail_with("cannot save the activation profile", st);
                break;
            }
            std::fprintf(stderr, "activation profile written to %s\n", args.profile_out.c_str());
        }
    } while (false);

    pi_detokenizer_free(detok);
    pi_session_free(session);
    pi_model_free(model);
    return rc;
}

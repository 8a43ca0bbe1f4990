// powerinfer-bench: prefill and decode speed of a model, the machine's memory bandwidth, and how close decode
// comes to the bandwidth roofline (weight bytes per token / bandwidth).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "powerinfer/powerinfer.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
    std::string model = PI_DEFAULT_MODEL_BUILD_PATH;
    int n_prompt = 32;
    int n_gen = 64;
    int repeats = 5;
    int n_threads = 0;
    int n_ctx = 512;
    bool json = false;
    bool measure_bandwidth = true;
};

void usage(const char *argv0) {
    std::printf(
        "usage: %s [-m MODEL] [-p N_PROMPT] [-n N_GEN] [-r REPEATS] [-t THREADS] [-c CTX] [--json] [--no-bandwidth]\n"
        "  prefill of N_PROMPT tokens (default 32) and decode of N_GEN tokens (default 64), REPEATS times (default 5);\n"
        "  prints median tokens/s with min and max, the memory read bandwidth measured in this process, the weight\n"
        "  bytes a decode step reads, and the fraction of the bandwidth roofline reached.\n",
        argv0);
}

bool parse(int argc, char **argv, Options &o) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&](int &out) {
            if (i + 1 >= argc) return false;
            char *end = nullptr;
            const long v = std::strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < 0 || v > 1 << 20) return false;
            out = static_cast<int>(v);
            return true;
        };
        if (a == "-m" && i + 1 < argc) o.model = argv[++i];
        else if (a == "-p") { if (!next(o.n_prompt)) return false; }
        else if (a == "-n") { if (!next(o.n_gen)) return false; }
        else if (a == "-r") { if (!next(o.repeats) || o.repeats < 1) return false; }
        else if (a == "-t") { if (!next(o.n_threads)) return false; }
        else if (a == "-c") { if (!next(o.n_ctx)) return false; }
        else if (a == "--json") o.json = true;
        else if (a == "--no-bandwidth") o.measure_bandwidth = false;
        else return false;
    }
    return o.n_prompt > 0 && o.n_ctx >= o.n_prompt + o.n_gen;
}

struct Stats {
    double median, min, max;
};

Stats stats(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    const double median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    return {median, v.front(), v.back()};
}

int die(const char *what, pi_status st) {
    std::fprintf(stderr, "error: %s: %s (%s)\n", what, pi_last_error(), pi_status_string(st));
    return 1;
}

}  // namespace

int main(int argc, char **argv) {
    Options o;
    if (!parse(argc, argv, o)) {
        usage(argv[0]);
        return 2;
    }
    pi_model_params mp;
    pi_model_params_init(&mp);
    mp.n_threads = o.n_threads;
    mp.backend = "cpu";
    pi_model *model = nullptr;
    pi_status st = pi_model_load(o.model.c_str(), &mp, &model);
    if (st != PI_OK) return die("load", st);
    pi_model_info info;
    pi_model_info_init(&info);
    pi_model_get_info(model, &info);

    // Random prompt tokens past the special ones: the weights, not the text, decide the speed.
    std::mt19937 rng(7);
    std::vector<pi_token> prompt(static_cast<size_t>(o.n_prompt));
    for (pi_token &t : prompt) t = static_cast<pi_token>(3 + rng() % (info.n_vocab - 3));

    pi_session_params sp;
    pi_session_params_init(&sp);
    sp.n_ctx = static_cast<uint32_t>(o.n_ctx);
    sp.n_threads = o.n_threads;
    sp.temperature = 0.0f;
    sp.repeat_penalty = 1.0f;
    std::vector<double> prefill, decode;
    for (int r = 0; r <= o.repeats; ++r) {  // run 0 warms caches and page tables and is not counted
        pi_session *s = nullptr;
        if ((st = pi_session_create(model, &sp, &s)) != PI_OK) return die("session", st);
        const auto t0 = Clock::now();
        if ((st = pi_session_eval(s, prompt.data(), prompt.size())) != PI_OK) return die("prefill", st);
        const auto t1 = Clock::now();
        for (int i = 0; i < o.n_gen; ++i) {
            pi_token t;
            if ((st = pi_session_step(s, &t)) != PI_OK) return die("decode", st);
        }
        const auto t2 = Clock::now();
        pi_session_free(s);
        if (r == 0) continue;
        prefill.push_back(o.n_prompt / std::chrono::duration<double>(t1 - t0).count());
        if (o.n_gen) decode.push_back(o.n_gen / std::chrono::duration<double>(t2 - t1).count());
    }
    double bandwidth = 0.0;
    if (o.measure_bandwidth && (st = pi_measure_memory_bandwidth(o.n_threads, &bandwidth)) != PI_OK) {
        return die("bandwidth", st);
    }
    const Stats p = stats(prefill);
    const Stats d = decode.empty() ? Stats{0, 0, 0} : stats(decode);
    const double roofline = bandwidth > 0 ? bandwidth * 1e9 / double(info.decode_weight_bytes) : 0.0;
    const double fraction = roofline > 0 ? d.median / roofline : 0.0;

    if (o.json) {
        std::printf("{\"model\": \"%s\", \"arch\": \"%s\", \"n_params\": %llu, \"threads\": %d, \"n_prompt\": %d, "
                    "\"n_gen\": %d, \"repeats\": %d, \"prefill_tps\": {\"median\": %.3f, \"min\": %.3f, \"max\": %.3f}, "
                    "\"decode_tps\": {\"median\": %.3f, \"min\": %.3f, \"max\": %.3f}, \"bandwidth_gbps\": %.2f, "
                    "\"decode_weight_bytes\": %llu, \"roofline_tps\": %.3f, \"roofline_fraction\": %.3f}\n",
                    o.model.c_str(), info.arch, static_cast<unsigned long long>(info.n_params), o.n_threads,
                    o.n_prompt, o.n_gen, o.repeats, p.median, p.min, p.max, d.median, d.min, d.max, bandwidth,
                    static_cast<unsigned long long>(info.decode_weight_bytes), roofline, fraction);
    } else {
        std::printf("model      %s (%s, %.2f B params, %s)\n", o.model.c_str(), info.arch, info.n_params / 1e9,
                    info.is_sparse ? "sparse file, dense path" : "dense");
        std::printf("threads    %d (0 = one per core), %d repeats + 1 warm-up\n", o.n_threads, o.repeats);
        std::printf("prefill    %4d tokens  %9.2f tok/s  (min %.2f, max %.2f)\n", o.n_prompt, p.median, p.min, p.max);
        std::printf("decode     %4d tokens  %9.2f tok/s  (min %.2f, max %.2f)\n", o.n_gen, d.median, d.min, d.max);
        if (bandwidth > 0) {
            std::printf("bandwidth  %.2f GB/s read; decode reads %.3f GB of weights per token\n", bandwidth,
                        info.decode_weight_bytes / 1e9);
            std::printf("roofline   %.2f tok/s; decode reaches %.1f%% of it\n", roofline, 100.0 * fraction);
        }
    }
    pi_model_free(model);
    return 0;
}

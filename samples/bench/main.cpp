// powerinfer-bench: prefill and decode speed of a model, the machine's memory bandwidth, and how close decode
// comes to the bandwidth roofline (bytes a decode step reads / bandwidth). For a model with activation predictors it
// measures the dense and the sparse path in the same run (--mode), so their ratio is free of machine drift.
//
// Bytes per decode token (the roofline's numerator): every non-FFN matrix (one row of the token embedding), the KV
// cache the step attends over (mean over the run's positions, at the session's kv_type), and the FFN: on the dense
// path all of it, except that for a model with predictors the rows the CPU executor read are counted (every gate and
// up row; where ffn_down is stored transposed, the down rows of nonzero activations only: ReLU zeroes the rest, and
// the product skips them); on the sparse path the predictors plus the FFN rows the step actually read, as the library
// counts them (pi_session_ffn_rows_read: gate rows of the predicted-active neurons, up and down rows only of those the
// activation left non-zero), and the predictor bytes it read (pi_session_predictor_read: all of fc1, and of a
// transposed fc2 only the rows of nonzero hidden units). Where the library counts neither (the hybrid and GPU
// executors), the FFN is counted as the predicted-active fraction of all three matrices, which overstates what ReGLU
// reads, and the predictors whole.
//
// Bandwidth: probed in this process before every counted run and after the last, and each run's decode is held
// against the mean of the two probes around it (its roofline fraction); the reported fraction is the median of the
// runs'. The development VM's bandwidth moves by tens of percent within seconds (other tenants), so one probe for a
// whole set of runs compares a run with a bandwidth it never had. --json: bandwidth_gbps is the median probe,
// bandwidth_probes_gbps every probe in order, roofline_fraction the median of the per-run fractions (null, as
// roofline_tps, when weights are on a device: the host's bandwidth bounds only the host's share of such a step).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
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
    std::string mode = "both";
    bool use_mmap = true;
    std::string backend = "cpu";
    double vram_gib = -1.0;  // < 0: the library's default (all free device memory)
    std::string profile;     // activation profile for the planner (pi_model_params.profile_path), or empty
};

void usage(const char *argv0) {
    std::printf(
        "usage: %s [-m MODEL] [-p N_PROMPT] [-n N_GEN] [-r REPEATS] [-t THREADS] [-c CTX] [--mode dense|sparse|both]\n"
        "          [--json] [--no-bandwidth] [--no-mmap] [--backend cpu|cuda|auto] [--vram-budget GIB] [--profile FILE]\n"
        "  prefill of N_PROMPT tokens (default 32) and decode of N_GEN tokens (default 64), REPEATS times (default 5);\n"
        "  prints median tokens/s with min and max, the memory read bandwidth measured in this process (before each\n"
        "  run and after the last), the bytes a decode step reads (weights, KV cache; on the sparse path the FFN rows\n"
        "  the step actually read), and the fraction of the bandwidth roofline reached (median over the runs, each\n"
        "  against the probes around it; CPU-only runs: with weights on a device none is computed). --mode both\n"
        "  (default) runs the dense and, for models with predictors, the sparse path. --backend cuda runs the hybrid\n"
        "  executor with the placement planned for --vram-budget GiB (default: all free device memory) and n_ctx =\n"
        "  CTX; --profile FILE gives the planner measured activation frequencies (powerinfer-cli --profile-out), as a\n"
        "  deployment would.\n",
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
        else if (a == "--mode" && i + 1 < argc) o.mode = argv[++i];
        else if (a == "--json") o.json = true;
        else if (a == "--no-mmap") o.use_mmap = false;
        else if (a == "--backend" && i + 1 < argc) o.backend = argv[++i];
        else if (a == "--vram-budget" && i + 1 < argc) {
            char *end = nullptr;
            o.vram_gib = std::strtod(argv[++i], &end);
            if (*end != '\0' || !(o.vram_gib >= 0)) return false;
        }
        else if (a == "--profile" && i + 1 < argc) o.profile = argv[++i];
        else if (a == "--no-bandwidth") o.measure_bandwidth = false;
        else return false;
    }
    return o.n_prompt > 0 && o.n_ctx >= o.n_prompt + o.n_gen &&
           (o.mode == "dense" || o.mode == "sparse" || o.mode == "both");
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

double mean_of(const std::vector<float> &v) {
    double sum = 0.0;
    for (float f : v) sum += f;
    return v.empty() ? 0.0 : sum / double(v.size());
}

int die(const char *what, pi_status st) {
    std::fprintf(stderr, "error: %s: %s (%s)\n", what, pi_last_error(), pi_status_string(st));
    return 1;
}

struct Run {
    const char *path;
    Stats prefill, decode;
    std::vector<float> active;  // per layer, sparse runs only
    std::vector<float> rows_read;  // per layer, sparse runs only: fraction of the FFN rows read (0: not counted)
    std::vector<float> predictor_read;  // per layer, sparse runs only: fraction of the predictor bytes read (0: not counted)
    double kv_bytes_per_token = 0;
    double bytes_per_token = 0;
    std::vector<double> decode_runs;  // tok/s of each counted run, in order
    std::vector<double> probes;       // bandwidth before each counted run and after the last (GB/s; 0: not probed)

    // Each run's decode against the mean of the probes around it; the median of those (0 without probes).
    double roofline_fraction() const {
        std::vector<double> f;
        for (size_t i = 0; i < decode_runs.size() && i + 1 < probes.size(); ++i) {
            const double bw = 0.5 * (probes[i] + probes[i + 1]);
            if (bw > 0) f.push_back(decode_runs[i] * bytes_per_token / (bw * 1e9));
        }
        return f.empty() ? 0.0 : stats(f).median;
    }
};

// prefill + decode, repeats + 1 times (the first warms caches and page tables and is not counted).
// probe(): the bandwidth now (GB/s), or 0 with --no-bandwidth; called before each counted run and after the last.
bool measure(pi_model *model, const Options &o, const pi_model_info &info, const std::vector<pi_token> &prompt,
             bool sparse, Run &run, const std::function<double()> &probe) {
    pi_session_params sp;
    pi_session_params_init(&sp);
    sp.n_ctx = static_cast<uint32_t>(o.n_ctx);
    sp.n_threads = o.n_threads;
    sp.temperature = 0.0f;
    sp.repeat_penalty = 1.0f;
    sp.sparse = sparse ? PI_SPARSE_ON : PI_SPARSE_OFF;
    std::vector<double> prefill, decode;
    pi_status st;
    for (int r = 0; r <= o.repeats; ++r) {
        if (r > 0) run.probes.push_back(probe());
        pi_session *s = nullptr;
        if ((st = pi_session_create(model, &sp, &s)) != PI_OK) return die("session", st) == 0;
        const auto t0 = Clock::now();
        if ((st = pi_session_eval(s, prompt.data(), prompt.size())) != PI_OK) return die("prefill", st) == 0;
        const auto t1 = Clock::now();
        for (int i = 0; i < o.n_gen; ++i) {
            pi_token t;
            if ((st = pi_session_step(s, &t)) != PI_OK) return die("decode", st) == 0;
        }
        const auto t2 = Clock::now();
        if (info.is_sparse && r == o.repeats) {
            size_t n_layer = 0;
            // Decode steps only (prompts add nothing): the dense path's too, which reads only the down rows of
            // nonzero activations where ffn_down is stored transposed.
            run.rows_read.resize(info.n_layer);
            if ((st = pi_session_ffn_rows_read(s, run.rows_read.data(), run.rows_read.size(), &n_layer)) != PI_OK) {
                return die("ffn rows read", st) == 0;
            }
        }
        if (sparse && r == o.repeats) {
            run.active.resize(info.n_layer);
            run.predictor_read.resize(info.n_layer);
            size_t n_layer = 0;
            if ((st = pi_session_sparsity(s, run.active.data(), run.active.size(), &n_layer, nullptr)) != PI_OK) {
                return die("sparsity", st) == 0;
            }
            if ((st = pi_session_predictor_read(s, run.predictor_read.data(), run.predictor_read.size(), &n_layer)) !=
                PI_OK) {
                return die("predictor read", st) == 0;
            }
        }
        pi_session_free(s);
        if (r == 0) continue;
        prefill.push_back(o.n_prompt / std::chrono::duration<double>(t1 - t0).count());
        if (o.n_gen) decode.push_back(o.n_gen / std::chrono::duration<double>(t2 - t1).count());
    }
    run.probes.push_back(probe());
    run.decode_runs = decode;
    run.path = sparse ? "sparse" : "dense";
    run.prefill = stats(prefill);
    run.decode = decode.empty() ? Stats{0, 0, 0} : stats(decode);
    // K and V of every layer over the positions a step attends to: n_prompt + 1 for the first decode step, up to
    // n_prompt + n_gen for the last (F16 cache: 2 bytes a value; kv_type is the default).
    const double head_dim = double(info.n_embd) / double(info.n_head);
    const double mean_positions = o.n_prompt + (o.n_gen + 1) / 2.0;
    run.kv_bytes_per_token = double(info.n_layer) * 2.0 * info.n_head_kv * head_dim * 2.0 * mean_positions;
    run.bytes_per_token = double(info.decode_weight_bytes) + run.kv_bytes_per_token;
    // Per layer, a fraction of a model-wide byte count split evenly over the layers (bench-7b's layers are alike).
    const auto counted_bytes = [&](const std::vector<float> &fraction, double total) {
        double sum = 0.0;
        for (float f : fraction) sum += f * total / double(info.n_layer);
        return sum;
    };
    const auto any = [](const std::vector<float> &v) {
        return std::any_of(v.begin(), v.end(), [](float f) { return f > 0.0f; });
    };
    if (!sparse && any(run.rows_read)) {
        run.bytes_per_token += counted_bytes(run.rows_read, double(info.ffn_weight_bytes)) - double(info.ffn_weight_bytes);
    }
    if (sparse) {
        const double ffn = counted_bytes(any(run.rows_read) ? run.rows_read : run.active, double(info.ffn_weight_bytes));
        const double predictor = any(run.predictor_read)
                                     ? counted_bytes(run.predictor_read, double(info.predictor_weight_bytes))
                                     : double(info.predictor_weight_bytes);
        run.bytes_per_token += predictor - double(info.ffn_weight_bytes) + ffn;
    }
    return true;
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
    mp.backend = o.backend.c_str();
    mp.use_mmap = o.use_mmap ? 1 : 0;
    if (o.vram_gib >= 0) mp.vram_budget = static_cast<uint64_t>(o.vram_gib * 1073741824.0);
    mp.plan_n_ctx = static_cast<uint32_t>(o.n_ctx);  // reserve the KV cache the benchmark uses, not 2048
    if (!o.profile.empty()) mp.profile_path = o.profile.c_str();
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

    std::vector<Run> runs;
    const bool want_sparse = o.mode == "sparse" || (o.mode == "both" && info.is_sparse);
    if (o.mode == "sparse" && !info.is_sparse) {
        std::fprintf(stderr, "error: --mode sparse needs a model with activation predictors\n");
        return 2;
    }
    pi_status probe_status = PI_OK;
    const auto probe = [&]() {
        double gbps = 0.0;
        if (o.measure_bandwidth && probe_status == PI_OK) probe_status = pi_measure_memory_bandwidth(o.n_threads, &gbps);
        return gbps;
    };
    std::vector<double> all_probes;
    for (bool sparse : {false, true}) {
        if (sparse ? !want_sparse : o.mode == "sparse") continue;
        Run run;
        if (!measure(model, o, info, prompt, sparse, run, probe)) return 1;
        if (probe_status != PI_OK) return die("bandwidth", probe_status);
        all_probes.insert(all_probes.end(), run.probes.begin(), run.probes.end());
        runs.push_back(run);
    }
    const double bandwidth = o.measure_bandwidth && !all_probes.empty() ? stats(all_probes).median : 0.0;
    // With weights on a device the step reads them there, in parallel with the host's share: bytes over the host's
    // bandwidth is no bound on such a step (a hybrid run once "reached" 945 % of it), so none is printed.
    const bool on_device = info.gpu_bytes > 0;

    if (o.json) {
        std::printf("{\"model\": \"%s\", \"arch\": \"%s\", \"n_params\": %llu, \"threads\": %d, \"n_prompt\": %d, "
                    "\"n_gen\": %d, \"repeats\": %d, \"bandwidth_gbps\": %.2f, \"bandwidth_probes_gbps\": [",
                    o.model.c_str(), info.arch, static_cast<unsigned long long>(info.n_params), o.n_threads,
                    o.n_prompt, o.n_gen, o.repeats, bandwidth);
        for (size_t i = 0; i < all_probes.size() && bandwidth > 0; ++i) std::printf("%s%.2f", i ? ", " : "", all_probes[i]);
        std::printf("], \"backend\": \"%s\", \"gpu_bytes\": %llu, \"runs\": [", o.backend.c_str(),
                    static_cast<unsigned long long>(info.gpu_bytes));
        for (size_t i = 0; i < runs.size(); ++i) {
            const Run &r = runs[i];
            const double roofline = bandwidth > 0 ? bandwidth * 1e9 / r.bytes_per_token : 0.0;
            std::printf(
                "%s{\"path\": \"%s\", \"prefill_tps\": {\"median\": %.3f, \"min\": %.3f, \"max\": %.3f}, "
                "\"decode_tps\": {\"median\": %.3f, \"min\": %.3f, \"max\": %.3f}, "
                "\"bytes_per_token\": %.0f, \"kv_bytes_per_token\": %.0f, \"mean_active_fraction\": %.4f, "
                "\"mean_ffn_rows_read\": %.4f, \"mean_predictor_read\": %.4f, ",
                i ? ", " : "", r.path, r.prefill.median, r.prefill.min, r.prefill.max, r.decode.median, r.decode.min,
                r.decode.max, r.bytes_per_token, r.kv_bytes_per_token, r.active.empty() ? 1.0 : mean_of(r.active),
                r.rows_read.empty() ? 1.0 : mean_of(r.rows_read),
                r.predictor_read.empty() ? 1.0 : mean_of(r.predictor_read));
            if (on_device)
                std::printf("\"roofline_tps\": null, \"roofline_fraction\": null}");
            else
                std::printf("\"roofline_tps\": %.3f, \"roofline_fraction\": %.3f}", roofline, r.roofline_fraction());
        }
        std::printf("]}\n");
    } else {
        std::printf("model      %s (%s, %.2f B params, %s)\n", o.model.c_str(), info.arch, info.n_params / 1e9,
                    info.is_sparse ? "activation predictors" : "dense");
        std::printf("threads    %d (0 = one per core), %d repeats + 1 warm-up\n", o.n_threads, o.repeats);
        std::printf("backend    %s, %.2f GiB of weights on the device\n", o.backend.c_str(), info.gpu_bytes / 1073741824.0);
        if (bandwidth > 0) {
            std::printf("bandwidth  %.2f GB/s read (median of %zu probes, from %.2f to %.2f; one before each run and "
                        "one after the last)\n",
                        bandwidth, all_probes.size(), *std::min_element(all_probes.begin(), all_probes.end()),
                        *std::max_element(all_probes.begin(), all_probes.end()));
        }
        for (const Run &r : runs) {
            std::printf("%-6s  prefill %4d tokens %9.2f tok/s (min %.2f, max %.2f)\n", r.path, o.n_prompt,
                        r.prefill.median, r.prefill.min, r.prefill.max);
            std::printf("%-6s  decode  %4d tokens %9.2f tok/s (min %.2f, max %.2f)\n", r.path, o.n_gen,
                        r.decode.median, r.decode.min, r.decode.max);
            if (!r.active.empty()) {
                std::printf("%-6s  active FFN neurons %.2f%%, FFN rows read %.2f%%, predictor bytes read %.2f%% (means "
                            "over layers)\n",
                            r.path, 100.0 * mean_of(r.active), 100.0 * mean_of(r.rows_read),
                            100.0 * mean_of(r.predictor_read));
            }
            if (bandwidth > 0 && on_device) {
                std::printf(
                    "%-6s  reads %.3f GB/token (%.3f of them KV cache); no roofline: the host's bandwidth "
                    "bounds only the host's share of it (PI_HYBRID_PROFILE=1 shows each side's time)\n",
                    r.path, r.bytes_per_token / 1e9, r.kv_bytes_per_token / 1e9);
            } else if (bandwidth > 0) {
                const double roofline = bandwidth * 1e9 / r.bytes_per_token;
                std::printf("%-6s  reads %.3f GB/token (%.3f of them KV cache); roofline %.2f tok/s at the median "
                            "probe; decode reaches %.1f%% (median over the runs, each against the probes around it)\n",
                            r.path, r.bytes_per_token / 1e9, r.kv_bytes_per_token / 1e9, roofline,
                            100.0 * r.roofline_fraction());
            }
        }
        if (runs.size() == 2 && runs[0].decode.median > 0) {
            std::printf("sparse/dense decode speed-up %.2fx\n", runs[1].decode.median / runs[0].decode.median);
        }
    }
    pi_model_free(model);
    return 0;
}

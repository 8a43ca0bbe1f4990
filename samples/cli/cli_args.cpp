#include "cli_args.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace {

bool parse_int(const char *text, long long lo, long long hi, long long &out) {
    char *end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < lo || v > hi) return false;
    out = v;
    return true;
}

bool parse_float(const char *text, double &out) {
    char *end = nullptr;
    errno = 0;
    const double v = std::strtod(text, &end);
    if (errno || end == text || *end != '\0') return false;
    out = v;
    return true;
}

}  // namespace

void print_cli_usage(const char *program) {
    std::printf(
        "usage: %s [options]\n"
        "  -m, --model FILE        GGUF model (default: the built-in default model)\n"
        "  -p, --prompt TEXT       prompt (default: \"Once upon a time\")\n"
        "  -n, --n-predict N       tokens to generate (default 64)\n"
        "  -t, --threads N         CPU threads (default: one per core)\n"
        "  -c, --ctx-size N        context length (default: the model's, at most 2048)\n"
        "      --temp X            temperature, 0 = greedy (default 0.8)\n"
        "      --top-k N           (default 40, 0 = off)\n"
        "      --top-p X           (default 0.95, 1 = off)\n"
        "      --min-p X           (default 0.05, 0 = off)\n"
        "      --repeat-penalty X  (default 1.1, 1 = off)\n"
        "      --repeat-last-n N   (default 64)\n"
        "      --seed N            sampler seed (default 0)\n"
        "      --backend NAME      auto | cpu | cuda | hip (default auto)\n"
        "      --vram-budget GIB   GPU memory budget in GiB (default: all free memory; 0 = CPU only)\n"
        "      --no-mmap           read the file instead of mapping it\n"
        "      --sparse MODE       auto | on | off: compute only predicted-active FFN neurons (default auto: when\n"
        "                          the model has predictors)\n"
        "      --threshold X       predictor threshold (default: the model's; -inf = every neuron, dense result)\n"
        "      --stats             after generating, print the measured sparsity (active neurons per layer)\n"
        "      --profile-out FILE  count activations and save the profile (GGUF blk.N.ffn_act_freq) to FILE\n"
        "      --info              print the model's facts and exit\n"
        "      --plan              print the placement plan for --vram-budget and exit (no weights are loaded)\n"
        "      --plan-ctx N        tokens of KV cache reserved on the GPU per session (default 2048)\n"
        "      --plan-sessions N   sessions the GPU's KV reservation is for (default 1)\n"
        "      --profile FILE      activation profile for the planner (GGUF blk.N.ffn_act_freq, see --profile-out)\n"
        "      --neuron-group N    FFN neurons per GPU tile (default 32)\n"
        "      --gpu-bw GBPS       cost model: GPU memory bandwidth (default: built in)\n"
        "      --cpu-bw GBPS       cost model: CPU memory bandwidth (default: measured, cached per host)\n"
        "      --sync-us X         cost model: GPU/CPU synchronization of a split layer, microseconds\n"
        "      --launch-us X       cost model: one GPU kernel launch, microseconds\n"
        "      --transfer-us X     cost model: fixed cost of one host<->device copy, microseconds\n"
        "      --transfer-gbps X   cost model: host<->device copy bandwidth, GB/s\n"
        "  -h, --help              this text\n",
        program);
}

bool parse_cli_args(int argc, char **argv, CliArgs &args, std::string &error) {
    pi_model_params_init(&args.model_params);
    pi_session_params_init(&args.session_params);
    for (int i = 1; i < argc; ++i) {
        const std::string opt = argv[i];
        auto value = [&](const char *&out) {
            if (i + 1 >= argc) {
                error = "option " + opt + " needs a value";
                return false;
            }
            out = argv[++i];
            return true;
        };
        auto int_value = [&](long long lo, long long hi, long long &out) {
            const char *text = nullptr;
            if (!value(text)) return false;
            if (!parse_int(text, lo, hi, out)) {
                error = "option " + opt + ": '" + text + "' is not an integer in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "]";
                return false;
            }
            return true;
        };
        auto float_value = [&](double &out) {
            const char *text = nullptr;
            if (!value(text)) return false;
            if (!parse_float(text, out)) {
                error = "option " + opt + ": '" + text + "' is not a number";
                return false;
            }
            return true;
        };
        const char *text = nullptr;
        long long n = 0;
        double x = 0;
        if (opt == "-h" || opt == "--help") {
            args.show_help = true;
        } else if (opt == "-m" || opt == "--model") {
            if (!value(text)) return false;
            args.model = text;
        } else if (opt == "-p" || opt == "--prompt") {
            if (!value(text)) return false;
            args.prompt = text;
        } else if (opt == "-n" || opt == "--n-predict") {
            if (!int_value(0, 1 << 20, n)) return false;
            args.n_predict = static_cast<int32_t>(n);
        } else if (opt == "-t" || opt == "--threads") {
            if (!int_value(0, 1024, n)) return false;
            args.model_params.n_threads = static_cast<int32_t>(n);
            args.session_params.n_threads = static_cast<int32_t>(n);
        } else if (opt == "-c" || opt == "--ctx-size") {
            if (!int_value(0, 1 << 20, n)) return false;
            args.session_params.n_ctx = static_cast<uint32_t>(n);
        } else if (opt == "--temp") {
            if (!float_value(x)) return false;
            args.session_params.temperature = static_cast<float>(x);
        } else if (opt == "--top-k") {
            if (!int_value(0, std::numeric_limits<int32_t>::max(), n)) return false;
            args.session_params.top_k = static_cast<int32_t>(n);
        } else if (opt == "--top-p") {
            if (!float_value(x)) return false;
            args.session_params.top_p = static_cast<float>(x);
        } else if (opt == "--min-p") {
            if (!float_value(x)) return false;
            args.session_params.min_p = static_cast<float>(x);
        } else if (opt == "--repeat-penalty") {
            if (!float_value(x)) return false;
            args.session_params.repeat_penalty = static_cast<float>(x);
        } else if (opt == "--repeat-last-n") {
            if (!int_value(0, 1 << 20, n)) return false;
            args.session_params.repeat_last_n = static_cast<int32_t>(n);
        } else if (opt == "--seed") {
            if (!int_value(0, std::numeric_limits<long long>::max(), n)) return false;
            args.session_params.seed = static_cast<uint64_t>(n);
        } else if (opt == "--backend") {
            if (!value(text)) return false;
            args.backend_storage = text;
        } else if (opt == "--vram-budget") {
            if (!float_value(x)) return false;
            if (!(x >= 0) || x > 1e6) {
                error = "option --vram-budget: must be a number of GiB >= 0";
                return false;
            }
            args.model_params.vram_budget = static_cast<uint64_t>(x * 1024.0 * 1024.0 * 1024.0);
        } else if (opt == "--no-mmap") {
            args.model_params.use_mmap = 0;
        } else if (opt == "--sparse") {
            if (!value(text)) return false;
            const std::string mode = text;
            if (mode == "auto") args.session_params.sparse = PI_SPARSE_AUTO;
            else if (mode == "on") args.session_params.sparse = PI_SPARSE_ON;
            else if (mode == "off") args.session_params.sparse = PI_SPARSE_OFF;
            else {
                error = "option --sparse: '" + mode + "' is not auto, on or off";
                return false;
            }
        } else if (opt == "--threshold") {
            if (!float_value(x)) return false;
            args.session_params.sparse_threshold = static_cast<float>(x);
        } else if (opt == "--stats") {
            args.stats = true;
        } else if (opt == "--profile-out") {
            if (!value(text)) return false;
            args.profile_out = text;
            args.session_params.profile_activations = 1;
        } else if (opt == "--info") {
            args.info_only = true;
        } else if (opt == "--plan") {
            args.plan = true;
        } else if (opt == "--plan-ctx") {
            if (!int_value(1, 1 << 24, n)) return false;
            args.model_params.plan_n_ctx = static_cast<uint32_t>(n);
        } else if (opt == "--plan-sessions") {
            if (!int_value(1, 65536, n)) return false;
            args.model_params.plan_n_sessions = static_cast<uint32_t>(n);
        } else if (opt == "--profile") {
            if (!value(text)) return false;
            args.profile_storage = text;
        } else if (opt == "--neuron-group") {
            if (!int_value(1, 65536, n)) return false;
            args.model_params.neuron_group = static_cast<uint32_t>(n);
        } else if (opt == "--gpu-bw" || opt == "--cpu-bw" || opt == "--sync-us" || opt == "--launch-us" ||
                   opt == "--transfer-us" || opt == "--transfer-gbps") {
            if (!float_value(x)) return false;
            if (!(x >= 0)) {
                error = "option " + opt + ": must be a number >= 0 (0 = measure or default)";
                return false;
            }
            pi_model_params &m = args.model_params;
            double &field = opt == "--gpu-bw"       ? m.cost_gpu_bandwidth_gbps
                            : opt == "--cpu-bw"     ? m.cost_cpu_bandwidth_gbps
                            : opt == "--sync-us"    ? m.cost_sync_us
                            : opt == "--launch-us"  ? m.cost_launch_us
                            : opt == "--transfer-us" ? m.cost_transfer_latency_us
                                                     : m.cost_transfer_gbps;
            field = x;
        } else {
            error = "unknown option '" + opt + "' (see --help)";
            return false;
        }
    }
    if (!args.backend_storage.empty()) args.model_params.backend = args.backend_storage.c_str();
    if (!args.profile_storage.empty()) args.model_params.profile_path = args.profile_storage.c_str();
    return true;
}

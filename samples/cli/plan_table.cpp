#include "plan_table.h"

#include <chrono>
#include <cstdio>

namespace {

constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kGiB = kMiB * 1024.0;

const char *source_name(int32_t source) {
    switch (source) {
        case PI_COST_DEFAULT: return "default";
        case PI_COST_MEASURED: return "measured";
        case PI_COST_CACHED: return "cached";
        case PI_COST_PINNED: return "pinned";
        default: return "?";
    }
}

const char *freq_name(int32_t source) {
    switch (source) {
        case PI_FREQ_PRIOR: return "prior";
        case PI_FREQ_FILE: return "file";
        case PI_FREQ_PROFILE: return "profile";
        case PI_FREQ_DENSE: return "dense";
        default: return "?";
    }
}

int fail_with(const char *what, pi_status status) {
    std::fprintf(stderr, "error: %s: %s (%s)\n", what, pi_last_error(), pi_status_string(status));
    return 1;
}

}  // namespace

int run_plan(const std::string &path, const pi_model_params &params) {
    const auto t0 = std::chrono::steady_clock::now();
    pi_placement *placement = nullptr;
    pi_status st = pi_plan_placement(path.c_str(), &params, &placement);
    const double plan_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (st != PI_OK) return fail_with("cannot plan the placement", st);

    pi_placement_info info;
    pi_placement_info_init(&info);
    if ((st = pi_placement_get_info(placement, &info)) != PI_OK) {
        pi_placement_free(placement);
        return fail_with("cannot read the placement", st);
    }
    std::printf("placement of %s\n", path.c_str());
    std::printf("budget %.2f GiB, KV reserved for %u session(s) x %u tokens, neuron groups of %u\n",
                info.budget_bytes / kGiB, info.plan_n_sessions, info.plan_n_ctx, info.neuron_group);
    std::printf("%5s  %-9s  %24s  %10s  %10s  %10s  %10s  %8s  %s\n", "layer", "attention", "GPU neurons / n_ff",
                "GPU MiB", "t_gpu us", "t_cpu us", "time us", "active", "freq");
    double layers_time = 0.0;
    for (uint32_t l = 0; l < info.n_layer; ++l) {
        pi_placement_layer_info li;
        pi_placement_layer_info_init(&li);
        if ((st = pi_placement_get_layer(placement, l, &li)) != PI_OK) {
            pi_placement_free(placement);
            return fail_with("cannot read a layer of the placement", st);
        }
        char neurons[64];
        std::snprintf(neurons, sizeof neurons, "%u / %u (%5.1f%%)", li.n_gpu_neurons, li.n_neurons,
                      li.n_neurons ? 100.0 * li.n_gpu_neurons / li.n_neurons : 0.0);
        std::printf("%5u  %-9s  %24s  %10.2f  %10.1f  %10.1f  %10.1f  %8.1f  %s\n", l,
                    li.attention_on_gpu ? "GPU" : "CPU", neurons, li.gpu_bytes / kMiB, li.t_gpu * 1e6,
                    li.t_cpu * 1e6, li.time * 1e6, li.active_neurons, freq_name(li.freq_source));
        layers_time += li.time;
    }
    std::printf("total  attention on the GPU in %u of %u layers, %llu of %llu neurons (%.1f%%)\n",
                info.n_gpu_attention, info.n_layer, (unsigned long long)info.n_gpu_neurons,
                (unsigned long long)info.n_neurons,
                info.n_neurons ? 100.0 * double(info.n_gpu_neurons) / double(info.n_neurons) : 0.0);
    std::printf("GPU memory %.2f MiB of %.2f MiB (scratch %.2f MiB, KV %.2f MiB), output head on the %s\n",
                info.gpu_bytes / kMiB, info.budget_bytes / kMiB, info.scratch_bytes / kMiB, info.kv_bytes / kMiB,
                info.output_on_gpu ? "GPU" : "CPU");
    std::printf("predicted decode step %.3f ms (layers %.3f ms, output head %.3f ms): %.2f tokens/s\n",
                info.step_seconds * 1e3, layers_time * 1e3, (info.step_seconds - layers_time) * 1e3,
                info.tokens_per_second);
    std::printf("cost model: GPU %.1f GB/s, launch %.2f us, sync %.2f us (%s); CPU %.2f GB/s (%s); "
                "transfers %.2f us + %.2f GB/s\n",
                info.gpu_bandwidth_gbps, info.launch_us, info.sync_us, source_name(info.gpu_cost_source),
                info.cpu_bandwidth_gbps, source_name(info.cpu_bandwidth_source), info.transfer_latency_us,
                info.transfer_gbps);
    std::printf("planned in %.1f ms (memory unit %.2f MiB), no weights loaded\n", plan_ms,
                info.memory_unit_bytes / kMiB);
    pi_placement_free(placement);
    return 0;
}

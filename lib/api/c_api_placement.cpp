// pi_plan_placement and pi_placement_* entry points: the placement planner from a model file alone.
#include "api/c_api_placement.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "api/guard.h"
#include "api/struct_io.h"
#include "common/log.h"
#include "planner/planner.h"

using pi::api::guarded;
using pi::api::require;

struct pi_placement {
    pi::planner::Placement placement;
    pi::planner::ResolvedCosts costs;
    std::vector<pi::planner::FreqSource> freq_source;  // per layer
    std::vector<uint32_t> n_ff;                        // per layer
    std::vector<double> active, gpu_active;            // expected firing neurons per token, per layer
    uint64_t budget_bytes = 0;
    uint64_t scratch_bytes = 0;
    uint64_t kv_bytes = 0;
    uint32_t plan_n_ctx = 0;
    uint32_t plan_n_sessions = 0;
    uint32_t neuron_group = 0;
};

namespace {

// The first published sizes (docs/API_GUIDELINES.md). pi_model_params' is the one of c_api_model.cpp. The two
// placement structs are new: their first size is their size today, written as "end of the last field" so that it
// stays put when fields are appended.
constexpr size_t kModelParamsV1Size = offsetof(pi_model_params, sparse_threshold);
static_assert(kModelParamsV1Size == 56, "the published prefix of pi_model_params must never change");
constexpr size_t kPlacementInfoV1Size = offsetof(pi_placement_info, memory_unit_bytes) + sizeof(uint64_t);
static_assert(kPlacementInfoV1Size == 160, "the published prefix of pi_placement_info must never change");
constexpr size_t kLayerInfoV1Size = offsetof(pi_placement_layer_info, gpu_active_neurons) + sizeof(double);
static_assert(kLayerInfoV1Size == 72, "the published prefix of pi_placement_layer_info must never change");

constexpr uint32_t kMaxPlanCtx = 1u << 24;
constexpr uint32_t kMaxPlanSessions = 1u << 16;

pi_model_params default_params() {
    pi_model_params p;
    pi_model_params_init(&p);
    return p;
}

// The budget for a plan made without a loaded model. No GPU backend drives a device in this version, so
// "automatic" has no free memory to ask about: CPU only, as pi_model_load decides for the same params.
uint64_t resolve_budget(const pi_model_params &p) {
    if (p.backend && std::strcmp(p.backend, "cpu") == 0) return 0;
    if (p.vram_budget == PI_VRAM_BUDGET_AUTO) {
        pi::log_info("pi_plan_placement: vram_budget is automatic and no GPU backend is available: planning for the CPU");
        return 0;
    }
    return p.vram_budget;
}

int thread_count(const pi_model_params &p) {
    return p.n_threads > 0 ? p.n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

const pi_placement &checked(const pi_placement *placement, const char *function) {
    require(placement != nullptr, function, "placement is NULL");
    return *placement;
}

void check_layer(const pi_placement &p, uint32_t layer, const char *function) {
    if (layer >= p.placement.layers.size()) {
        pi::fail(PI_ERR_INVALID_ARGUMENT, std::string(function) + ": layer " + std::to_string(layer) +
                                              " is out of range (the model has " +
                                              std::to_string(p.placement.layers.size()) + " layers)");
    }
}

std::unique_ptr<pi_placement> make_placement(pi::planner::ModelProblem mp, pi::planner::ResolvedCosts costs,
                                             const pi::planner::ModelPlanOptions &options) {
    auto h = std::make_unique<pi_placement>();
    h->placement = pi::planner::plan(mp.problem, costs.params);
    h->costs = std::move(costs);
    h->freq_source = std::move(mp.freq_source);
    h->budget_bytes = options.budget_bytes;
    h->scratch_bytes = mp.problem.scratch_bytes;
    h->plan_n_ctx = options.plan_n_ctx;
    h->plan_n_sessions = options.plan_n_sessions;
    h->neuron_group = options.group_size;
    for (size_t l = 0; l < mp.problem.layers.size(); ++l) {
        const pi::planner::LayerInput &in = mp.problem.layers[l];
        const pi::planner::LayerPlacement &lp = h->placement.layers[l];
        double all = 0.0, gpu = 0.0;
        for (float f : in.act_freq) all += f;
        for (uint32_t i : lp.gpu_neurons) gpu += in.act_freq[i];
        h->n_ff.push_back(static_cast<uint32_t>(in.act_freq.size()));
        h->active.push_back(all);
        h->gpu_active.push_back(gpu);
        if (lp.attention_on_gpu) h->kv_bytes += in.kv_bytes;
    }
    return h;
}

}  // namespace

namespace pi::api {

void check_plan_params(const pi_model_params &p, const char *function) {
    require(p.plan_n_ctx >= 1 && p.plan_n_ctx <= kMaxPlanCtx, function, "plan_n_ctx must be in [1, 2^24]");
    require(p.plan_n_sessions >= 1 && p.plan_n_sessions <= kMaxPlanSessions, function,
            "plan_n_sessions must be in [1, 65536]");
    require(p.neuron_group >= 1 && p.neuron_group <= 65536, function, "neuron_group must be in [1, 65536]");
    planner::validate_overrides(cost_overrides(p), function);
}

planner::CostOverrides cost_overrides(const pi_model_params &p) {
    planner::CostOverrides o;
    o.gpu_bandwidth_gbps = p.cost_gpu_bandwidth_gbps;
    o.cpu_bandwidth_gbps = p.cost_cpu_bandwidth_gbps;
    o.sync_us = p.cost_sync_us;
    o.launch_us = p.cost_launch_us;
    o.transfer_latency_us = p.cost_transfer_latency_us;
    o.transfer_gbps = p.cost_transfer_gbps;
    return o;
}

planner::ModelPlanOptions plan_options(const pi_model_params &p, uint64_t budget_bytes) {
    planner::ModelPlanOptions o;
    o.budget_bytes = budget_bytes;
    o.plan_n_ctx = p.plan_n_ctx;
    o.plan_n_sessions = p.plan_n_sessions;
    o.group_size = p.neuron_group;
    if (p.profile_path) o.profile_path = p.profile_path;
    return o;
}

}  // namespace pi::api

extern "C" {

PI_API pi_status pi_plan_placement(const char *path, const pi_model_params *params, pi_placement **out) {
    return guarded([&] {
        const char *fn = "pi_plan_placement";
        require(path != nullptr, fn, "path is NULL");
        require(out != nullptr, fn, "out is NULL");
        require(path[0] != '\0', fn, "path is empty");
        const pi_model_params p =
            pi::api::read_params(params, default_params(), kModelParamsV1Size, fn, "pi_model_params");
        require(p.n_threads >= 0, fn, "n_threads must be >= 0 (0 = one per core)");
        require(p.profile_path == nullptr || p.profile_path[0] != '\0', fn, "profile_path is empty (NULL = none)");
        pi::api::check_plan_params(p, fn);
        const pi::planner::ModelPlanOptions options = pi::api::plan_options(p, resolve_budget(p));
        pi::planner::ModelProblem mp = pi::planner::build_model_problem(std::string(path), options);
        pi::planner::CostCacheOptions cache;
        cache.n_threads = thread_count(p);
        pi::planner::ResolvedCosts costs = pi::planner::resolve_costs(pi::api::cost_overrides(p), cache);
        *out = make_placement(std::move(mp), std::move(costs), options).release();
    });
}

PI_API void pi_placement_free(pi_placement *placement) { delete placement; }

PI_API void pi_placement_info_init_sized(pi_placement_info *info, size_t size) {
    pi_placement_info zero;
    std::memset(&zero, 0, sizeof zero);
    pi::api::init_versioned(info, size, &zero, sizeof zero);
}

PI_API pi_status pi_placement_get_info(const pi_placement *placement, pi_placement_info *out) {
    return guarded([&] {
        const char *fn = "pi_placement_get_info";
        const pi_placement &h = checked(placement, fn);
        require(out != nullptr, fn, "out is NULL");
        const pi::planner::Placement &pl = h.placement;
        const pi::planner::CostParams &c = h.costs.params;
        pi_placement_info info;
        std::memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        info.n_layer = static_cast<uint32_t>(pl.layers.size());
        info.budget_bytes = h.budget_bytes;
        info.gpu_bytes = pl.gpu_bytes;
        info.scratch_bytes = h.scratch_bytes;
        info.kv_bytes = h.kv_bytes;
        info.plan_n_ctx = h.plan_n_ctx;
        info.plan_n_sessions = h.plan_n_sessions;
        info.neuron_group = h.neuron_group;
        info.output_on_gpu = pl.output_on_gpu ? 1 : 0;
        for (size_t l = 0; l < pl.layers.size(); ++l) {
            info.n_gpu_attention += pl.layers[l].attention_on_gpu ? 1 : 0;
            info.n_gpu_neurons += pl.layers[l].n_gpu_neurons;
            info.n_neurons += h.n_ff[l];
        }
        info.step_seconds = pl.step_time;
        info.tokens_per_second = pl.step_time > 0 ? 1.0 / pl.step_time : 0.0;
        info.gpu_bandwidth_gbps = c.gpu_bandwidth / 1e9;
        info.cpu_bandwidth_gbps = c.cpu_bandwidth / 1e9;
        info.sync_us = c.sync_s * 1e6;
        info.launch_us = c.gpu_launch_s * 1e6;
        info.transfer_latency_us = c.d2h_latency_s * 1e6;
        info.transfer_gbps = c.d2h_bandwidth / 1e9;
        info.cpu_bandwidth_source = static_cast<int32_t>(h.costs.cpu_bandwidth_source);
        info.gpu_cost_source = static_cast<int32_t>(h.costs.gpu_source);
        info.memory_unit_bytes = pl.memory_unit_bytes;
        pi::api::write_versioned(out, &info, sizeof info, kPlacementInfoV1Size, fn, "pi_placement_info");
    });
}

PI_API void pi_placement_layer_info_init_sized(pi_placement_layer_info *info, size_t size) {
    pi_placement_layer_info zero;
    std::memset(&zero, 0, sizeof zero);
    pi::api::init_versioned(info, size, &zero, sizeof zero);
}

PI_API pi_status pi_placement_get_layer(const pi_placement *placement, uint32_t layer, pi_placement_layer_info *out) {
    return guarded([&] {
        const char *fn = "pi_placement_get_layer";
        const pi_placement &h = checked(placement, fn);
        require(out != nullptr, fn, "out is NULL");
        check_layer(h, layer, fn);
        const pi::planner::LayerPlacement &lp = h.placement.layers[layer];
        pi_placement_layer_info info;
        std::memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        info.attention_on_gpu = lp.attention_on_gpu ? 1 : 0;
        info.n_gpu_neurons = lp.n_gpu_neurons;
        info.n_neurons = h.n_ff[layer];
        info.gpu_bytes = lp.gpu_bytes;
        info.t_gpu = lp.t_gpu;
        info.t_cpu = lp.t_cpu;
        info.time = lp.time;
        info.freq_source = static_cast<int32_t>(h.freq_source[layer]);
        info.active_neurons = h.active[layer];
        info.gpu_active_neurons = h.gpu_active[layer];
        pi::api::write_versioned(out, &info, sizeof info, kLayerInfoV1Size, fn, "pi_placement_layer_info");
    });
}

PI_API pi_status pi_placement_gpu_neurons(const pi_placement *placement, uint32_t layer, uint32_t *out,
                                          size_t capacity, size_t *n_out) {
    return guarded([&] {
        const char *fn = "pi_placement_gpu_neurons";
        const pi_placement &h = checked(placement, fn);
        require(n_out != nullptr, fn, "n_out is NULL");
        require(out != nullptr || capacity == 0, fn, "out is NULL but capacity is not 0");
        check_layer(h, layer, fn);
        const std::vector<uint32_t> &neurons = h.placement.layers[layer].gpu_neurons;
        if (capacity < neurons.size()) {
            *n_out = neurons.size();
            pi::fail(PI_ERR_BUFFER_TOO_SMALL, std::string(fn) + ": layer " + std::to_string(layer) + " has " +
                                                  std::to_string(neurons.size()) + " GPU neurons, capacity is " +
                                                  std::to_string(capacity));
        }
        std::copy(neurons.begin(), neurons.end(), out);
        *n_out = neurons.size();
    });
}

}  // extern "C"

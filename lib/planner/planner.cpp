#include "planner/planner.h"

#include <algorithm>
#include <string>

#include "common/error.h"
#include "planner/layer_options.h"
#include "planner/memory_units.h"
#include "planner/neuron_order.h"
#include "planner/solver.h"

namespace pi::planner {

namespace {

void validate(const PlacementProblem &problem, const PlannerOptions &options) {
    if (problem.layers.empty()) fail(PI_ERR_INVALID_ARGUMENT, "planner: the model has no layers");
    if (problem.group_size == 0 || problem.group_size > 65536) {
        fail(PI_ERR_INVALID_ARGUMENT, "planner: group_size must be in [1, 65536]");
    }
    if (options.max_units == 0) fail(PI_ERR_INVALID_ARGUMENT, "planner: max_units must be >= 1");
    for (size_t l = 0; l < problem.layers.size(); ++l) {
        const LayerInput &layer = problem.layers[l];
        const std::string where = "planner: layer " + std::to_string(l) + ": ";
        if (layer.act_freq.empty()) fail(PI_ERR_INVALID_ARGUMENT, where + "no FFN neurons (act_freq is empty)");
        if (layer.neuron_bytes == 0) fail(PI_ERR_INVALID_ARGUMENT, where + "neuron_bytes must be > 0");
        // Keeps every byte sum below 2^64 (each term is far below 2^62 for any real model).
        const uint64_t limit = uint64_t(1) << 56;
        if (layer.neuron_bytes > limit || layer.act_freq.size() > limit / layer.neuron_bytes ||
            layer.attn_bytes > limit || layer.kv_bytes > limit || layer.pred_bytes > limit) {
            fail(PI_ERR_INVALID_ARGUMENT, where + "byte sizes are implausibly large");
        }
    }
}

// Units needed to put everything on the GPU (scratch excluded).
uint64_t all_units(const PlacementProblem &problem, uint64_t unit) {
    uint64_t total = units_for(problem.output_bytes, unit);
    for (const LayerInput &l : problem.layers) {
        const uint64_t n = l.act_freq.size(), g = problem.group_size;
        total += units_for(l.attn_bytes + l.kv_bytes + l.pred_bytes, unit) +
                 (n / g) * units_for(g * l.neuron_bytes, unit) + units_for((n % g) * l.neuron_bytes, unit);
    }
    return total;
}

// Exact bytes of everything on the GPU (scratch excluded).
uint64_t all_bytes(const PlacementProblem &problem) {
    uint64_t total = problem.output_bytes;
    for (const LayerInput &l : problem.layers) {
        total += l.attn_bytes + l.kv_bytes + l.pred_bytes + l.act_freq.size() * l.neuron_bytes;
    }
    return total;
}

// Units the DP runs over: the budget left after scratch, but never more than everything needs. When the whole
// model fits in bytes, every plan does (each is a subset of it), so rounding must not cost the last objects.
uint64_t usable_units(const PlacementProblem &problem, uint64_t unit) {
    if (problem.budget_bytes == 0 || problem.budget_bytes < problem.scratch_bytes) return 0;
    const uint64_t everything = all_units(problem, unit);
    if (all_bytes(problem) <= problem.budget_bytes - problem.scratch_bytes) return everything;
    return std::min((problem.budget_bytes - problem.scratch_bytes) / unit, everything);
}

LayerPlacement describe(const LayerInput &in, const LayerOptions &o, const LayerChoice &c, const CostParams &params) {
    LayerPlacement p;
    p.kind = c.kind;
    LayerTimes t = o.cpu;
    if (c.kind == LayerKind::gpu) {
        p.n_gpu_neurons = uint32_t(in.act_freq.size());
        t = o.gpu;
    } else if (c.kind == LayerKind::split) {
        p.n_gpu_neurons = c.groups * o.group_size;
        t = split_layer_times(params, in, o.hot_active[c.groups], o.cold_active[c.groups]);
    }
    p.attention_on_gpu = c.kind != LayerKind::cpu;
    if (p.attention_on_gpu) p.gpu_bytes = in.attn_bytes + in.kv_bytes + in.pred_bytes + p.n_gpu_neurons * in.neuron_bytes;
    p.gpu_neurons = hottest_neurons(in.act_freq, o.sorted, p.n_gpu_neurons);
    p.t_gpu = t.t_gpu;
    p.t_cpu = t.t_cpu;
    p.time = t.time;
    return p;
}

}  // namespace

uint64_t choose_memory_unit(const PlacementProblem &problem, const PlannerOptions &options) {
    validate(problem, options);
    uint64_t unit = options.memory_unit_bytes;
    if (unit == 0) {
        unit = UINT64_MAX;
        for (const LayerInput &l : problem.layers) unit = std::min(unit, problem.group_size * l.neuron_bytes);
    }
    // Coarser units until the DP table fits; each step at least doubles the unit.
    for (uint64_t m = usable_units(problem, unit); m > options.max_units; m = usable_units(problem, unit)) {
        unit *= std::max<uint64_t>(2, (m + options.max_units - 1) / options.max_units);
    }
    return unit;
}

Placement plan(const PlacementProblem &problem, const CostParams &params, const PlannerOptions &options) {
    validate(problem, options);
    validate(params);
    const uint64_t unit = choose_memory_unit(problem, options);
    const uint64_t units = usable_units(problem, unit);

    std::vector<LayerOptions> layers;
    layers.reserve(problem.layers.size());
    for (size_t l = 0; l < problem.layers.size(); ++l) {
        layers.push_back(build_layer_options(params, problem.layers[l], uint32_t(l), problem.group_size, unit));
    }
    OutputOption output;
    output.cpu_time = output_time(params, problem, false);
    output.gpu_time = output_time(params, problem, true);
    output.gpu_units = units_for(problem.output_bytes, unit);

    Solution sol;
    if (problem.budget_bytes == 0 || problem.budget_bytes < problem.scratch_bytes) {
        sol.layers.assign(layers.size(), LayerChoice{});  // nothing may go to the GPU, not even a 0-unit part
    } else {
        sol = solve(layers, output, units, options.force_plain_scan);
    }

    Placement p;
    p.memory_unit_bytes = unit;
    p.gpu_units = sol.units;
    p.output_on_gpu = sol.output_on_gpu;
    p.output_time = p.output_on_gpu ? output.gpu_time : output.cpu_time;
    p.step_time = p.output_time;  // summed in the solver's order, so it equals the optimum it found bit for bit
    bool any_on_gpu = p.output_on_gpu;
    for (size_t l = 0; l < layers.size(); ++l) {
        p.layers.push_back(describe(problem.layers[l], layers[l], sol.layers[l], params));
        p.step_time += p.layers.back().time;
        p.gpu_bytes += p.layers.back().gpu_bytes;
        any_on_gpu = any_on_gpu || p.layers.back().attention_on_gpu;
    }
    if (p.output_on_gpu) p.gpu_bytes += problem.output_bytes;
    if (any_on_gpu) p.gpu_bytes += problem.scratch_bytes;
    return p;
}

}  // namespace pi::planner

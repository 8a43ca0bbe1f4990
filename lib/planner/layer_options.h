// One layer's menu for the solver: its time and memory (in units) for every placement it can take.
//
// The split option's time as a function of the groups k it puts on the GPU is max(T_gpu(k), T_cpu(k)) + sync,
// where T_gpu grows by one group's expected bytes per step (the groups get colder: concave increasing) and T_cpu
// falls by the same amounts over the CPU's bandwidth (convex decreasing). Their maximum falls convexly until the
// two cross and rises after; its running minimum ("the best split using at most k groups") is therefore convex and
// non-increasing in k. That is what lets the solver take a layer with a fast min-plus step (see solver.h).
#pragma once

#include <cstdint>
#include <vector>

#include "planner/cost_model.h"
#include "planner/placement_problem.h"

namespace pi::planner {

struct LayerOptions {
    std::vector<float> sorted;    // the layer's frequencies, hottest first (neuron_order.h)

    LayerTimes cpu;               // option "all on the CPU": 0 units

    LayerTimes gpu;               // option "all on the GPU"
    uint64_t gpu_units = 0;

    // Option "split" with k whole groups on the GPU, k = 0 .. n_split - 1 (a trailing partial group only moves in
    // the "all on the GPU" option); memory base_units + k * group_units.
    uint64_t base_units = 0;      // attention + KV + predictor, one object
    uint64_t group_units = 0;
    uint32_t group_size = 0;
    std::vector<double> hot_active;   // expected firing neurons on the GPU with k groups there
    std::vector<double> cold_active;  // ... and on the CPU
    std::vector<double> split_time;   // the layer's time with exactly k groups on the GPU
    // min over k' <= k of split_time[k'] (convex, non-increasing), up to the first k reaching the overall
    // minimum: beyond it the table would be flat, and a flat tail never helps (the solver's tables fall in m).
    std::vector<double> best_split;
    std::vector<uint32_t> best_k;     // the smallest k' reaching best_split[k]
    bool best_split_convex = false;   // checked numerically; false sends the layer to the plain scan

    uint32_t n_split() const { return uint32_t(split_time.size()); }
};

// Builds the menu of `layer` (index `index`, for messages) with memory counted in units of `unit` bytes.
LayerOptions build_layer_options(const CostParams &params, const LayerInput &layer, uint32_t index,
                                 uint32_t group_size, uint64_t unit);

}  // namespace pi::planner

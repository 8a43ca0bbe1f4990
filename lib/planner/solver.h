// The exact solver: a dynamic program over layers whose state is the number of memory units given out so far.
//
// D_l(m) = least time of the output head and layers 0 .. l-1 using at most m units. A layer adds one of
//   all on the CPU:  D(m) + t_cpu                      all on the GPU:  D(m - gpu_units) + t_gpu
//   split:           min over k of D(m - base - k * group_units) + best_split[k]
// The split term is, for each residue of m modulo group_units, a min-plus convolution of D with the layer's convex
// best_split table (min_plus.h), so a layer costs O(M log M) for M units instead of O(M * groups). Every
// combination of options is covered by the recurrence, so D_L(M) is the optimum of the discretized problem.
#pragma once

#include <cstdint>
#include <vector>

#include "planner/layer_options.h"
#include "planner/placement.h"

namespace pi::planner {

struct LayerChoice {
    LayerKind kind = LayerKind::cpu;
    uint32_t groups = 0;  // split: whole groups on the GPU
};

struct Solution {
    std::vector<LayerChoice> layers;
    bool output_on_gpu = false;
    double time = 0.0;    // the optimum: output head + layers, summed in that order
    uint64_t units = 0;   // units the chosen options take (<= the units given)
};

struct OutputOption {
    double cpu_time = 0.0;
    double gpu_time = 0.0;
    uint64_t gpu_units = 0;
};

// Least-time choice of one option per layer (and a side for the output head) within `units`. Equal times prefer,
// in order: the CPU, all on the GPU, then the split with the fewest groups found first; the result is a
// deterministic function of the inputs. plain_scan = true takes every layer with the O(M * groups) scan.
Solution solve(const std::vector<LayerOptions> &layers, const OutputOption &output, uint64_t units, bool plain_scan);

}  // namespace pi::planner

// An independent statement of the discretized placement problem for the planner tests: each layer's menu of
// options written out one by one from the cost model's formulas (no group tables, no solver), a brute force over
// every combination, and random instances. The unit tests compare plan() with the brute force; the GLPK test gives
// the same menus to an integer-programming solver.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "planner/cost_model.h"
#include "planner/placement.h"
#include "planner/placement_problem.h"

namespace planner_test {

using namespace pi::planner;

struct MenuOption {
    LayerKind kind;
    uint32_t n_gpu_neurons;
    uint64_t units;
    double time;
};

// Every option of layer l: CPU, split with k = 0 .. ceil(n_ff / G) - 1 whole groups, all on the GPU; memory in
// units of `unit` (attention + KV + predictor one object, each whole group one, a trailing partial group one).
std::vector<MenuOption> layer_menu(const PlacementProblem &problem, const CostParams &params, size_t l, uint64_t unit);

// Units the layers and output head may use: floor((budget - scratch) / unit), unlimited when the whole model fits
// in bytes; -1 when nothing may go to the GPU.
int64_t unit_budget(const PlacementProblem &problem, uint64_t unit);

struct Reference {
    double time;
    std::vector<size_t> choice;  // menu index per layer
    bool output_on_gpu;
};

// Least total time over every combination (output head first, then layers, summed in that order).
Reference brute_force(const PlacementProblem &problem, const CostParams &params, uint64_t unit);

// Re-evaluates a plan's choices independently: its time, and throws if it is not one of the menu's options or
// breaks the unit budget.
double evaluate(const PlacementProblem &problem, const CostParams &params, const Placement &placement);

// Expected firing neurons when the `count` most frequent neurons (ties: lower index) are on the GPU.
double hottest_sum(const std::vector<float> &freq, uint32_t count, bool hot);

// A random instance: n_layers layers of up to max_ff neurons, group size up to max_group, bytes and cost
// parameters spread so that every kind of option wins somewhere; frequencies sometimes from a few values (ties).
struct RandomInstance {
    PlacementProblem problem;
    CostParams params;
};
RandomInstance random_instance(std::mt19937_64 &rng, size_t n_layers, uint32_t max_ff, uint32_t max_group);

// Sum of the bytes of everything (each layer wholly on the GPU, the output head), without scratch.
uint64_t model_bytes(const PlacementProblem &problem);

}  // namespace planner_test

// plan() against an exhaustive search: on hundreds of small random instances the planner's step time equals the
// best of every (option, k) combination of the same discretized problem, and its plan is one of those combinations
// and fits. The convex fast path also equals the plain scan on larger instances.
#include <catch2/catch.hpp>

#include <cmath>

#include "planner/planner.h"
#include "planner_reference.h"

using namespace planner_test;

namespace {

// Both sides sum the same terms in different orders (per group vs per neuron): equal up to a few ulps.
bool same_time(double a, double b) { return std::fabs(a - b) <= 1e-12 * std::max(std::fabs(a), std::fabs(b)); }

}  // namespace

TEST_CASE("planner: optimum equals brute force on small random instances", "[planner]") {
    std::mt19937_64 rng(20240611);
    int gpu_plans = 0, split_layers = 0, multi_unit_groups = 0;
    for (int iter = 0; iter < 600; ++iter) {
        const size_t n_layers = 1 + iter % 3;
        RandomInstance r = random_instance(rng, n_layers, n_layers == 3 ? 7 : 10, 4);
        PlannerOptions opt;
        // Every third instance counts memory in a small explicit unit: groups then span several units and the
        // solver's per-residue convolutions are exercised.
        if (iter % 3 == 0) opt.memory_unit_bytes = 1 + rng() % 700;
        const Placement p = plan(r.problem, r.params, opt);
        const Reference best = brute_force(r.problem, r.params, p.memory_unit_bytes);
        INFO("instance " << iter << ": plan " << p.step_time << " brute force " << best.time);
        REQUIRE(same_time(p.step_time, best.time));
        REQUIRE(same_time(evaluate(r.problem, r.params, p), p.step_time));
        REQUIRE(p.gpu_bytes <= r.problem.budget_bytes);
        gpu_plans += p.gpu_bytes > 0;
        for (const LayerPlacement &lp : p.layers) {
            split_layers += lp.kind == LayerKind::split;
            multi_unit_groups += lp.kind == LayerKind::split && opt.memory_unit_bytes != 0;
        }
    }
    // The instances are not degenerate: many plans use the GPU, and splits (also with multi-unit groups) win.
    CHECK(gpu_plans > 200);
    CHECK(split_layers > 100);
    CHECK(multi_unit_groups > 20);
}

TEST_CASE("planner: the convex fast path equals the plain scan", "[planner]") {
    std::mt19937_64 rng(7);
    for (int iter = 0; iter < 40; ++iter) {
        RandomInstance r = random_instance(rng, 6, 300, 16);
        PlannerOptions fast, plain;
        if (iter % 2) fast.memory_unit_bytes = plain.memory_unit_bytes = 50 + rng() % 500;
        plain.force_plain_scan = true;
        const Placement a = plan(r.problem, r.params, fast);
        const Placement b = plan(r.problem, r.params, plain);
        INFO("instance " << iter);
        REQUIRE(same_time(a.step_time, b.step_time));
        REQUIRE(same_time(evaluate(r.problem, r.params, a), a.step_time));
    }
}

#include "planner_reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace planner_test {

namespace {

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

}  // namespace

double hottest_sum(const std::vector<float> &freq, uint32_t count, bool hot) {
    std::vector<uint32_t> idx(freq.size());
    std::iota(idx.begin(), idx.end(), 0u);
    std::stable_sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) { return freq[a] > freq[b]; });
    double s = 0.0;
    for (size_t r = hot ? 0 : count; r < (hot ? count : freq.size()); ++r) s += freq[idx[r]];
    return s;
}

std::vector<MenuOption> layer_menu(const PlacementProblem &problem, const CostParams &params, size_t l, uint64_t unit) {
    const LayerInput &in = problem.layers[l];
    const uint32_t n = uint32_t(in.act_freq.size()), G = problem.group_size;
    const uint64_t base = ceil_div(in.attn_bytes + in.kv_bytes + in.pred_bytes, unit);
    const uint64_t group = ceil_div(uint64_t(G) * in.neuron_bytes, unit);
    const double total = hottest_sum(in.act_freq, n, true);
    std::vector<MenuOption> menu;
    menu.push_back({LayerKind::cpu, 0, 0, cpu_layer_times(params, in, total).time});
    for (uint32_t k = 0; k < (n + G - 1) / G; ++k) {
        const double hot = hottest_sum(in.act_freq, k * G, true), cold = hottest_sum(in.act_freq, k * G, false);
        menu.push_back({LayerKind::split, k * G, base + k * group, split_layer_times(params, in, hot, cold).time});
    }
    const uint64_t all = base + (n / G) * group + ceil_div(uint64_t(n % G) * in.neuron_bytes, unit);
    menu.push_back({LayerKind::gpu, n, all, gpu_layer_times(params, in, total).time});
    return menu;
}

int64_t unit_budget(const PlacementProblem &problem, uint64_t unit) {
    if (problem.budget_bytes == 0 || problem.budget_bytes < problem.scratch_bytes) return -1;
    // A model that fits whole in bytes: every plan fits (rounding must not forbid any).
    if (model_bytes(problem) <= problem.budget_bytes - problem.scratch_bytes) return INT64_MAX;
    return int64_t((problem.budget_bytes - problem.scratch_bytes) / unit);
}

Reference brute_force(const PlacementProblem &problem, const CostParams &params, uint64_t unit) {
    const size_t L = problem.layers.size();
    std::vector<std::vector<MenuOption>> menus;
    for (size_t l = 0; l < L; ++l) menus.push_back(layer_menu(problem, params, l, unit));
    const int64_t budget = unit_budget(problem, unit);
    const uint64_t out_units = ceil_div(problem.output_bytes, unit);

    Reference best{std::numeric_limits<double>::infinity(), {}, false};
    std::vector<size_t> pick(L, 0);
    for (int out = 0; out < 2; ++out) {
        // Odometer over all menu combinations.
        std::fill(pick.begin(), pick.end(), 0);
        for (;;) {
            uint64_t units = out ? out_units : 0;
            bool on_gpu = out != 0;
            double time = output_time(params, problem, out != 0);
            for (size_t l = 0; l < L; ++l) {
                const MenuOption &o = menus[l][pick[l]];
                units += o.units;
                on_gpu = on_gpu || o.kind != LayerKind::cpu;
                time += o.time;
            }
            const bool fits = !on_gpu || (budget >= 0 && units <= uint64_t(budget));
            if (fits && time < best.time) best = {time, pick, out != 0};
            size_t l = 0;
            while (l < L && ++pick[l] == menus[l].size()) pick[l++] = 0;
            if (l == L) break;
        }
    }
    return best;
}

double evaluate(const PlacementProblem &problem, const CostParams &params, const Placement &p) {
    const uint64_t unit = p.memory_unit_bytes;
    const int64_t budget = unit_budget(problem, unit);
    uint64_t units = p.output_on_gpu ? ceil_div(problem.output_bytes, unit) : 0;
    bool on_gpu = p.output_on_gpu;
    double time = output_time(params, problem, p.output_on_gpu);
    for (size_t l = 0; l < problem.layers.size(); ++l) {
        const LayerPlacement &lp = p.layers[l];
        bool found = false;
        for (const MenuOption &o : layer_menu(problem, params, l, unit)) {
            if (o.kind == lp.kind && o.n_gpu_neurons == lp.n_gpu_neurons) {
                units += o.units;
                time += o.time;
                found = true;
                break;
            }
        }
        if (!found) throw std::runtime_error("layer " + std::to_string(l) + ": not an option of its menu");
        on_gpu = on_gpu || lp.kind != LayerKind::cpu;
    }
    if (on_gpu && (budget < 0 || units > uint64_t(budget))) throw std::runtime_error("plan exceeds the unit budget");
    return time;
}

RandomInstance random_instance(std::mt19937_64 &rng, size_t n_layers, uint32_t max_ff, uint32_t max_group) {
    auto uni = [&](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
    auto real = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
    RandomInstance r;
    PlacementProblem &p = r.problem;
    p.group_size = uint32_t(uni(1, max_group));
    const bool ties = uni(0, 2) == 0;
    for (size_t l = 0; l < n_layers; ++l) {
        LayerInput in;
        in.act_freq.resize(uni(1, max_ff));
        for (float &f : in.act_freq) f = ties ? float(uni(0, 4)) / 4.0f : float(std::pow(real(0, 1), 3.0));
        in.neuron_bytes = uni(1, 3000);
        in.attn_bytes = uni(0, 20000);
        in.kv_bytes = uni(0, 5000);
        in.kv_read_bytes = uni(0, in.kv_bytes);
        in.pred_bytes = uni(0, 3000);
        in.hidden_bytes = uni(0, 500);
        p.layers.push_back(std::move(in));
    }
    p.output_bytes = uni(0, 20000);
    p.logits_bytes = uni(0, 2000);
    p.scratch_bytes = uni(0, 1) ? uni(0, 4000) : 0;
    p.budget_bytes = uni(0, model_bytes(p) + p.scratch_bytes + 2000);

    CostParams &c = r.params;
    c.gpu_bandwidth = real(2e3, 4e4);
    c.cpu_bandwidth = real(2e2, 4e3);
    c.gpu_launch_s = real(0, 0.5);
    c.gpu_launches_front = double(uni(0, 6));
    c.gpu_launches_ffn = double(uni(0, 3));
    c.gpu_launches_output = double(uni(0, 3));
    c.cpu_layer_overhead_s = real(0, 2);
    c.d2h_latency_s = real(0, 3);
    c.d2h_bandwidth = real(1e2, 1e4);
    c.h2d_latency_s = real(0, 3);
    c.h2d_bandwidth = real(1e2, 1e4);
    c.sync_s = real(0, 2);
    c.index_bytes = double(uni(0, 8));
    return r;
}

uint64_t model_bytes(const PlacementProblem &problem) {
    uint64_t total = problem.output_bytes;
    for (const LayerInput &l : problem.layers) {
        total += l.attn_bytes + l.kv_bytes + l.pred_bytes + l.act_freq.size() * l.neuron_bytes;
    }
    return total;
}

}  // namespace planner_test

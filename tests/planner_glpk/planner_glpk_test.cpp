// plan() against an independent integer-programming solver. The placement problem written as a multiple-choice
// knapsack for GLPK: one binary per (layer, option) from the menus of planner_reference.h, one for the output head
// on the GPU, one for "anything on the GPU" (scratch), and the unit budget. On medium instances (8 layers x 2048
// neurons, groups of 64: 34 options a layer) the planner's step time equals GLPK's MIP optimum within 1e-9.
#include <catch2/catch.hpp>

#include <glpk.h>

#include <cmath>
#include <memory>

#include "planner/planner.h"
#include "planner_reference.h"

using namespace planner_test;

namespace {

// GLPK works in microseconds (coefficients near 1..1e4 suit its tolerances); the optimum is re-summed in seconds
// from the menus, so GLPK's own rounding does not enter the comparison.
constexpr double kScale = 1e6;

struct GlpkResult {
    double time;  // seconds, re-summed from the chosen menu entries
    uint64_t units;
};

GlpkResult glpk_optimum(const PlacementProblem &problem, const CostParams &params, uint64_t unit) {
    const size_t L = problem.layers.size();
    std::vector<std::vector<MenuOption>> menus;
    for (size_t l = 0; l < L; ++l) menus.push_back(layer_menu(problem, params, l, unit));
    const int64_t budget = unit_budget(problem, unit);
    const double out_units = std::ceil(double(problem.output_bytes) / double(unit));
    const double out_cpu = output_time(params, problem, false), out_gpu = output_time(params, problem, true);

    std::unique_ptr<glp_prob, void (*)(glp_prob *)> lp(glp_create_prob(), glp_delete_prob);
    glp_set_obj_dir(lp.get(), GLP_MIN);
    glp_set_obj_coef(lp.get(), 0, out_cpu * kScale);  // constant term: the output head on the CPU

    // Rows: 1..L "one option per layer"; L+1 the unit budget; L+2..2L+1 "a GPU option only if z"; 2L+2 "y <= z".
    const int row_budget = int(L) + 1, row_out = 2 * int(L) + 2;
    glp_add_rows(lp.get(), 2 * int(L) + 2);
    for (size_t l = 0; l < L; ++l) {
        glp_set_row_bnds(lp.get(), int(l) + 1, GLP_FX, 1.0, 1.0);
        glp_set_row_bnds(lp.get(), int(L) + 2 + int(l), GLP_UP, 0.0, 0.0);
    }
    double everything = out_units;
    for (const auto &m : menus) everything += double(m.back().units);
    glp_set_row_bnds(lp.get(), row_budget, GLP_UP, 0.0, budget == INT64_MAX ? everything : double(std::max<int64_t>(budget, 0)));
    glp_set_row_bnds(lp.get(), row_out, GLP_UP, 0.0, 0.0);

    std::vector<int> ia{0}, ja{0};
    std::vector<double> ar{0.0};
    auto put = [&](int row, int col, double v) {
        ia.push_back(row);
        ja.push_back(col);
        ar.push_back(v);
    };
    std::vector<std::pair<size_t, size_t>> column_option;  // column - 1 -> (layer, option)
    for (size_t l = 0; l < L; ++l) {
        for (size_t o = 0; o < menus[l].size(); ++o) {
            const int col = glp_add_cols(lp.get(), 1);
            glp_set_col_kind(lp.get(), col, GLP_BV);
            glp_set_obj_coef(lp.get(), col, menus[l][o].time * kScale);
            put(int(l) + 1, col, 1.0);
            put(row_budget, col, double(menus[l][o].units));
            if (menus[l][o].kind != LayerKind::cpu) put(int(L) + 2 + int(l), col, 1.0);
            column_option.push_back({l, o});
        }
    }
    const int col_y = glp_add_cols(lp.get(), 1), col_z = glp_add_cols(lp.get(), 1);
    glp_set_col_kind(lp.get(), col_y, GLP_BV);
    glp_set_col_kind(lp.get(), col_z, GLP_BV);
    glp_set_obj_coef(lp.get(), col_y, (out_gpu - out_cpu) * kScale);
    put(row_budget, col_y, out_units);
    put(row_out, col_y, 1.0);
    put(row_out, col_z, -1.0);
    for (size_t l = 0; l < L; ++l) put(int(L) + 2 + int(l), col_z, -1.0);
    if (budget < 0) glp_set_col_bnds(lp.get(), col_z, GLP_FX, 0.0, 0.0);  // no room even for scratch
    glp_load_matrix(lp.get(), int(ia.size()) - 1, ia.data(), ja.data(), ar.data());

    glp_iocp parm;
    glp_init_iocp(&parm);
    parm.presolve = GLP_ON;
    parm.msg_lev = GLP_MSG_OFF;
    parm.mip_gap = 0.0;
    parm.tol_obj = 1e-12;  // prune only nodes that are truly no better: near-ties must be explored
    const int rc = glp_intopt(lp.get(), &parm);
    REQUIRE(rc == 0);
    REQUIRE(glp_mip_status(lp.get()) == GLP_OPT);

    GlpkResult r{out_cpu, 0};
    if (glp_mip_col_val(lp.get(), col_y) > 0.5) {
        r.time = out_gpu;
        r.units += uint64_t(out_units);
    }
    for (size_t c = 0; c < column_option.size(); ++c) {
        if (glp_mip_col_val(lp.get(), int(c) + 1) > 0.5) {
            const MenuOption &o = menus[column_option[c].first][column_option[c].second];
            r.time += o.time;
            r.units += o.units;
        }
    }
    return r;
}

// 8 layers x 2048 neurons with profile-like frequencies (a hot fraction, a power-law tail); neuron sizes differ
// between layers (as with mixed weight types), so some layers' groups span several memory units.
RandomInstance medium_instance(uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    RandomInstance r;
    PlacementProblem &p = r.problem;
    p.group_size = 64;
    const double hot_share = 0.05 + 0.3 * u(rng);
    for (int l = 0; l < 8; ++l) {
        LayerInput in;
        in.act_freq.resize(2048);
        for (float &f : in.act_freq) f = float(u(rng) < hot_share ? 0.3 + 0.7 * u(rng) : 0.2 * std::pow(u(rng), 3.0));
        in.neuron_bytes = 3 * 512 * (l % 3 == 0 ? 2 : l % 3 == 1 ? 1 : 4) + (rng() % 7);
        in.attn_bytes = 4 * 512 * 512 * 2 + rng() % 1000;
        in.kv_bytes = 2 * 1024 * 512 * 2;
        in.kv_read_bytes = in.kv_bytes / (1 + rng() % 4);
        in.pred_bytes = (512 * 128 + 128 * 2048) * 2;
        in.hidden_bytes = 512 * 4;
        p.layers.push_back(std::move(in));
    }
    p.output_bytes = 512 * 8000 * 2;
    p.logits_bytes = 8000 * 4;
    p.scratch_bytes = 1 << 20;
    // Bandwidths scaled to these small layers so that latencies, copies and the crossing of T_gpu and T_cpu all
    // matter as they do for large models on real machines.
    CostParams &c = r.params;
    c.gpu_bandwidth = 2e11 * (0.5 + u(rng));
    c.cpu_bandwidth = 5e9 * (0.5 + u(rng));
    c.gpu_launch_s = 4e-6 * u(rng);
    c.d2h_latency_s = 1e-5 * u(rng);
    c.h2d_latency_s = 1e-5 * u(rng);
    c.sync_s = 5e-6 * u(rng);
    c.cpu_layer_overhead_s = 1e-5 * u(rng);
    return r;
}

}  // namespace

TEST_CASE("planner: optimum equals GLPK's MIP optimum on medium instances", "[planner][glpk]") {
    int splits = 0;
    for (uint64_t seed = 1; seed <= 6; ++seed) {
        RandomInstance r = medium_instance(seed);
        const uint64_t all = model_bytes(r.problem) + r.problem.scratch_bytes;
        for (double share : {0.0, 0.1, 0.3, 0.55, 0.8, 1.0}) {
            r.problem.budget_bytes = uint64_t(double(all) * share);
            const Placement p = plan(r.problem, r.params);
            const GlpkResult g = glpk_optimum(r.problem, r.params, p.memory_unit_bytes);
            INFO("seed " << seed << " budget share " << share << ": plan " << p.step_time << " s, GLPK " << g.time);
            REQUIRE(std::fabs(p.step_time - g.time) <= 1e-9 * g.time);
            REQUIRE(p.gpu_bytes <= r.problem.budget_bytes);
            for (const LayerPlacement &lp : p.layers) splits += lp.kind == LayerKind::split;
        }
    }
    CHECK(splits > 20);  // the instances exercise the split options, not only whole layers
}

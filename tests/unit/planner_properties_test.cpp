// Properties of plans that hold whatever the cost model's numbers: budgets, ordering of neurons, partial groups,
// reproducibility, and bad input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "planner/planner.h"
#include "planner_reference.h"

using namespace planner_test;

namespace {

// A small llama-like model: 4 layers of 300 neurons (not a multiple of 32), skewed frequencies.
PlacementProblem small_model() {
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> u(0, 1);
    PlacementProblem p;
    p.group_size = 32;
    for (int l = 0; l < 4; ++l) {
        LayerInput in;
        in.act_freq.resize(300);
        for (float &f : in.act_freq) f = float(std::pow(u(rng), 4.0));
        in.neuron_bytes = 3 * 256 * 2;
        in.attn_bytes = 4 * 256 * 256 * 2;
        in.kv_bytes = 2 * 512 * 256 * 2;
        in.kv_read_bytes = in.kv_bytes / 2;
        in.pred_bytes = (256 * 64 + 64 * 300) * 2;
        in.hidden_bytes = 256 * 4;
        p.layers.push_back(in);
    }
    p.output_bytes = 256 * 1000 * 2;
    p.logits_bytes = 1000 * 4;
    p.scratch_bytes = 64 * 1024;
    return p;
}

CostParams slow_gpu_link() {
    // Scaled so that with these small byte counts copies and launches matter as they do for real models.
    CostParams c;
    c.gpu_bandwidth = 2.0e9;
    c.cpu_bandwidth = 5.0e7;
    return c;
}

}  // namespace

TEST_CASE("planner: budget 0 or below scratch places nothing", "[planner]") {
    PlacementProblem p = small_model();
    for (uint64_t budget : {uint64_t(0), p.scratch_bytes - 1}) {
        p.budget_bytes = budget;
        const Placement pl = plan(p, slow_gpu_link());
        CHECK(pl.gpu_bytes == 0);
        CHECK(!pl.output_on_gpu);
        for (const LayerPlacement &lp : pl.layers) {
            CHECK(lp.kind == LayerKind::cpu);
            CHECK(!lp.attention_on_gpu);
            CHECK(lp.gpu_neurons.empty());
        }
    }
    // A layer whose resident part is 0 bytes still needs scratch to run on the GPU.
    p.scratch_bytes = 1000;
    p.budget_bytes = 999;
    for (LayerInput &l : p.layers) l.attn_bytes = l.kv_bytes = l.pred_bytes = 0;
    CHECK(plan(p, slow_gpu_link()).gpu_bytes == 0);
}

TEST_CASE("planner: a budget that holds the model places everything", "[planner]") {
    PlacementProblem p = small_model();
    p.budget_bytes = model_bytes(p) + p.scratch_bytes;
    const CostParams c = slow_gpu_link();  // every layer and the head are faster on the GPU here
    const Placement pl = plan(p, c);
    CHECK(pl.output_on_gpu);
    CHECK(pl.gpu_bytes == p.budget_bytes);  // exact bytes, not rounded units
    for (const LayerPlacement &lp : pl.layers) {
        CHECK(lp.kind == LayerKind::gpu);
        CHECK(lp.n_gpu_neurons == 300);
        CHECK(lp.gpu_neurons.size() == 300);
        CHECK(lp.t_cpu == 0.0);
    }
    p.budget_bytes *= 1000;  // far more changes nothing
    CHECK(plan(p, c).step_time == pl.step_time);
}

TEST_CASE("planner: a larger budget is never slower and always respected", "[planner]") {
    PlacementProblem p = small_model();
    const uint64_t all = model_bytes(p) + p.scratch_bytes;
    double last = std::numeric_limits<double>::infinity();
    int kinds_seen[3] = {0, 0, 0};
    for (int i = 0; i <= 60; ++i) {
        p.budget_bytes = all * i / 60;
        const Placement pl = plan(p, slow_gpu_link());
        INFO("budget " << p.budget_bytes);
        CHECK(pl.gpu_bytes <= p.budget_bytes);
        CHECK(pl.step_time <= last);
        last = pl.step_time;
        for (const LayerPlacement &lp : pl.layers) ++kinds_seen[int(lp.kind)];
    }
    CHECK(kinds_seen[0] > 0);
    CHECK(kinds_seen[1] > 0);
    CHECK(kinds_seen[2] > 0);
}

TEST_CASE("planner: the GPU gets the hottest neurons, whole groups, listed by index", "[planner]") {
    PlacementProblem p = small_model();
    int splits = 0;
    for (int i = 1; i < 20; ++i) {
        p.budget_bytes = (model_bytes(p) + p.scratch_bytes) * i / 20;
        const Placement pl = plan(p, slow_gpu_link());
        for (size_t l = 0; l < pl.layers.size(); ++l) {
            const LayerPlacement &lp = pl.layers[l];
            const std::vector<float> &f = p.layers[l].act_freq;
            REQUIRE(lp.gpu_neurons.size() == lp.n_gpu_neurons);
            REQUIRE(std::is_sorted(lp.gpu_neurons.begin(), lp.gpu_neurons.end()));
            if (lp.kind != LayerKind::split) continue;
            ++splits;
            CHECK(lp.n_gpu_neurons % p.group_size == 0);  // the partial group (300 % 32) never splits off
            CHECK(lp.n_gpu_neurons < 300);
            std::vector<char> on_gpu(f.size(), 0);
            for (uint32_t i2 : lp.gpu_neurons) on_gpu[i2] = 1;
            float coldest_gpu = 1.0f, hottest_cpu = 0.0f;
            for (size_t n = 0; n < f.size(); ++n) {
                if (on_gpu[n]) coldest_gpu = std::min(coldest_gpu, f[n]);
                else hottest_cpu = std::max(hottest_cpu, f[n]);
            }
            CHECK(coldest_gpu >= hottest_cpu);
            CHECK(lp.gpu_bytes == p.layers[l].attn_bytes + p.layers[l].kv_bytes + p.layers[l].pred_bytes +
                                      lp.n_gpu_neurons * p.layers[l].neuron_bytes);
            CHECK(lp.time == Approx(std::max(lp.t_gpu, lp.t_cpu) + slow_gpu_link().sync_s).epsilon(1e-12));
        }
    }
    CHECK(splits > 5);
}

TEST_CASE("planner: equal frequencies go to the GPU by lower index, and plans repeat exactly", "[planner]") {
    PlacementProblem p = small_model();
    for (LayerInput &l : p.layers) std::fill(l.act_freq.begin(), l.act_freq.end(), 0.25f);
    p.layers[1].act_freq[299] = 0.5f;  // one hotter neuron goes first whatever its index
    p.budget_bytes = (model_bytes(p) + p.scratch_bytes) / 2;
    const Placement a = plan(p, slow_gpu_link());
    const Placement b = plan(p, slow_gpu_link());
    REQUIRE(a.step_time == b.step_time);
    int splits = 0;
    for (size_t l = 0; l < a.layers.size(); ++l) {
        REQUIRE(a.layers[l].gpu_neurons == b.layers[l].gpu_neurons);
        const LayerPlacement &lp = a.layers[l];
        if (lp.kind != LayerKind::split || lp.n_gpu_neurons == 0) continue;
        ++splits;
        for (uint32_t r = 0; r + 1 < lp.n_gpu_neurons; ++r) {
            CHECK(lp.gpu_neurons[r] == r);  // 0, 1, 2, ... (layer 1: then 299)
        }
        CHECK(lp.gpu_neurons.back() == (l == 1 ? 299u : lp.n_gpu_neurons - 1));
    }
    CHECK(splits > 0);
}

TEST_CASE("planner: n_ff smaller than a group and a partial last group", "[planner]") {
    PlacementProblem p = small_model();
    p.layers.resize(1);
    p.layers[0].act_freq.assign(5, 0.5f);  // one partial group: only "all on the GPU" moves neurons
    p.budget_bytes = model_bytes(p) + p.scratch_bytes;
    CostParams c = slow_gpu_link();
    const Placement pl = plan(p, c);
    CHECK(pl.layers[0].kind == LayerKind::gpu);
    CHECK(pl.layers[0].gpu_neurons == std::vector<uint32_t>({0, 1, 2, 3, 4}));
    const Reference best = brute_force(p, c, pl.memory_unit_bytes);
    CHECK(best.time == Approx(pl.step_time).epsilon(1e-12));
}

TEST_CASE("planner: memory is rounded up per object, so the byte budget holds", "[planner]") {
    PlacementProblem p = small_model();
    PlannerOptions opt;
    opt.memory_unit_bytes = 100000;  // much coarser than anything in the model
    for (int i = 0; i <= 30; ++i) {
        p.budget_bytes = (model_bytes(p) + p.scratch_bytes) * i / 30;
        const Placement pl = plan(p, slow_gpu_link(), opt);
        CHECK(pl.memory_unit_bytes == 100000);
        CHECK(pl.gpu_bytes <= p.budget_bytes);
        if (model_bytes(p) + p.scratch_bytes > p.budget_bytes) {  // else every plan fits whatever the rounding
            CHECK(pl.gpu_units * pl.memory_unit_bytes + (pl.gpu_bytes ? p.scratch_bytes : 0) <= p.budget_bytes);
        }
        CHECK(pl.gpu_units * pl.memory_unit_bytes + (pl.gpu_bytes ? p.scratch_bytes : 0) >= pl.gpu_bytes);
    }
}

TEST_CASE("planner: the unit grows when the budget would need too many", "[planner]") {
    PlacementProblem p = small_model();
    p.budget_bytes = model_bytes(p) + p.scratch_bytes;
    PlannerOptions opt;
    CHECK(choose_memory_unit(p, opt) == 32 * p.layers[0].neuron_bytes);  // one group = one unit
    opt.max_units = 50;
    const uint64_t unit = choose_memory_unit(p, opt);
    CHECK(unit > 32 * p.layers[0].neuron_bytes);
    const Placement pl = plan(p, CostParams{}, opt);
    CHECK(pl.memory_unit_bytes == unit);
    CHECK(pl.gpu_units <= 50);
}

TEST_CASE("planner: bad input is an error naming the problem", "[planner]") {
    auto status_of = [](const PlacementProblem &p, const CostParams &c) {
        try {
            plan(p, c);
        } catch (const pi::Error &e) {
            return std::make_pair(e.status(), std::string(e.what()));
        }
        return std::make_pair(PI_OK, std::string());
    };
    const PlacementProblem good = small_model();
    const CostParams params;
    REQUIRE(status_of(good, params).first == PI_OK);

    PlacementProblem p = good;
    p.layers.clear();
    CHECK(status_of(p, params).first == PI_ERR_INVALID_ARGUMENT);
    p = good;
    p.group_size = 0;
    CHECK(status_of(p, params).second.find("group_size") != std::string::npos);
    p = good;
    p.layers[2].act_freq.clear();
    CHECK(status_of(p, params).second.find("layer 2") != std::string::npos);
    p = good;
    p.layers[1].neuron_bytes = 0;
    CHECK(status_of(p, params).second.find("neuron_bytes") != std::string::npos);
    for (float bad : {std::nanf(""), -0.5f, 1.5f, std::numeric_limits<float>::infinity()}) {
        p = good;
        p.layers[3].act_freq[7] = bad;
        const auto s = status_of(p, params);
        CHECK(s.first == PI_ERR_INVALID_ARGUMENT);
        CHECK(s.second.find("layer 3 neuron 7") != std::string::npos);
    }
    CostParams c;
    c.cpu_bandwidth = 0;
    CHECK(status_of(good, c).second.find("cpu_bandwidth") != std::string::npos);
    c = CostParams{};
    c.sync_s = -1;
    CHECK(status_of(good, c).first == PI_ERR_INVALID_ARGUMENT);
    c = CostParams{};
    c.gpu_bandwidth = std::numeric_limits<double>::infinity();
    CHECK(status_of(good, c).first == PI_ERR_INVALID_ARGUMENT);
}

TEST_CASE("planner: a layer without a predictor is never split", "[planner]") {
    // Dense models: the executor can split a decode step only by a predicted list, so every budget must give each
    // layer all of its neurons on the GPU or none -- even where a split would look faster to the cost model (a
    // fast CPU next to the GPU makes splitting attractive: the same problem with splittable layers does split).
    PlacementProblem p = small_model();
    for (LayerInput &in : p.layers) std::fill(in.act_freq.begin(), in.act_freq.end(), 1.0f);
    CostParams fast_cpu = slow_gpu_link();
    fast_cpu.cpu_bandwidth = fast_cpu.gpu_bandwidth / 4;
    const uint64_t all = model_bytes(p) + p.scratch_bytes;
    bool split_when_allowed = false;
    for (int i = 0; i <= 40; ++i) {
        p.budget_bytes = all * i / 40;
        for (LayerInput &in : p.layers) in.splittable = true;
        for (const LayerPlacement &lp : plan(p, fast_cpu).layers) split_when_allowed |= lp.kind == LayerKind::split;
        for (LayerInput &in : p.layers) in.splittable = false;
        const Placement pl = plan(p, fast_cpu);
        INFO("budget " << p.budget_bytes);
        CHECK(pl.gpu_bytes <= p.budget_bytes);
        for (const LayerPlacement &lp : pl.layers) {
            CHECK((lp.n_gpu_neurons == 0 || lp.n_gpu_neurons == lp.gpu_neurons.size()));
            CHECK((lp.n_gpu_neurons == 0 || lp.n_gpu_neurons == 300));
        }
    }
    CHECK(split_when_allowed);
}

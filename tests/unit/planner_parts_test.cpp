// The planner's parts on their own: cost-model terms against hand-computed numbers, the neuron ranking against a
// comparison sort, the min-plus step against its plain scan, and the convexity the fast path relies on.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "common/error.h"
#include "planner/cost_model.h"
#include "planner/layer_options.h"
#include "planner/min_plus.h"
#include "planner/neuron_order.h"

using namespace pi::planner;

namespace {

// Round numbers so that every term can be checked by hand.
CostParams hand_params() {
    CostParams c;
    c.gpu_bandwidth = 1000;
    c.cpu_bandwidth = 100;
    c.gpu_launch_s = 1;
    c.gpu_launches_front = 2;
    c.gpu_launches_ffn = 1;
    c.gpu_launches_output = 1;
    c.cpu_layer_overhead_s = 3;
    c.d2h_latency_s = 5;
    c.d2h_bandwidth = 10;
    c.h2d_latency_s = 7;
    c.h2d_bandwidth = 20;
    c.sync_s = 11;
    c.index_bytes = 2;
    return c;
}

LayerInput hand_layer() {
    LayerInput l;
    l.attn_bytes = 1000;
    l.kv_bytes = 123456;  // reserved memory: no effect on time
    l.kv_read_bytes = 500;
    l.pred_bytes = 500;
    l.neuron_bytes = 100;
    l.hidden_bytes = 40;
    return l;
}

}  // namespace

TEST_CASE("planner cost model: every option against hand-computed seconds", "[planner]") {
    const CostParams c = hand_params();
    const LayerInput l = hand_layer();
    // CPU: (1000 + 500 + 500 + 3 x 100) / 100 + 3.
    const LayerTimes cpu = cpu_layer_times(c, l, 3.0);
    CHECK(cpu.t_cpu == Approx(26.0));
    CHECK(cpu.time == Approx(26.0));
    CHECK(cpu.t_gpu == 0.0);
    // Split, 2 hot / 1 cold: front 2000/1000 + 2 = 4; GPU 4 + 200/1000 + 1 = 5.2;
    // CPU 4 + (5 + (40 + 2 x 1)/10) + (100/100 + 3) + (7 + 40/20) = 26.2; time 26.2 + 11.
    const LayerTimes split = split_layer_times(c, l, 2.0, 1.0);
    CHECK(split.t_gpu == Approx(5.2));
    CHECK(split.t_cpu == Approx(26.2));
    CHECK(split.time == Approx(37.2));
    // GPU-bound split: 900 hot neurons: GPU 4 + 90 + 1 = 95 > CPU.
    const LayerTimes heavy = split_layer_times(c, l, 900.0, 0.0);
    CHECK(heavy.t_gpu == Approx(95.0));
    CHECK(heavy.time == Approx(106.0));
    // All on the GPU: 4 + 300/1000 + 1.
    const LayerTimes gpu = gpu_layer_times(c, l, 3.0);
    CHECK(gpu.t_gpu == Approx(5.3));
    CHECK(gpu.time == Approx(5.3));
    CHECK(gpu.t_cpu == 0.0);
    // Output head: GPU 1000/1000 + 1 + 5 + 100/10 = 17; CPU 1000/100 + 3 = 13.
    PlacementProblem p;
    p.output_bytes = 1000;
    p.logits_bytes = 100;
    CHECK(output_time(c, p, true) == Approx(17.0));
    CHECK(output_time(c, p, false) == Approx(13.0));
    CHECK_NOTHROW(validate(c));
    CHECK_NOTHROW(validate(CostParams{}));
}

TEST_CASE("planner neuron order: descending values, and the hottest neurons by lower index on ties", "[planner]") {
    std::mt19937_64 rng(11);
    for (int iter = 0; iter < 50; ++iter) {
        std::vector<float> f(1 + rng() % 5000);
        const int kind = iter % 3;
        for (float &x : f) {
            const double u = std::uniform_real_distribution<double>(0, 1)(rng);
            x = kind == 0 ? float(u) : kind == 1 ? float(int(u * 5) / 4.0) : float(u * 1e-30);  // ties, tiny values
        }
        if (iter == 0) f[0] = -0.0f;
        // Independent: a stable comparison sort of the indices.
        std::vector<uint32_t> by_rank(f.size());
        std::iota(by_rank.begin(), by_rank.end(), 0u);
        std::stable_sort(by_rank.begin(), by_rank.end(), [&](uint32_t a, uint32_t b) { return f[a] > f[b]; });
        const std::vector<float> sorted = sorted_hottest_first(f, 0);
        REQUIRE(sorted.size() == f.size());
        for (size_t r = 0; r < f.size(); ++r) REQUIRE(sorted[r] == f[by_rank[r]]);
        for (uint32_t count : {uint32_t(0), uint32_t(1), uint32_t(f.size() / 3), uint32_t(f.size())}) {
            std::vector<uint32_t> expect(by_rank.begin(), by_rank.begin() + count);
            std::sort(expect.begin(), expect.end());
            REQUIRE(hottest_neurons(f, sorted, count) == expect);
        }
    }
    const std::vector<float> f = {0.0f, 1.0f, 0.0f, 1.0f, 0.5f};
    CHECK(sorted_hottest_first(f, 0) == std::vector<float>({1.0f, 1.0f, 0.5f, 0.0f, 0.0f}));
    CHECK(hottest_neurons(f, sorted_hottest_first(f, 0), 4) == std::vector<uint32_t>({0, 1, 3, 4}));
    CHECK_THROWS_AS(sorted_hottest_first({0.5f, 1.0001f}, 4), pi::Error);
}

TEST_CASE("planner min-plus: the divide-and-conquer step equals the plain scan on convex tables", "[planner]") {
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> u(0, 1);
    for (int iter = 0; iter < 300; ++iter) {
        // a: arbitrary non-increasing (the DP's "at most m units" tables); g: convex non-increasing then flat.
        const size_t count = 1 + rng() % 200, n = 1 + rng() % 60, stride = 1 + rng() % 3;
        std::vector<double> a(count * stride);
        double v = 100 * u(rng);
        for (size_t i = 0; i < count; ++i) {
            if (u(rng) < 0.5) v -= u(rng) * (iter % 2 ? 5.0 : 0.0);  // odd iterations: with plateaus and ties
            a[i * stride] = v;
        }
        std::vector<double> slopes(n > 1 ? n - 1 : 0);
        for (double &s : slopes) s = -std::floor(10 * u(rng));
        std::sort(slopes.begin(), slopes.end());
        std::vector<double> g(n, 50.0);
        for (size_t k = 1; k < n; ++k) g[k] = g[k - 1] + slopes[k - 1];
        std::vector<double> h1(count), h2(count);
        std::vector<uint32_t> k1(count), k2(count);
        min_plus_convex(a.data(), stride, count, g, h1.data(), k1.data());
        min_plus_plain(a.data(), stride, count, g, h2.data(), k2.data());
        for (size_t j = 0; j < count; ++j) {
            REQUIRE(h1[j] == h2[j]);  // integer-valued data: exact
            REQUIRE(k1[j] <= std::min<size_t>(j, n - 1));
            REQUIRE(a[(j - k1[j]) * stride] + g[k1[j]] == h1[j]);  // the argument reproduces the value
        }
    }
}

TEST_CASE("planner layer options: split times are convex after the running minimum", "[planner]") {
    std::mt19937_64 rng(9);
    std::uniform_real_distribution<double> u(0, 1);
    for (int iter = 0; iter < 100; ++iter) {
        LayerInput l = hand_layer();
        l.act_freq.resize(1 + rng() % 3000);
        for (float &f : l.act_freq) f = float(std::pow(u(rng), 1 + 4 * u(rng)));
        l.neuron_bytes = 1 + rng() % 1000;
        CostParams c = hand_params();
        c.gpu_bandwidth = 1e3 + 1e5 * u(rng);
        c.cpu_bandwidth = 1e2 + 1e3 * u(rng);
        const uint32_t G = 1 + uint32_t(rng() % 64);
        const LayerOptions o = build_layer_options(c, l, 0, G, 1 + rng() % 5000);
        REQUIRE(o.best_split_convex);
        REQUIRE(o.n_split() == (l.act_freq.size() + G - 1) / G);
        REQUIRE(o.best_split.size() <= o.n_split());
        // Beyond the table's end no split is better than its last entry.
        for (size_t k = o.best_split.size(); k < o.n_split(); ++k) REQUIRE(o.split_time[k] >= o.best_split.back());
        for (size_t k = 0; k < o.best_split.size(); ++k) {
            REQUIRE(o.best_split[k] == o.split_time[o.best_k[k]]);
            REQUIRE(o.best_k[k] <= k);
            if (k) REQUIRE(o.best_split[k] <= o.best_split[k - 1]);
            REQUIRE(o.hot_active[k] + o.cold_active[k] == Approx(o.hot_active.back() + o.cold_active.back()));
        }
    }
}

// The budget promise on a simulated device: whatever the plan, the context lengths and the sessions created and
// freed, the device never sees an allocation beyond the VRAM budget; sessions within the reservation always fit,
// sessions beyond it fail with PI_ERR_OUT_OF_MEMORY before the device is asked.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "backends/sim/sim_device.h"
#include "common/error.h"
#include "planner/device_reservation.h"
#include "planner/model_problem.h"
#include "planner/planner.h"

using namespace pi::planner;
using Catch::Matchers::Contains;

namespace {

struct SyntheticModel {
    ModelObjects objects;
    ModelShape shape;
    std::vector<std::vector<float>> freq;
};

// Odd sizes on purpose (rows of 10..500 bytes, 2-4 FFN matrices, any n_ff), so that every allocation's rounding to
// the alignment matters.
SyntheticModel random_model(std::mt19937_64 &rng, uint32_t plan_n_ctx, uint32_t plan_n_sessions) {
    auto uni = [&](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
    std::uniform_real_distribution<double> u(0, 1);
    SyntheticModel m;
    m.objects.plan_n_ctx = plan_n_ctx;
    m.objects.plan_n_sessions = plan_n_sessions;
    m.shape.n_embd = static_cast<uint32_t>(uni(16, 256));
    m.shape.n_vocab = static_cast<uint32_t>(uni(100, 2000));
    const size_t n_layer = uni(1, 6);
    for (size_t l = 0; l < n_layer; ++l) {
        LayerObjects o;
        o.predictor_bytes = uni(0, 1) ? uni(1000, 20000) : 0;
        o.attention_block = align_up(o.predictor_bytes + uni(1000, 60000), kDeviceAlignment);
        const size_t n_mats = uni(2, 4);
        for (size_t k = 0; k < n_mats; ++k) o.neuron_rows.push_back(uni(10, 500));
        o.kv_bytes_per_token = 4 * uni(4, 128);
        m.objects.layers.push_back(o);
        const uint32_t n_ff = static_cast<uint32_t>(uni(1, 200));
        m.shape.n_ff.push_back(n_ff);
        std::vector<float> f(n_ff);
        const double skew = 1.0 + 4.0 * u(rng);
        for (float &x : f) x = float(std::pow(u(rng), skew));
        m.freq.push_back(f);
    }
    m.objects.output_block = align_up(uni(1000, 100000), kDeviceAlignment);
    m.objects.scratch = align_up(uni(256, 20000), kDeviceAlignment);
    return m;
}

// Costs scaled to the small byte counts (as in planner_properties_test) so that every kind of layer wins somewhere.
CostParams scaled_costs(std::mt19937_64 &rng) {
    std::uniform_real_distribution<double> u(0, 1);
    CostParams c;
    c.gpu_bandwidth = 1e9 * (0.5 + 4 * u(rng));
    c.cpu_bandwidth = 5e7 * (0.5 + 4 * u(rng));
    c.d2h_bandwidth = c.h2d_bandwidth = 1e8 * (0.5 + 4 * u(rng));
    return c;
}

uint64_t everything_bytes(const PlacementProblem &p) {
    uint64_t total = p.output_bytes + p.scratch_bytes;
    for (const LayerInput &l : p.layers) total += l.attn_bytes + l.pred_bytes + l.kv_bytes + l.act_freq.size() * l.neuron_bytes;
    return total;
}

bool is_oom(const std::function<void()> &f, std::string *message = nullptr) {
    try {
        f();
    } catch (const pi::Error &e) {
        if (message) *message = e.what();
        return e.status() == PI_ERR_OUT_OF_MEMORY;
    }
    return false;
}

}  // namespace

TEST_CASE("sim device: accounts every allocation, refuses beyond the capacity, records the peak", "[planner][sim]") {
    pi::sim::Device d(10240, 256);
    const uint64_t a = d.allocate(1, "a");      // rounded to 256
    const uint64_t b = d.allocate(5000, "b");   // 5120
    CHECK(d.used() == 256 + 5120);
    CHECK(d.n_live() == 2);
    try {
        d.allocate(5000, "the big one");
        FAIL("allocation beyond the capacity succeeded");
    } catch (const pi::Error &e) {
        CHECK(e.status() == PI_ERR_OUT_OF_MEMORY);
        CHECK_THAT(e.what(), Contains("the big one") && Contains("5120 bytes") && Contains("4864 of 10240"));
    }
    CHECK(d.n_refused() == 1);
    CHECK(d.used() == 5376);  // the refused allocation took nothing
    d.release(b);
    CHECK(d.used() == 256);
    d.allocate(9984, "exactly the rest");
    CHECK(d.used() == 10240);
    CHECK(d.peak() == 10240);
    d.release(a);
    d.release(a);  // twice: counted, no effect
    CHECK(d.bad_releases() == 1);
    CHECK(d.used() == 9984);
    CHECK_THROWS_AS(pi::sim::Device(100, 3), pi::Error);
    pi::sim::Device empty(0);
    CHECK(is_oom([&] { empty.allocate(1, "anything"); }));
    CHECK(is_oom([&] { empty.allocate(UINT64_MAX, "overflowing"); }));
}

TEST_CASE("device reservation: the simulated device never sees more than the budget", "[planner][sim]") {
    std::mt19937_64 rng(20240611);
    int models = 0, plans = 0, extra_admitted = 0, extra_refused = 0, gpu_plans = 0;
    for (int trial = 0; trial < 40; ++trial) {
        const uint32_t plan_n_ctx = static_cast<uint32_t>(std::uniform_int_distribution<int>(1, 600)(rng));
        const uint32_t plan_n_sessions = static_cast<uint32_t>(std::uniform_int_distribution<int>(1, 4)(rng));
        SyntheticModel m = random_model(rng, plan_n_ctx, plan_n_sessions);
        ModelPlanOptions options;
        options.plan_n_ctx = plan_n_ctx;
        options.plan_n_sessions = plan_n_sessions;
        options.group_size = static_cast<uint32_t>(std::uniform_int_distribution<int>(1, 40)(rng));
        PlacementProblem problem = assemble_problem(m.objects, m.shape, m.freq, options);
        const CostParams costs = scaled_costs(rng);
        const uint64_t all = everything_bytes(problem);
        ++models;
        // Budgets from 0 to more than everything, including ones that end just inside an object.
        for (int b = 0; b <= 24; ++b) {
            const uint64_t budget = b == 0 ? 0 : b == 24 ? all + 12345 : all * b / 22 + (b % 3) * 77;
            problem.budget_bytes = budget;
            const Placement pl = plan(problem, costs);
            ++plans;
            gpu_plans += pl.gpu_bytes > 0;
            REQUIRE(pl.gpu_bytes <= budget);
            pi::sim::Device device(budget, 256);
            {
                DeviceReservation r(pl, m.objects, device);
                // What the model takes is within what the plan promised for it (its KV reservation aside).
                uint64_t kv_promised = 0;
                for (size_t l = 0; l < pl.layers.size(); ++l) {
                    if (pl.layers[l].attention_on_gpu) kv_promised += problem.layers[l].kv_bytes;
                }
                CHECK(r.model_bytes() + kv_promised <= pl.gpu_bytes);

                std::uniform_int_distribution<uint32_t> within(1, plan_n_ctx), beyond(1, 4 * plan_n_ctx + 7);
                std::vector<DeviceReservation::SessionKv> held;
                // The reserved sessions always fit.
                for (uint32_t s = 0; s < plan_n_sessions; ++s) held.push_back(r.reserve_session(within(rng)));
                // Then a storm of sessions: beyond the reservation they fit or fail cleanly; freeing and re-creating
                // keeps the reserved ones possible.
                for (int step = 0; step < 30; ++step) {
                    const int action = std::uniform_int_distribution<int>(0, 2)(rng);
                    if (action == 0 && !held.empty()) {
                        const size_t i = std::uniform_int_distribution<size_t>(0, held.size() - 1)(rng);
                        r.release_session(held[i]);
                        held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
                    } else if (action == 1 && r.free_slots() > 0) {
                        held.push_back(r.reserve_session(within(rng)));  // a slot is free: must fit
                    } else {
                        std::string message;
                        const uint32_t n_ctx = beyond(rng);
                        const bool fits = r.free_slots() > 0 && n_ctx <= plan_n_ctx
                                              ? true
                                              : r.session_bytes(n_ctx) <= r.unpromised_bytes();
                        if (is_oom([&] { held.push_back(r.reserve_session(n_ctx)); }, &message)) {
                            CHECK_FALSE(fits);
                            CHECK_THAT(message, Contains(std::to_string(n_ctx) + " tokens") && Contains("MiB"));
                            ++extra_refused;
                        } else {
                            CHECK(fits);
                            ++extra_admitted;
                        }
                    }
                    REQUIRE(device.used() <= budget);
                }
                for (DeviceReservation::SessionKv s : held) r.release_session(s);
                CHECK(r.free_slots() == (r.session_bytes(1) > 0 ? plan_n_sessions : 0u));
            }
            // The device saw nothing it had to refuse, nothing beyond the budget, and got everything back.
            CHECK(device.n_refused() == 0);
            CHECK(device.peak() <= budget);
            CHECK(device.used() == 0);
            CHECK(device.n_live() == 0);
            CHECK(device.bad_releases() == 0);
        }
    }
    CHECK(models == 40);
    CHECK(plans == 40 * 25);
    // The storm really exercised both outcomes and most plans put something on the device.
    CHECK(extra_admitted > 100);
    CHECK(extra_refused > 100);
    CHECK(gpu_plans > plans / 2);
}

TEST_CASE("device reservation: long contexts and many sessions against a tight budget", "[planner][sim]") {
    std::mt19937_64 rng(7);
    SyntheticModel m = random_model(rng, 256, 2);
    ModelPlanOptions options;
    options.plan_n_ctx = 256;
    options.plan_n_sessions = 2;
    options.group_size = 8;
    PlacementProblem problem = assemble_problem(m.objects, m.shape, m.freq, options);
    problem.budget_bytes = everything_bytes(problem);  // everything fits exactly: no byte to spare but rounding
    CostParams costs;
    costs.gpu_bandwidth = 1e12;
    costs.cpu_bandwidth = 1e6;  // the GPU wins everything
    const Placement pl = plan(problem, costs);
    REQUIRE(pl.layers[0].attention_on_gpu);
    pi::sim::Device device(problem.budget_bytes, 256);
    DeviceReservation r(pl, m.objects, device);
    const DeviceReservation::SessionKv a = r.reserve_session(256), b = r.reserve_session(256);
    CHECK(r.free_slots() == 0);
    std::string message;
    // A third session: only the padding slack is unpromised, less than one session's KV.
    REQUIRE(r.unpromised_bytes() < r.session_bytes(256));
    CHECK(is_oom([&] { r.reserve_session(256); }, &message));
    CHECK_THAT(message, Contains("session of 256 tokens") && Contains("2 session(s) of 256 tokens"));
    r.release_session(b);
    CHECK(is_oom([&] { r.reserve_session(100000); }, &message));  // longer than planned, slot or not
    CHECK_THAT(message, Contains("longer"));
    const DeviceReservation::SessionKv c = r.reserve_session(256);  // the freed slot is there again
    CHECK(r.free_slots() == 0);
    r.release_session(a);
    r.release_session(c);
    r.release_session(c);  // twice: ignored
    CHECK(r.free_slots() == 2);
    CHECK_THROWS_AS(r.reserve_session(0), pi::Error);
    CHECK(device.n_refused() == 0);
    CHECK(device.peak() <= problem.budget_bytes);

    // With room to spare, an extra session of a longer context is admitted.
    pi::sim::Device roomy(problem.budget_bytes + 100 * r.session_bytes(256), 256);
    DeviceReservation r2(pl, m.objects, roomy);
    r2.reserve_session(256);
    r2.reserve_session(256);
    r2.reserve_session(2048);
    CHECK(roomy.n_refused() == 0);
}

TEST_CASE("device reservation: a device rounding coarser than the plan is refused", "[planner][sim]") {
    std::mt19937_64 rng(11);
    SyntheticModel m = random_model(rng, 64, 1);
    ModelPlanOptions options;
    options.plan_n_ctx = 64;
    PlacementProblem problem = assemble_problem(m.objects, m.shape, m.freq, options);
    problem.budget_bytes = everything_bytes(problem);
    const Placement pl = plan(problem, CostParams{});
    pi::sim::Device coarse(problem.budget_bytes, 4096);
    try {
        DeviceReservation r(pl, m.objects, coarse);
        FAIL("a coarser device was accepted");
    } catch (const pi::Error &e) {
        CHECK(e.status() == PI_ERR_INVALID_ARGUMENT);
        CHECK_THAT(e.what(), Contains("4096"));
    }
    // And a reservation that cannot get its model share gives everything back.
    pi::sim::Device small(pl.gpu_bytes / 2, 256);
    if (pl.gpu_bytes > 0) {
        CHECK(is_oom([&] { DeviceReservation r(pl, m.objects, small); }));
        CHECK(small.used() == 0);
        CHECK(small.n_live() == 0);
    }
}
